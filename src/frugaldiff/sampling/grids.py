"""The t grids solvers step along, and their schedule values precomputed once per solve.

A sample set of N steps uses `timestep_grid` (uniform in t; DDIM's trailing respacing on a
discrete schedule), `iddpm_timestep_grid` (IDDPM's respacing, SpeeD's evaluation) or, for Heun,
EDM's ρ = 7 σ-grid mapped to t (`edm_timestep_grid`). Every grid is descending, lies in [0, 1]
and ends at 0, where a solver returns x̂.
"""

import torch
from torch import Tensor

from frugaldiff.config import DiffusionConfig
from frugaldiff.diffusion.schedule import (
    CosineLogSNRSchedule,
    DiscreteSchedule,
    NoiseSchedule,
    edm_sigma_to_logsnr,
)
from frugaldiff.errors import ConfigError


def timestep_grid(num_steps: int, schedule: NoiseSchedule) -> Tensor:
    """Descending (num_steps + 1,) float64 grid from t = 1 to t = 0.

    Continuous schedules: t_i = i/N, i = N..0. Discrete schedules (T steps): t_i = round(iT/N)/T,
    i.e. step k_i = round(iT/N) − 1, DDIM's "trailing" respacing (Lin et al., arXiv 2305.08891,
    Table 2): it always contains the last step T − 1 (t = 1), uses only t values the schedule
    defines, and equals i/N exactly when N divides T. The final 0 is the data, reached by
    returning x̂.
    """
    if num_steps < 1:
        raise ConfigError(f"sampling.steps: expected an int >= 1; found {num_steps}")
    index = torch.arange(num_steps, -1, -1, dtype=torch.int64)  # (N + 1,) N..0
    if not isinstance(schedule, DiscreteSchedule):
        return index.to(torch.float64) / num_steps
    total = schedule.num_steps
    if num_steps > total:
        raise ConfigError(f"sampling.steps={num_steps}: a discrete schedule has only {total} steps")
    # round(iT/N) with halves up, in integers; strictly increasing in i since T/N >= 1.
    grid_steps = (2 * index * total + num_steps) // (2 * num_steps)  # (N + 1,) in {0..T}
    return grid_steps.to(torch.float64) / total


def iddpm_timestep_grid(num_steps: int, schedule: NoiseSchedule) -> Tensor:
    """IDDPM's respacing of a T-step schedule to N steps, as a descending (N + 1,) t grid.

    Steps k_i = round(i(T − 1)/(N − 1)), i = 0..N−1, accumulated and rounded (half to even) as
    IDDPM's `space_timesteps(T, [N])` does, so it holds both step 0 and step T − 1: the grid
    SpeeD's official evaluation samples on (docs/speed.md: "250-step respaced ancestral DDPM"). The
    trailing grid (`timestep_grid`) instead ends its model calls at step T/N − 1. Step k is
    t = (k + 1)/T; the final 0 is the data, reached by returning x̂ at step 0, which is IDDPM's
    noiseless last step (its posterior mean there is x̂ itself).
    """
    if not isinstance(schedule, DiscreteSchedule):
        raise ConfigError(
            f"sampling.spacing='iddpm' respaces a discrete schedule's steps; schedule "
            f"{type(schedule).__name__} is continuous: use spacing 'trailing'"
        )
    total = schedule.num_steps
    if not 2 <= num_steps <= total:
        raise ConfigError(
            f"sampling.steps={num_steps} with spacing 'iddpm': expected 2..{total} (IDDPM's "
            f"one-step respacing keeps only step 0)"
        )
    stride, position, steps = (total - 1) / (num_steps - 1), 0.0, []
    for _ in range(num_steps):
        steps.append(round(position))
        position += stride
    t = (torch.tensor(steps[::-1], dtype=torch.float64) + 1.0) / total  # (N,) descending
    return torch.cat([t, t.new_zeros(1)])  # (N + 1,)


# How a sample set of N steps places them (SampleSetConfig.spacing); Heun has its own σ-grid.
GRIDS = {"trailing": timestep_grid, "iddpm": iddpm_timestep_grid}


# EDM's sampler defaults (Karras et al. 2022, Table 1; docs/microdit.md g): σ from 80 to
# 0.002, ρ = 7.
EDM_SIGMA_MIN, EDM_SIGMA_MAX, EDM_RHO = 0.002, 80.0, 7.0


def edm_sigma_grid(
    num_steps: int,
    sigma_min: float = EDM_SIGMA_MIN,
    sigma_max: float = EDM_SIGMA_MAX,
    rho: float = EDM_RHO,
) -> Tensor:
    """EDM's (N,) float64 σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ (eq. 5).

    Descending from σ_max to σ_min; N = 1 is σ_max alone (one Euler step to the data).
    """
    if num_steps < 1:
        raise ConfigError(f"sampling.steps: expected an int >= 1; found {num_steps}")
    if not 0 < sigma_min < sigma_max:
        raise ConfigError(f"heun: expected 0 < sigma_min < sigma_max; got {sigma_min}, {sigma_max}")
    if num_steps == 1:
        return torch.tensor([sigma_max], dtype=torch.float64)
    ramp = torch.arange(num_steps, dtype=torch.float64) / (num_steps - 1)  # (N,) 0..1
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return (hi + ramp * (lo - hi)) ** rho  # (N,)


def edm_timestep_grid(
    num_steps: int,
    schedule: NoiseSchedule,
    sigma_data: float = DiffusionConfig.sigma_data,
    sigma_min: float = EDM_SIGMA_MIN,
    sigma_max: float = EDM_SIGMA_MAX,
    rho: float = EDM_RHO,
) -> Tensor:
    """EDM's σ-grid as a descending (N + 1,) float64 t grid, t_i = λ⁻¹(2 ln(σ_d/σ_i)), then 0.

    σ is in data units and the core sees data ÷ σ_d (schedule.edm_sigma_to_logsnr); needs the
    cosine schedule's inverse, and every λ_i inside its [λ_min, λ_max].
    """
    if not isinstance(schedule, CosineLogSNRSchedule):
        raise ConfigError(
            f"sampling.solver='heun' places EDM's sigma grid by inverting λ(t), which schedule "
            f"{type(schedule).__name__} does not offer; expected diffusion.schedule 'cosine'"
        )
    logsnr = edm_sigma_to_logsnr(edm_sigma_grid(num_steps, sigma_min, sigma_max, rho), sigma_data)
    if float(logsnr.min()) < schedule.logsnr_min or float(logsnr.max()) > schedule.logsnr_max:
        raise ConfigError(
            f"heun: sigma in [{sigma_min}, {sigma_max}] at sigma_data={sigma_data} is log-SNR "
            f"[{float(logsnr.min()):.2f}, {float(logsnr.max()):.2f}], outside the schedule's "
            f"[{schedule.logsnr_min}, {schedule.logsnr_max}]"
        )
    t = schedule.t_from_logsnr(logsnr)  # (N,) float64, ascending λ ↔ descending t
    return torch.cat([t, t.new_zeros(1)])  # (N + 1,)


class SolverGrid:
    """Schedule values on a solver grid as Python floats, computed once in float64.

    Scalars keep the per-step work to a few tensor ops, and float64 keeps σ_s/σ_t and
    1 − e^{λ_t − λ_s} accurate for fine grids whatever the sample dtype.
    """

    def __init__(self, schedule: NoiseSchedule, timesteps: Tensor) -> None:
        t = timesteps.detach().to("cpu", torch.float64)  # (N + 1,)
        if t.ndim != 1 or t.numel() < 2 or not bool((t[1:] < t[:-1]).all()):
            raise ValueError(f"timesteps: expected a strictly decreasing 1-D grid; found {t}")
        if float(t[0]) > 1.0 or float(t[-1]) < 0.0:
            raise ValueError(f"timesteps: expected values in [0, 1]; found {t}")
        alpha, sigma = schedule.alpha_sigma(t)  # (N + 1,), (N + 1,)
        self.t: list[float] = t.tolist()
        self.alpha: list[float] = alpha.tolist()
        self.sigma: list[float] = sigma.tolist()
        self.logsnr: list[float] = schedule.logsnr(t).tolist()
        self.num_steps = len(self.t) - 1
        # σ_{t_{i+d}} / σ_{t_i} for the jumps solvers make: d = 1 (one step), d = 2 (S's jump).
        self._sigma_ratios = {
            d: schedule.sigma_ratio(t[:-d], t[d:]).tolist() for d in (1, 2) if self.num_steps >= d
        }

    def sigma_ratio(self, i: int, j: int) -> float:
        """σ_{t_j} / σ_{t_i} for j = i + 1 or i + 2."""
        return self._sigma_ratios[j - i][i]

    def time_batch(self, i: int, z: Tensor) -> Tensor:
        """t_i (B,) for the denoiser: float32, or float64 for float64 z (never half: 0.999 → 1)."""
        dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
        return torch.full((z.shape[0],), self.t[i], dtype=dtype, device=z.device)  # (B,)
