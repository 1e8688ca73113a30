"""Inference solvers in k-diffusion style: they see only a denoiser D(z, t) → x̂ and a t grid.

DDIM (Song et al., arXiv 2010.02502), ancestral DDPM with PD's `small`/`large` variances
(Salimans & Ho, arXiv 2202.00512) and Meng et al.'s stochastic sampler S (arXiv 2210.03142),
all as written in docs/guided_distillation.md d, and EDM's Heun (Karras et al., arXiv 2206.00364,
Alg. 1) on its ρ = 7 σ-grid (docs/microdit.md g). Every solver has one signature,
`solve(denoiser, x_T, timesteps, generators) -> x_0`; `timesteps` is descending and ends at 0,
and the step to t = 0 returns x̂. Stochastic solvers draw per-image noise from `generators`
(one per image, see noise.py); deterministic ones ignore it. `default_timesteps(N)` is the grid a
sample set of N steps uses: the one its `spacing` names (grids.py: DDIM's trailing grid or
IDDPM's respacing), or Heun's σ-grid. Denoisers and their wrappers are in denoisers.py.
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from frugaldiff.config import ANCESTRAL_VARIANCES, DiffusionConfig
from frugaldiff.diffusion.learned_variance import interpolate_log_variance
from frugaldiff.diffusion.schedule import NoiseSchedule
from frugaldiff.errors import ConfigError
from frugaldiff.sampling.denoisers import Denoiser
from frugaldiff.sampling.grids import (
    EDM_RHO,
    EDM_SIGMA_MAX,
    EDM_SIGMA_MIN,
    GRIDS,
    SolverGrid,
    edm_timestep_grid,
)
from frugaldiff.sampling.learned_variance import check_gives_variance, respaced_log_variances
from frugaldiff.sampling.noise import randn_per_image


def ddim_update(
    z_t: Tensor,
    x0: Tensor,
    alpha_t: float | Tensor,
    alpha_s: float | Tensor,
    sigma_ratio: float | Tensor,
) -> Tensor:
    """z_s = α_s x̂ + (σ_s/σ_t)(z_t − α_t x̂): the DDIM / probability-flow Euler step.

    Coefficients are floats or tensors broadcastable to z_t (e.g. (B, 1, 1, 1) per-sample
    times, as progressive distillation's teacher steps need).
    """
    return alpha_s * x0 + sigma_ratio * (z_t - alpha_t * x0)  # (B, C, H, W)


class Solver(ABC):
    """Integrates from x_T at timesteps[0] down the grid; built from the schedule."""

    is_stochastic: ClassVar[bool] = False

    def __init__(self, schedule: NoiseSchedule, spacing: str = "trailing") -> None:
        if spacing not in GRIDS:
            raise ConfigError(f"sampling.spacing={spacing!r}; expected one of {list(GRIDS)}")
        self.schedule, self.spacing = schedule, spacing

    def default_timesteps(self, num_steps: int) -> Tensor:
        """The (N + 1,) float64 grid of an N-step sample set, placed by `spacing` (grids.py)."""
        return GRIDS[self.spacing](num_steps, self.schedule)

    def _ddim_to(self, grid: SolverGrid, i: int, j: int, z_t: Tensor, x0: Tensor) -> Tensor:
        """DDIM from grid point i to j > i; returns x̂ itself when t_j = 0."""
        if grid.t[j] == 0.0:
            return x0
        return ddim_update(z_t, x0, grid.alpha[i], grid.alpha[j], grid.sigma_ratio(i, j))

    def solve(
        self,
        denoiser: Denoiser,
        x_T: Tensor,
        timesteps: Tensor,
        generators: Sequence[torch.Generator] | None = None,
    ) -> Tensor:
        """x_0 (B, C, H, W) from x_T (B, C, H, W) at timesteps[0], down a descending grid.

        `generators`: one per image, required by stochastic solvers (except Meng's S at N = 1,
        which draws nothing), ignored by deterministic ones.
        """
        grid = SolverGrid(self.schedule, timesteps)
        needs_noise = self.is_stochastic and grid.num_steps > 1
        if needs_noise and (generators is None or len(generators) != x_T.shape[0]):
            found = "none" if generators is None else len(generators)
            raise ValueError(
                f"{type(self).__name__} needs one generator per image: "
                f"expected {x_T.shape[0]}, found {found}"
            )
        return self._integrate(denoiser, x_T, grid, generators or ())

    @abstractmethod
    def _integrate(
        self, denoiser: Denoiser, x_T: Tensor, grid: SolverGrid, gens: Sequence[torch.Generator]
    ) -> Tensor: ...


class DDIMSolver(Solver):
    """Deterministic DDIM ("D"): one call per step; the step to t = 0 returns x̂."""

    def _integrate(
        self, denoiser: Denoiser, x_T: Tensor, grid: SolverGrid, gens: Sequence[torch.Generator]
    ) -> Tensor:
        z = x_T
        for i in range(grid.num_steps):
            x0 = denoiser(z, grid.time_batch(i, z))  # (B, C, H, W)
            z = self._ddim_to(grid, i, i + 1, z, x0)
        return z


class AncestralSolver(Solver):
    """Ancestral DDPM: z_s ~ N(r(α_s/α_t) z_t + (1 − r) α_s x̂, v), r = e^{λ_t − λ_s}.

    v = (1 − r)σ_s² (`small`, the posterior variance β̃) or (1 − r)σ_t² (`large`, β_t; PD's
    choice and our default). On a grid step t → s these are IDDPM's respaced β' = 1 − ᾱ_t/ᾱ_s
    and β̃' = (1 − ᾱ_s)/(1 − ᾱ_t)·β'; `learned` takes log v = frac·log β' + (1 − frac)·log β̃'
    with the model's frac (Nichol & Dhariwal, arXiv 2102.09672, eq. 15; docs/speed.md (b)), through
    the denoiser's `with_frac`. PD's `medium:f` log-interpolation is not implemented.
    """

    is_stochastic: ClassVar[bool] = True
    VARIANCES: ClassVar[tuple[str, ...]] = ANCESTRAL_VARIANCES

    def __init__(
        self, schedule: NoiseSchedule, variance: str = "large", spacing: str = "trailing"
    ) -> None:
        super().__init__(schedule, spacing)
        if variance not in self.VARIANCES:
            raise ConfigError(
                f"sampling.variance={variance!r}; expected one of {list(self.VARIANCES)}"
            )
        self.variance = variance

    def _integrate(
        self, denoiser: Denoiser, x_T: Tensor, grid: SolverGrid, gens: Sequence[torch.Generator]
    ) -> Tensor:
        z = x_T
        if self.variance == "learned":
            check_gives_variance(denoiser)  # once, before any step
        for i in range(grid.num_steps):
            if self.variance == "learned":
                x0, frac = denoiser.with_frac(z, grid.time_batch(i, z))  # type: ignore[attr-defined]
            else:
                x0 = denoiser(z, grid.time_batch(i, z))  # (B, C, H, W)
            if grid.t[i + 1] == 0.0:
                return x0  # the last step is deterministic and draws nothing
            one_minus_r = -math.expm1(grid.logsnr[i] - grid.logsnr[i + 1])  # 1 − r, r ≈ 1
            alpha_t, alpha_s = grid.alpha[i], grid.alpha[i + 1]
            mean = (1.0 - one_minus_r) * (alpha_s / alpha_t) * z + one_minus_r * alpha_s * x0
            noise = randn_per_image(gens, tuple(z.shape[1:]), z.device, z.dtype)
            if self.variance == "learned":
                log_large, log_small = respaced_log_variances(grid.logsnr[i], grid.logsnr[i + 1])
                log_var = interpolate_log_variance(frac, log_large, log_small)  # (B, C, H, W)
                z = mean + torch.exp(0.5 * log_var) * noise  # (B, C, H, W)
                continue
            sigma_v = grid.sigma[i + 1] if self.variance == "small" else grid.sigma[i]
            z = mean + math.sqrt(one_minus_r) * sigma_v * noise  # (B, C, H, W)
        return z


class MengStochasticSolver(Solver):
    """Meng et al.'s sampler S: jump 2/N deterministically, re-noise 1/N with q(z_s | z_k).

    At grid index i (t = t_i): x̂ = D(z_t, t), z_k = DDIM step to k = t_{i+2} (x̂ if k = 0),
    then z_s = (α_s/α_k) z_k + σ_{s|k} ε′ at s = t_{i+1}, σ²_{s|k} = σ_s²(1 − e^{λ_s − λ_k}).
    The last call, at t_{N−1}, is a DDIM step (returning x̂ at 0). N calls; N = 1 is DDIM.
    The `jump_model: half | same` choice (a second denoiser for the 2/N jump) is not here.
    """

    is_stochastic: ClassVar[bool] = True

    def renoise_coefficients(self, k: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """(α_s/α_k, σ_{s|k}) of the forward kernel q(z_s | z_k) for times k < s, any shape."""
        alpha_k, _ = self.schedule.alpha_sigma(k)
        alpha_s, sigma_s = self.schedule.alpha_sigma(s)
        # Deviation: at k = 0 we use the data kernel (α_k = 1, σ_k = 0), since z_0 = x̂ is the
        # data; the schedule's own t = 0 values differ by ~1e-9 (cosine) or ~5e-5 (linear β).
        is_data = k == 0
        ratio = torch.where(is_data, alpha_s, alpha_s / alpha_k)
        one_minus = -torch.expm1(self.schedule.logsnr(s) - self.schedule.logsnr(k))
        one_minus = torch.where(is_data, torch.ones_like(one_minus), one_minus)
        return ratio, sigma_s * one_minus.sqrt()

    def _integrate(
        self, denoiser: Denoiser, x_T: Tensor, grid: SolverGrid, gens: Sequence[torch.Generator]
    ) -> Tensor:
        t = torch.tensor(grid.t, dtype=torch.float64)  # (N + 1,)
        ratios, stds = self.renoise_coefficients(t[2:], t[1:-1])  # (N − 1,): t_{i+2} → t_{i+1}
        z = x_T
        for i in range(grid.num_steps):
            x0 = denoiser(z, grid.time_batch(i, z))  # (B, C, H, W)
            if i == grid.num_steps - 1:
                return self._ddim_to(grid, i, i + 1, z, x0)
            z_k = self._ddim_to(grid, i, i + 2, z, x0)  # the 2/N jump, one call
            noise = randn_per_image(gens, tuple(z.shape[1:]), z.device, z.dtype)
            z = float(ratios[i]) * z_k + float(stds[i]) * noise  # (B, C, H, W) at t_{i+1}
        return z


class HeunSolver(Solver):
    """EDM's deterministic 2nd-order Heun (Karras et al. 2022, Alg. 1), on any grid.

    In the VE coordinates y = z/α, s = σ_t/α = e^{−λ/2} the probability-flow ODE is
    dy/ds = (y − x̂)/s, EDM's ODE exactly (y = x_σ/σ_d, s = σ/σ_d on data ÷ σ_d). Each step
    takes an Euler step (DDIM) to s_{i+1} and corrects with the slope there; the last step, to
    t = 0, is Euler and returns x̂. N steps make 2N − 1 calls. `default_timesteps` is EDM's
    ρ = 7 σ-grid from σ_max = 80 to σ_min = 0.002 (σ in data units, hence `sigma_data`); x_T is
    the caller's N(0, I) there (EDM's N(0, σ_max²) is that times σ/√(σ² + σ_d²) ≈ 1 − 2e-5).
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        sigma_data: float = DiffusionConfig.sigma_data,
        sigma_min: float = EDM_SIGMA_MIN,
        sigma_max: float = EDM_SIGMA_MAX,
        rho: float = EDM_RHO,
    ) -> None:
        super().__init__(schedule)
        self.sigma_data = sigma_data
        self.sigma_min, self.sigma_max, self.rho = sigma_min, sigma_max, rho

    def default_timesteps(self, num_steps: int) -> Tensor:
        """EDM's σ-grid as t (`edm_timestep_grid`), then 0."""
        return edm_timestep_grid(
            num_steps, self.schedule, self.sigma_data, self.sigma_min, self.sigma_max, self.rho
        )

    def _integrate(
        self, denoiser: Denoiser, x_T: Tensor, grid: SolverGrid, gens: Sequence[torch.Generator]
    ) -> Tensor:
        level = [math.exp(-0.5 * lam) for lam in grid.logsnr]  # s_i = σ_i/α_i
        y = x_T / grid.alpha[0]  # (B, C, H, W) VE state
        for i in range(grid.num_steps):
            x0 = denoiser(grid.alpha[i] * y, grid.time_batch(i, y))  # (B, C, H, W)
            if grid.t[i + 1] == 0.0:
                return x0  # Euler to s = 0 lands on x̂
            slope = (y - x0) / level[i]  # dy/ds at s_i
            step = level[i + 1] - level[i]  # < 0
            y_euler = y + step * slope  # (B, C, H, W), DDIM's step
            x0_next = denoiser(grid.alpha[i + 1] * y_euler, grid.time_batch(i + 1, y))
            slope_next = (y_euler - x0_next) / level[i + 1]
            y = y + 0.5 * step * (slope + slope_next)  # (B, C, H, W) trapezoid
        return grid.alpha[-1] * y  # a grid ending above t = 0: the VP state there


SOLVERS: dict[str, type[Solver]] = {
    "ddim": DDIMSolver,
    "ancestral": AncestralSolver,
    "stochastic": MengStochasticSolver,
    "heun": HeunSolver,
}


def build_solver(
    name: str,
    schedule: NoiseSchedule,
    *,
    variance: str | None = None,
    spacing: str = "trailing",
    sigma_data: float = DiffusionConfig.sigma_data,
) -> Solver:
    """The solver named `name`; `variance` (ancestral only) defaults to AncestralSolver's.

    `spacing` places an N-step set's grid (grids.GRIDS); heun has EDM's σ-grid instead, placed
    on t by `sigma_data` (the run's diffusion.sigma_data), so it takes only "trailing" there.
    """
    if name not in SOLVERS:
        raise ConfigError(f"sampling.solver={name!r}; expected one of {sorted(SOLVERS)}")
    if name == "heun":
        if variance is not None:
            raise ConfigError("sampling.variance is set, but solver 'heun' has no variance")
        if spacing != "trailing":
            raise ConfigError(
                f"sampling.spacing={spacing!r}, but solver 'heun' samples on EDM's sigma grid"
            )
        return HeunSolver(schedule, sigma_data=sigma_data)
    if name == "ancestral":
        return AncestralSolver(schedule, variance or "large", spacing)
    if variance is not None:
        raise ConfigError(f"sampling.variance is set, but solver {name!r} has no variance")
    return SOLVERS[name](schedule, spacing)
