"""Training-time distributions over noise levels: which t a training example gets.

As in guided-diffusion's `resample.py`, the distribution is an object, separate from how much a
level counts (weighting.py). Samplers return float t ∈ (0, 1] (t = 1 noisiest); a discrete
schedule's samplers return only its grid values t = (k + 1)/T, so `t_to_step` recovers k
exactly. SpeeD's asymmetric sampler (Wang et al., arXiv 2405.17403; docs/speed.md c) draws steps
from a two-level law by inverse CDF, plus dual steps about an anchor m.
EDM's log-normal noise levels (Karras et al., arXiv 2206.00364; docs/microdit.md g) are drawn in σ
and returned as t of an invertible continuous schedule.
"""

import math
from typing import Protocol

import torch
from torch import Tensor

from frugaldiff.config import DiffusionConfig, TimestepConfig
from frugaldiff.diffusion.schedule import (
    CosineLogSNRSchedule,
    DiscreteSchedule,
    NoiseSchedule,
    StepGrid,
    edm_sigma_to_logsnr,
)
from frugaldiff.errors import ConfigError


class TimestepSampler(Protocol):
    """Draws one t per training example, from the caller's generator only."""

    def sample(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str
    ) -> Tensor:
        """(batch_size,) float32 t on `device`."""
        ...


def two_level_pmf(num_steps: int, k: float, tau: int) -> Tensor:
    """SpeeD's p(step) = k/Z below τ, 1/Z from τ on, Z = T + τ(k − 1) (docs/speed.md c.1); (T,) f64.

    k = 1 (or τ = T with any k) is the uniform law 1/T, bit for bit the same table.
    """
    mass = torch.ones(num_steps, dtype=torch.float64)  # (T,)
    mass[:tau] = float(k)
    return mass / (num_steps + tau * (float(k) - 1.0))


class StepLaw:
    """A pmf over steps, drawn by float64 inverse CDF: min(searchsorted(CDF, u), T − 1).

    u ~ U[0, 1) comes from the caller's generator (one float64 per draw), so the law is exactly
    the official `torch.multinomial`'s (docs/speed.md c.2) and equal tables give equal draws.
    """

    def __init__(self, pmf: Tensor) -> None:
        self.pmf = pmf.to(torch.float64)  # (T,)
        self.cdf = torch.cumsum(self.pmf, dim=0)  # (T,)
        self.lower = self.cdf - self.pmf  # (T,) CDF just below each step

    def draw(
        self, count: int, generator: torch.Generator, with_within: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """(count,) int64 steps on the generator's device and, if asked, where each u fell
        inside its step's CDF interval, within ∈ [0, 1): uniform given the step, independent of it.
        """
        if self.cdf.device != generator.device:
            self.cdf, self.pmf, self.lower = (
                x.to(generator.device) for x in (self.cdf, self.pmf, self.lower)
            )
        u = torch.rand(count, generator=generator, device=generator.device, dtype=torch.float64)
        # right=True: step k for CDF_{k−1} <= u < CDF_k; the clamp covers CDF_{T−1} < 1 by rounding.
        steps = torch.searchsorted(self.cdf, u, right=True).clamp_(max=self.pmf.numel() - 1)
        if not with_within:
            return steps, None
        within = (u - self.lower[steps]) / self.pmf[steps]  # (count,)
        return steps, within.clamp_(0.0, 1.0 - torch.finfo(torch.float64).eps)


class UniformTimestepSampler:
    """t ~ U(0, 1] for a continuous schedule; k ~ U{0..T−1}, t = (k + 1)/T for a discrete one.

    The continuous draw is 1 − u with u ~ U[0, 1), so t = 0 (the clean data, where ε-targets and
    σ-divisions are undefined) is never drawn but t = 1 can be. The discrete draw is SpeeD's
    inverse-CDF routine with p = 1/T (docs/speed.md c.2), so `speed` with k = 1 and no dual gives
    the same steps for the same generator state. Draws happen on the generator's device and are then
    moved, so a CPU generator gives the same t for any training device.
    """

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule
        if isinstance(schedule, DiscreteSchedule):
            self.law = StepLaw(two_level_pmf(schedule.num_steps, 1.0, schedule.num_steps))

    @classmethod
    def from_config(
        cls, cfg: TimestepConfig, schedule: NoiseSchedule, sigma_data: float
    ) -> "UniformTimestepSampler":
        del sigma_data  # a law in t, whatever the data scale
        return cls(schedule)

    def sample(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str
    ) -> Tensor:
        if isinstance(self.schedule, DiscreteSchedule):
            steps, _ = self.law.draw(batch_size, generator)  # (B,) int64
            return self.schedule.step_to_t(steps).to(device)  # (B,)
        u = torch.rand(batch_size, generator=generator, device=generator.device)  # (B,) in [0, 1)
        return (1.0 - u).to(device)  # (B,) in (0, 1]


class SpeeDTimestepSampler:
    """SpeeD's asymmetric sampler (docs/speed.md c): steps below τ are k times likelier, plus duals.

    Per batch of n: n₁ = ⌊n/2⌋ + 1 primaries s ~ p (`two_level_pmf`), then the duals
    d = m − s if s < m else s − m of the first n − n₁ primaries; no importance weights. With
    `dual=False` all n are primaries. The marginal thus depends on n (`marginal`); objectives
    draw for the global batch and slice (sharding.py), so n is never a per-rank count.

    Steps live on a `StepGrid`: a discrete schedule's own steps (t = (k + 1)/T), or for a
    continuous schedule T = 1000 equal cells of t, with τ and the derived m read as positions
    on that grid (τ = 700 ↔ t = 0.7). We chose the grid over matching the logSNR of the linear-β
    step τ because the paper keeps τ = 700 as a step index when it changes the schedule (quad,
    cosine) and re-derives only m (docs/speed.md b, i.3); a logSNR match would move τ instead. On
    the continuous grid t is spread uniformly inside each step's cell (bar a 1% margin at its edges,
    `StepGrid.steps_to_t`), reusing the inverse-CDF uniform, so the cell equals the discrete draw's
    step for the same generator; a dual keeps its primary's place in the cell. Each cell gets
    exactly its step's mass, so k = 1 without dual is U(0, 1] on every cell (not in bits: `uniform`
    draws 1 − u there).
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        k: float = TimestepConfig.k,
        tau: int = TimestepConfig.tau,
        dual: bool = TimestepConfig.dual,
        dual_anchor: int | None = TimestepConfig.dual_anchor,
    ) -> None:
        self.grid = StepGrid(schedule)
        num_steps = self.grid.num_steps
        if not (math.isfinite(k) and k >= 1.0):
            raise ConfigError(f"timesteps.k={k}; expected a finite k >= 1 (docs/speed.md i.2)")
        if not 1 <= tau <= num_steps:
            raise ConfigError(f"timesteps.tau={tau}; expected a step index in [1, {num_steps}]")
        self.anchor = self.grid.dual_anchor_step() if dual_anchor is None else int(dual_anchor)
        if dual and not 0 <= self.anchor <= num_steps - 1:
            source = "derived from the schedule" if dual_anchor is None else "given"
            raise ConfigError(
                f"timesteps.dual_anchor={self.anchor} ({source}); "
                f"expected a step index in [0, {num_steps - 1}]"
            )
        self.k, self.tau, self.dual = float(k), int(tau), bool(dual)
        self.law = StepLaw(two_level_pmf(num_steps, self.k, self.tau))

    @classmethod
    def from_config(
        cls, cfg: TimestepConfig, schedule: NoiseSchedule, sigma_data: float
    ) -> "SpeeDTimestepSampler":
        del sigma_data  # a law over steps of t, whatever the data scale
        return cls(schedule, k=cfg.k, tau=cfg.tau, dual=cfg.dual, dual_anchor=cfg.dual_anchor)

    def primary_count(self, batch_size: int) -> int:
        """n₁ = ⌊n/2⌋ + 1 with dual sampling (docs/speed.md c.2), n without."""
        return batch_size // 2 + 1 if self.dual else batch_size

    def dual_of(self, steps: Tensor) -> Tensor:
        """d = m − s for s < m, s − m otherwise (docs/speed.md c.3); never above m."""
        return torch.where(steps < self.anchor, self.anchor - steps, steps - self.anchor)

    def dual_pmf(self) -> Tensor:
        """(T,) float64 law of d(s) for s ~ p (the dual half of a batch)."""
        pmf = self.law.pmf.cpu()
        steps = torch.arange(pmf.numel())
        return torch.zeros_like(pmf).index_add_(0, self.dual_of(steps), pmf)

    def marginal(self, batch_size: int) -> Tensor:
        """(T,) float64 law of a uniformly picked batch slot: (n₁·p + (n − n₁)·q)/n."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; found {batch_size}")
        primaries = min(self.primary_count(batch_size), batch_size)
        pmf = self.law.pmf.cpu()
        return (primaries * pmf + (batch_size - primaries) * self.dual_pmf()) / batch_size

    def sample(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str
    ) -> Tensor:
        continuous = not self.grid.is_discrete
        primaries = self.primary_count(batch_size)
        steps, within = self.law.draw(primaries, generator, with_within=continuous)  # (n₁,)
        if self.dual:
            duals = batch_size - primaries  # n − n₁ <= n₁ − 1, so every dual has its primary
            steps = torch.cat([steps, self.dual_of(steps[:duals])])[:batch_size]  # (B,)
            if within is not None:
                within = torch.cat([within, within[:duals]])[:batch_size]  # (B,)
        return self.grid.steps_to_t(steps, within).to(device)  # (B,) float32


class EDMLogNormalTimestepSampler:
    """EDM's training law ln σ ~ N(P_mean, P_std²) (Karras et al. 2022, Table 1), on the VP core.

    σ is EDM's noise level in data units; on data ÷ σ_d it is log-SNR λ = 2 ln σ_d − 2 ln σ =
    2 ln σ_d − 2(P_mean + P_std·n), n ~ N(0, 1) (docs/microdit.md g), returned as t = λ⁻¹(λ) of the
    cosine schedule (any strictly decreasing λ(t) would do: t is only a coordinate here). n is
    drawn in float64 on the generator's device. λ is clamped to the schedule's [λ_min, λ_max]
    (cosine ±20: |n| ≳ 8 at the pixel values, never in practice), so t ∈ [0, 1].
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        p_mean: float = TimestepConfig.p_mean,
        p_std: float = TimestepConfig.p_std,
        sigma_data: float = DiffusionConfig.sigma_data,
    ) -> None:
        if not isinstance(schedule, CosineLogSNRSchedule):
            raise ConfigError(
                f"timesteps.name='edm_lognormal' maps sigma to t by inverting λ(t), which schedule "
                f"{type(schedule).__name__} does not offer; expected schedule 'cosine'"
            )
        if not (math.isfinite(p_mean) and math.isfinite(p_std) and p_std > 0):
            raise ConfigError(
                f"timesteps: p_mean={p_mean}, p_std={p_std}; expected finite values, p_std > 0"
            )
        if not (math.isfinite(sigma_data) and sigma_data > 0):
            raise ConfigError(f"diffusion.sigma_data={sigma_data}; expected a finite value > 0")
        self.schedule = schedule
        self.p_mean, self.p_std, self.sigma_data = float(p_mean), float(p_std), float(sigma_data)

    @classmethod
    def from_config(
        cls, cfg: TimestepConfig, schedule: NoiseSchedule, sigma_data: float
    ) -> "EDMLogNormalTimestepSampler":
        return cls(schedule, p_mean=cfg.p_mean, p_std=cfg.p_std, sigma_data=sigma_data)

    def sample(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str
    ) -> Tensor:
        n = torch.randn(
            batch_size, generator=generator, device=generator.device, dtype=torch.float64
        )
        log_sigma = self.p_mean + self.p_std * n  # (B,) ln σ in data units
        logsnr = edm_sigma_to_logsnr(log_sigma.exp(), self.sigma_data)  # (B,)
        logsnr = logsnr.clamp(self.schedule.logsnr_min, self.schedule.logsnr_max)
        t = self.schedule.t_from_logsnr(logsnr).clamp(0.0, 1.0)  # (B,) float64
        return t.to(device=device, dtype=torch.float32)  # (B,)


TimestepSamplerClass = (
    type[UniformTimestepSampler] | type[SpeeDTimestepSampler] | type[EDMLogNormalTimestepSampler]
)
TIMESTEP_SAMPLERS: dict[str, TimestepSamplerClass] = {
    "uniform": UniformTimestepSampler,
    "speed": SpeeDTimestepSampler,
    "edm_lognormal": EDMLogNormalTimestepSampler,
}


def build_timestep_sampler(
    cfg: TimestepConfig | str,
    schedule: NoiseSchedule,
    sigma_data: float = DiffusionConfig.sigma_data,
) -> TimestepSampler:
    """The sampler named by cfg.name (a bare name means its defaults); ConfigError otherwise.

    `sigma_data` is the run's diffusion.sigma_data (data ÷ σ_d), which places EDM's σ on λ.
    """
    if isinstance(cfg, str):
        cfg = TimestepConfig(name=cfg)
    if cfg.name not in TIMESTEP_SAMPLERS:
        raise ConfigError(
            f"timesteps.name={cfg.name!r}; expected one of {sorted(TIMESTEP_SAMPLERS)}"
        )
    return TIMESTEP_SAMPLERS[cfg.name].from_config(cfg, schedule, sigma_data)
