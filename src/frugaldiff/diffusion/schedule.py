"""VP noise schedules in continuous time, t ∈ [0, 1], t = 1 noisiest.

z_t = α_t x + σ_t ε with α² + σ² = 1, so a schedule is one function, the logSNR
λ(t) = log(α²/σ²); α² = sigmoid(λ), σ² = sigmoid(−λ) (docs/guided_distillation.md b). The truncated
cosine schedule is PD's (Salimans & Ho, arXiv 2202.00512); the linear-β schedule is DDPM's
(Ho et al., arXiv 2006.11239), used by DiT and SpeeD, exposed through the same continuous
interface so that solvers never see step indices. Conversions step ↔ t live here only;
`StepGrid` gives any schedule DDPM step indices and SpeeD's anchors (arXiv 2405.17403, docs/speed.md
b). EDM's noise level σ (Karras et al., arXiv 2206.00364) is the VP core's λ on data ÷ σ_d: λ = 2
ln(σ_d/σ) (docs/microdit.md g; `edm_sigma_to_logsnr`).
"""

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from frugaldiff.errors import ConfigError


@dataclass(frozen=True)
class ScheduleConfig:
    """Which schedule, with the fields of both (each schedule reads only its own)."""

    name: str = "cosine"  # "cosine" | "linear_beta"
    logsnr_min: float = -20.0  # cosine: λ(1), PD's truncation
    logsnr_max: float = 20.0  # cosine: λ(0)
    num_steps: int = 1000  # linear_beta: T
    beta_start: float = 1e-4  # linear_beta: β_0
    beta_end: float = 0.02  # linear_beta: β_{T−1}


class NoiseSchedule(ABC):
    """A VP schedule given by λ(t); α, σ and their ratios follow from it."""

    is_discrete: ClassVar[bool] = False

    @abstractmethod
    def logsnr(self, t: Tensor) -> Tensor:
        """λ(t) for t (any shape) in [0, 1]; same shape and dtype as t, strictly decreasing."""

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(α_t, σ_t), each shaped like t, in t's dtype.

        Taken from λ via sigmoid rather than as √(1 − α²), so σ keeps its relative precision at
        λ = 20 (σ ≈ 4.5e-5) and α at λ = −20; α² + σ² = 1 to rounding in float64.
        """
        lam = self.logsnr(t)
        return torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()

    def sigma_ratio(self, t_from: Tensor, t_to: Tensor) -> Tensor:
        """σ_to / σ_from = exp(½(softplus(λ_from) − softplus(λ_to))) (docs/guided_distillation.md
        f).

        log σ² = −softplus(λ), so the ratio never divides two tiny σ near t = 0.
        """
        return torch.exp(0.5 * (F.softplus(self.logsnr(t_from)) - F.softplus(self.logsnr(t_to))))


class CosineLogSNRSchedule(NoiseSchedule):
    """Truncated cosine: λ(t) = −2 log tan(a t + b), λ(0) = λ_max, λ(1) = λ_min.

    b = arctan(e^{−λ_max/2}), a = arctan(e^{−λ_min/2}) − b (PD code, docs/guided_distillation.md b).
    With the defaults α_1 = σ_0 ≈ 4.54e-5, not 0.
    """

    def __init__(
        self,
        logsnr_min: float = ScheduleConfig.logsnr_min,
        logsnr_max: float = ScheduleConfig.logsnr_max,
    ) -> None:
        if not logsnr_min < logsnr_max:
            raise ConfigError(
                f"schedule: need logsnr_min < logsnr_max; found {logsnr_min} >= {logsnr_max}"
            )
        self.logsnr_min = float(logsnr_min)
        self.logsnr_max = float(logsnr_max)
        self.b = math.atan(math.exp(-0.5 * self.logsnr_max))
        self.a = math.atan(math.exp(-0.5 * self.logsnr_min)) - self.b

    @classmethod
    def from_config(cls, cfg: ScheduleConfig) -> "CosineLogSNRSchedule":
        return cls(logsnr_min=cfg.logsnr_min, logsnr_max=cfg.logsnr_max)

    def logsnr(self, t: Tensor) -> Tensor:
        # Evaluated in float64 and cast back: near t = 1, a t + b is within 4.5e-5 of π/2, where
        # float32 tan loses ~0.3% (λ off by ~5e-3); the cost is nil for (B,) vectors.
        angle = self.a * t.to(torch.float64) + self.b
        return (-2.0 * torch.log(torch.tan(angle))).to(t.dtype)

    def t_from_logsnr(self, logsnr: Tensor) -> Tensor:
        """Inverse of `logsnr`: t = (arctan(e^{−λ/2}) − b) / a, in logsnr's dtype."""
        angle = torch.atan(torch.exp(-0.5 * logsnr.to(torch.float64)))
        return ((angle - self.b) / self.a).to(logsnr.dtype)


class DiscreteSchedule(NoiseSchedule):
    """A T-step DDPM-style schedule given by its β_k, read as a continuous λ(t).

    ᾱ_k = ∏_{j≤k}(1 − β_j) for step k ∈ {0..T−1}. Step k sits at t = (k + 1)/T, so t = 1 is the
    last step and t = 0 is the clean data (DDPM's own index k + 1 over T). Between grid points λ
    is linear in t. Below t = 1/T it continues the first segment's line, so for linear β
    λ(0) = 2λ_0 − λ_1 ≈ 10.0 (σ_0 ≈ 6.7e-3): finite and strictly decreasing, so α, σ and
    σ-ratios exist everywhere, yet no grid point changes. Solvers never evaluate a model there;
    they return x̂ on the last step to t = 0.
    """

    is_discrete: ClassVar[bool] = True

    def __init__(self, betas: Tensor) -> None:
        if betas.ndim != 1 or betas.numel() < 2:
            raise ConfigError(f"schedule: expected >= 2 betas; found shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ConfigError("schedule: every beta must lie in (0, 1)")
        self.num_steps = int(betas.numel())
        # float64 tables: ᾱ_{T−1} ≈ 4e-5, and SpeeD's anchors take gradients of them.
        self.betas = betas.to(torch.float64)  # (T,)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)  # (T,)
        self.logsnr_grid = torch.log(self.alphas_cumprod) - torch.log1p(-self.alphas_cumprod)

    def step_to_t(self, step: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """t = (step + 1)/T for integer steps in {0..T−1}."""
        return ((step.to(torch.float64) + 1.0) / self.num_steps).to(dtype)

    def t_to_step(self, t: Tensor) -> Tensor:
        """Nearest step index (int64) to t, clamped to {0..T−1}."""
        step = torch.round(t.to(torch.float64) * self.num_steps - 1.0)
        return step.clamp(0, self.num_steps - 1).to(torch.int64)

    def logsnr(self, t: Tensor) -> Tensor:
        grid = self.logsnr_grid.to(t.device)  # (T,)
        position = t.to(torch.float64) * self.num_steps - 1.0  # fractional step index
        left = position.floor().clamp(0, self.num_steps - 2).to(torch.int64)
        # lerp is exact at both ends of a segment (weight 0 and 1), so grid points reproduce
        # log(ᾱ_k / (1 − ᾱ_k)); weights outside [0, 1] extrapolate the end segments.
        lam = torch.lerp(grid[left], grid[left + 1], position - left)
        return lam.to(t.dtype)


class LinearBetaSchedule(DiscreteSchedule):
    """DDPM's linear β = linspace(β_start, β_end, T) (Ho et al. 2020; DiT and SpeeD use it)."""

    def __init__(
        self,
        num_steps: int = ScheduleConfig.num_steps,
        beta_start: float = ScheduleConfig.beta_start,
        beta_end: float = ScheduleConfig.beta_end,
    ) -> None:
        if num_steps < 2:
            raise ConfigError(f"schedule.num_steps: expected an int >= 2; found {num_steps}")
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ConfigError(
                "schedule: expected 0 < beta_start <= beta_end < 1; "
                f"found beta_start={beta_start}, beta_end={beta_end}"
            )
        super().__init__(torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64))

    @classmethod
    def from_config(cls, cfg: ScheduleConfig) -> "LinearBetaSchedule":
        return cls(num_steps=cfg.num_steps, beta_start=cfg.beta_start, beta_end=cfg.beta_end)


def edm_sigma_to_logsnr(sigma: Tensor, sigma_data: float) -> Tensor:
    """λ = 2 ln(σ_d/σ): EDM's x + σε, divided by √(σ² + σ_d²), is the VP state α x̃ + σ_t ε of
    x̃ = x/σ_d with α² = σ_d²/(σ² + σ_d²) (docs/microdit.md g). Shape and dtype of sigma (> 0).
    """
    return 2.0 * (math.log(sigma_data) - torch.log(sigma))


def logsnr_to_edm_sigma(logsnr: Tensor, sigma_data: float) -> Tensor:
    """σ = σ_d·e^{−λ/2}, the inverse of `edm_sigma_to_logsnr`; shape and dtype of logsnr."""
    return sigma_data * torch.exp(-0.5 * logsnr)


SCHEDULES: dict[str, type[CosineLogSNRSchedule] | type[LinearBetaSchedule]] = {
    "cosine": CosineLogSNRSchedule,
    "linear_beta": LinearBetaSchedule,
}


def build_schedule(cfg: ScheduleConfig) -> NoiseSchedule:
    """The schedule named by cfg.name; ConfigError lists the valid names otherwise."""
    if cfg.name not in SCHEDULES:
        raise ConfigError(f"schedule.name={cfg.name!r}; expected one of {sorted(SCHEDULES)}")
    return SCHEDULES[cfg.name].from_config(cfg)


def build_schedule_by_name(name: str) -> NoiseSchedule:
    """The schedule `name` with its default parameters (ScheduleConfig's)."""
    return build_schedule(ScheduleConfig(name=name))


DUAL_ANCHOR_THRESHOLD = 1e-4  # SpeeD's `meaningful_steps` cut on ∇√(1 − ᾱ) (docs/speed.md b)
CELL_MARGIN = 0.01  # continuous StepGrid: t stays this fraction of a cell away from its edges


class StepGrid:
    """T step indices over any schedule, for methods defined on DDPM steps (SpeeD, docs/speed.md b).

    Discrete schedule: its own steps, step k at t = (k + 1)/T, ᾱ_k its table. Continuous
    schedule: the equivalent grid of `num_steps` equal cells of t; step k owns t ∈ (k/T, (k+1)/T]
    and ᾱ_k = α²((k + 1)/T), so the grid reads the schedule the way a discretised DDPM would.
    Step-indexed constants (SpeeD's τ = 700 and the anchors t*, m) thus keep their meaning as
    positions in time, which is how the paper treats its quad and cosine schedules (τ stays 700,
    the anchors move with the schedule; docs/speed.md b, i.3).
    """

    def __init__(self, schedule: NoiseSchedule, num_steps: int = ScheduleConfig.num_steps) -> None:
        self.schedule = schedule
        self.is_discrete = isinstance(schedule, DiscreteSchedule)
        if isinstance(schedule, DiscreteSchedule):
            self.num_steps = schedule.num_steps
            self.alphas_cumprod = schedule.alphas_cumprod  # (T,) float64
            grid = schedule.logsnr_grid  # (T,) decreasing
            # A discrete schedule's samplers return grid points: λ → the nearest grid λ.
            edges = 0.5 * (grid[1:] + grid[:-1])  # (T − 1,)
        else:
            if num_steps < 2:
                raise ConfigError(f"step grid: expected num_steps >= 2; found {num_steps}")
            self.num_steps = int(num_steps)
            steps = torch.arange(self.num_steps, dtype=torch.float64)
            self.alphas_cumprod = torch.sigmoid(schedule.logsnr((steps + 1.0) / self.num_steps))
            # Cell edges λ(k/T), k = 1..T−1: λ in [λ((k+1)/T), λ(k/T)) belongs to step k.
            edges = schedule.logsnr(steps[1:] / self.num_steps)  # (T − 1,) decreasing
        self._neg_edges = -edges  # (T − 1,) increasing, for searchsorted

    def steps_to_t(self, steps: Tensor, within: Tensor | None = None) -> Tensor:
        """float32 t of int64 `steps`; `within` ∈ [0, 1) (same shape, continuous only) places t
        uniformly inside step k's cell (k/T, (k+1)/T]; None gives the grid point (k + 1)/T.

        t keeps CELL_MARGIN of a cell from both edges: float32 t and λ(t) are off by up to
        ~3e-4 of a cell, and the margin lets `logsnr_to_steps` name the cell unambiguously.
        """
        if isinstance(self.schedule, DiscreteSchedule):
            return self.schedule.step_to_t(steps)
        position = steps.to(torch.float64) + 1.0
        if within is not None:
            inside = CELL_MARGIN + (1.0 - 2.0 * CELL_MARGIN) * within.to(torch.float64)
            position = position - inside
        return (position / self.num_steps).to(torch.float32)

    def logsnr_to_steps(self, logsnr: Tensor) -> Tensor:
        """The step (int64, shape of logsnr) whose grid point (discrete) or cell (continuous)
        holds λ; exact for every t that `steps_to_t` returns.
        """
        if self._neg_edges.device != logsnr.device:
            self._neg_edges = self._neg_edges.to(logsnr.device)
        return torch.searchsorted(self._neg_edges, -logsnr.to(torch.float64).contiguous())

    def change_rate(self) -> Tensor:
        """g_k = ∇Ψ_k with Ψ = 1 − ᾱ and ∇ = numpy.gradient (docs/speed.md b, d); (T,) float64."""
        psi = 1.0 - self.alphas_cumprod.cpu().numpy()
        return torch.from_numpy(np.gradient(psi))

    def peak_change_step(self) -> int:
        """t* = argmax_k ∇Ψ_k, SpeeD's acceleration/deceleration boundary (219 for linear β)."""
        return int(torch.argmax(self.change_rate()))

    def dual_anchor_step(self, threshold: float = DUAL_ANCHOR_THRESHOLD) -> int:
        """m = 1 + the first k with ∇√(1 − ᾱ_k) < threshold (642 for linear β; docs/speed.md b)."""
        rate = np.gradient(np.sqrt(1.0 - self.alphas_cumprod.cpu().numpy()))
        below = np.flatnonzero(rate < threshold)
        if below.size == 0:
            raise ConfigError(
                f"schedule: no step has d sqrt(1 - alpha_bar)/dk < {threshold}, so SpeeD's dual "
                "anchor is undefined; set timesteps.dual_anchor to a step index"
            )
        return int(below[0]) + 1
