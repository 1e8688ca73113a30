"""Solvers on Gaussian data with its exact denoiser (docs/guided_distillation.md j).

For x ~ N(μ, s²) per pixel, E[x | z_t] = μ + α s²(z − αμ)/(α²s² + σ²), and the probability-flow
ODE carries z_1 to μ + s(z_1 − α_1 μ)/√(α_1²s² + σ_1²). Samples use (B, 1, 64, 64) images, so
B generators give B·4096 i.i.d. pixels: SE(mean) = s/√n, SE(std) ≈ s/√(2n).
"""

import itertools

import pytest
import torch
from torch import Tensor

from frugaldiff.config import GRID_SPACINGS
from frugaldiff.diffusion.schedule import (
    CosineLogSNRSchedule,
    DiscreteSchedule,
    LinearBetaSchedule,
    NoiseSchedule,
    logsnr_to_edm_sigma,
)
from frugaldiff.errors import ConfigError
from frugaldiff.rng import derive_seed, make_generator
from frugaldiff.sampling.denoisers import Denoiser, clip_denoiser
from frugaldiff.sampling.grids import (
    GRIDS,
    edm_sigma_grid,
    edm_timestep_grid,
    iddpm_timestep_grid,
    timestep_grid,
)
from frugaldiff.sampling.noise import randn_per_image
from frugaldiff.sampling.solvers import (
    SOLVERS,
    AncestralSolver,
    DDIMSolver,
    HeunSolver,
    MengStochasticSolver,
    build_solver,
)
from tests.unit.counting import CallCounter

F64 = torch.float64
MU, STD = 0.3, 0.5
COSINE = CosineLogSNRSchedule()
LINEAR = LinearBetaSchedule()


def exact_denoiser(schedule: NoiseSchedule, mu: float = MU, std: float = STD) -> Denoiser:
    def denoise(z: Tensor, t: Tensor) -> Tensor:
        alpha, sigma = schedule.alpha_sigma(t.to(F64))  # (B,), (B,)
        a = alpha.reshape(-1, 1, 1, 1).to(z.dtype)
        s = sigma.reshape(-1, 1, 1, 1).to(z.dtype)
        return mu + a * std**2 * (z - a * mu) / (a**2 * std**2 + s**2)  # (B, C, H, W)

    return denoise


def flow_map(schedule: NoiseSchedule, z1: Tensor, t_start: float = 1.0) -> Tensor:
    alpha, sigma = schedule.alpha_sigma(torch.tensor(t_start, dtype=F64))
    return MU + STD * (z1 - alpha * MU) / torch.sqrt(alpha**2 * STD**2 + sigma**2)


def generators(count: int, base_seed: int = 0) -> list[torch.Generator]:
    return [make_generator(derive_seed(base_seed, "image", i)) for i in range(count)]


def assert_law(x: Tensor, mean: float, std: float, num_se: float = 3.0) -> None:
    n = x.numel()
    assert abs(float(x.mean()) - mean) < num_se * std / n**0.5
    assert abs(float(x.std()) - std) < num_se * std / (2 * n) ** 0.5


@pytest.mark.parametrize(("schedule", "steps", "tol"), [(COSINE, 1024, 5e-3), (LINEAR, 1000, 1e-2)])
def test_ddim_converges_to_the_flow_map(schedule: NoiseSchedule, steps: int, tol: float) -> None:
    z1 = torch.linspace(-4.5, 4.5, 201, dtype=F64).reshape(-1, 1, 1, 1)
    target = flow_map(schedule, z1)
    solver, denoise = DDIMSolver(schedule), exact_denoiser(schedule)
    errors = []
    for n in (steps // 64, steps // 16, steps // 4, steps):
        x0 = solver.solve(denoise, z1, timestep_grid(n, schedule))
        errors.append(float((x0 - target).abs().max()))
    assert all(later < 0.5 * earlier for earlier, later in itertools.pairwise(errors))
    assert errors[-1] < tol


def test_ddim_carries_noise_to_the_data_law() -> None:
    gens = generators(4)
    z1 = randn_per_image(gens, (1, 64, 64), "cpu", F64)
    x0 = DDIMSolver(COSINE).solve(exact_denoiser(COSINE), z1, timestep_grid(1024, COSINE))
    assert_law(x0, MU, STD)


def test_ancestral_samples_the_data_law() -> None:
    gens = generators(4, base_seed=1)
    z1 = randn_per_image(gens, (1, 64, 64), "cpu", F64)
    solver = AncestralSolver(COSINE, variance="large")
    x0 = solver.solve(exact_denoiser(COSINE), z1, timestep_grid(256, COSINE), gens)
    assert_law(x0, MU, STD)


def test_ancestral_small_variance_is_the_exact_posterior() -> None:
    # Point-mass data: x̂ = μ exactly, so each `small` step samples q(z_s | z_t, x = μ) and the
    # marginal at every grid point is exactly N(α_s μ, σ_s²), even with 3 coarse steps.
    gens = generators(4, base_seed=2)
    alpha_1, sigma_1 = COSINE.alpha_sigma(torch.tensor(1.0, dtype=F64))
    z1 = alpha_1 * MU + sigma_1 * randn_per_image(gens, (1, 64, 64), "cpu", F64)
    grid = torch.tensor([1.0, 0.7, 0.4, 0.2], dtype=F64)
    z = AncestralSolver(COSINE, "small").solve(exact_denoiser(COSINE, std=0.0), z1, grid, gens)
    alpha, sigma = COSINE.alpha_sigma(grid[-1])
    assert_law(z, float(alpha) * MU, float(sigma))


def test_meng_renoise_kernel_gives_the_next_marginal() -> None:
    k = torch.tensor([0.0, 0.25, 0.5, 0.75], dtype=F64)
    s = torch.tensor([0.125, 0.5, 0.75, 1.0], dtype=F64)
    ratio, std_sk = MengStochasticSolver(COSINE).renoise_coefficients(k, s)  # (4,), (4,)
    alpha_k, sigma_k = COSINE.alpha_sigma(k)
    alpha_s, sigma_s = COSINE.alpha_sigma(s)
    # σ²_{s|k} = σ_s² − (α_s/α_k)² σ_k² ≥ 0 for k > 0; k = 0 is the data kernel (σ_k = 0).
    expected = sigma_s[1:] ** 2 - (alpha_s[1:] / alpha_k[1:]) ** 2 * sigma_k[1:] ** 2
    torch.testing.assert_close(std_sk[1:] ** 2, expected, rtol=1e-10, atol=1e-15)
    assert float(std_sk[0]) == float(sigma_s[0])
    gen = make_generator(3)
    for i in range(4):
        x = MU + STD * torch.randn(16384, generator=gen, dtype=F64)
        z_k = x if i == 0 else alpha_k[i] * x + sigma_k[i] * torch.randn(16384, generator=gen)
        z_s = ratio[i] * z_k + std_sk[i] * torch.randn(16384, generator=gen, dtype=F64)
        law_std = float(torch.sqrt(alpha_s[i] ** 2 * STD**2 + sigma_s[i] ** 2))
        assert_law(z_s, float(alpha_s[i]) * MU, law_std)


def test_meng_with_one_step_is_ddim() -> None:
    z1 = randn_per_image(generators(3), (2, 8, 8), "cpu", F64)
    grid = timestep_grid(1, COSINE)
    ddim = DDIMSolver(COSINE).solve(exact_denoiser(COSINE), z1, grid)
    meng = MengStochasticSolver(COSINE).solve(exact_denoiser(COSINE), z1, grid)
    assert torch.equal(meng, ddim)


@pytest.mark.parametrize("steps", [1, 2, 3, 8])
def test_meng_makes_exactly_n_calls(steps: int) -> None:
    counter = CallCounter(exact_denoiser(COSINE))
    z1 = randn_per_image(generators(2), (1, 8, 8), "cpu", F64)
    MengStochasticSolver(COSINE).solve(counter, z1, timestep_grid(steps, COSINE), generators(2))
    assert counter.calls == steps


def test_edm_grid_is_karras_rho_7_in_t() -> None:
    sigmas = edm_sigma_grid(18)
    assert sigmas.shape == (18,)
    assert float(sigmas[0]) == 80.0
    torch.testing.assert_close(sigmas[-1], torch.tensor(0.002, dtype=F64), rtol=1e-12, atol=0)
    ramp = (sigmas ** (1 / 7) - 80.0 ** (1 / 7)) / (0.002 ** (1 / 7) - 80.0 ** (1 / 7))
    torch.testing.assert_close(ramp, torch.linspace(0, 1, 18, dtype=F64))  # linear in σ^(1/ρ)
    for sigma_data in (1.0, 0.5):
        t = edm_timestep_grid(18, COSINE, sigma_data)
        assert t.shape == (19,)
        assert float(t[-1]) == 0.0
        assert bool((t[1:] < t[:-1]).all())
        back = logsnr_to_edm_sigma(COSINE.logsnr(t[:-1]), sigma_data)
        torch.testing.assert_close(back, sigmas, rtol=1e-9, atol=0)
    assert torch.equal(HeunSolver(COSINE, sigma_data=0.5).default_timesteps(18), t)
    with pytest.raises(ConfigError, match=r"expected diffusion\.schedule 'cosine'"):
        edm_timestep_grid(4, LINEAR)
    with pytest.raises(ConfigError, match="outside the schedule's"):
        edm_timestep_grid(4, CosineLogSNRSchedule(logsnr_min=-5.0))


@pytest.mark.parametrize("steps", [1, 2, 3, 18])
def test_heun_makes_2n_minus_1_calls(steps: int) -> None:
    counter = CallCounter(exact_denoiser(COSINE))
    solver = build_solver("heun", COSINE, sigma_data=0.5)
    z = randn_per_image(generators(2), (1, 8, 8), "cpu", F64)
    solver.solve(counter, z, solver.default_timesteps(steps))
    assert counter.calls == 2 * steps - 1


def test_heun_is_second_order_and_beats_ddim_on_its_grid() -> None:
    # Gaussian data, exact denoiser: the flow map from the grid's first t is known exactly.
    z = torch.linspace(-4.5, 4.5, 201, dtype=F64).reshape(-1, 1, 1, 1)
    heun, ddim, denoise = HeunSolver(COSINE), DDIMSolver(COSINE), exact_denoiser(COSINE)
    errors = {}
    # From 16 steps up (18 is EDM's CIFAR-10 setting): with 4 or 8 steps of the ρ = 7 grid the
    # step into σ ~ s = 0.5, where this flow bends most, is too long and Heun overshoots.
    for n in (16, 32, 64, 128):
        grid = heun.default_timesteps(n)
        target = flow_map(COSINE, z, float(grid[0]))
        errors[n] = (
            float((heun.solve(denoise, z, grid) - target).abs().max()),
            float((ddim.solve(denoise, z, grid) - target).abs().max()),
        )
    heun_errors = [errors[n][0] for n in sorted(errors)]
    # Second order: halving the step divides the error by ~4 (at least 3 here).
    assert all(later < earlier / 3 for earlier, later in itertools.pairwise(heun_errors))
    assert heun_errors[-1] < 2.5e-3  # |z| up to 4.5 at σ = 80: y = z/α up to 360
    # vs DDIM (Euler) with the same steps: better, and by 5x and more from 32 steps on.
    assert all(h < d for h, d in errors.values())
    assert all(errors[n][0] < 0.2 * errors[n][1] for n in (32, 64, 128))


@pytest.mark.parametrize("name", ["ancestral", "stochastic", "ddim", "heun"])
def test_result_is_independent_of_batch_size(name: str) -> None:
    solver, denoise = build_solver(name, COSINE), exact_denoiser(COSINE)
    grid = timestep_grid(6, COSINE)
    gens = generators(8)
    whole = solver.solve(denoise, randn_per_image(gens, (3, 8, 8), "cpu", F64), grid, gens)
    parts = []
    for half in (range(4), range(4, 8)):
        gens = [make_generator(derive_seed(0, "image", i)) for i in half]
        parts.append(
            solver.solve(denoise, randn_per_image(gens, (3, 8, 8), "cpu", F64), grid, gens)
        )
    assert torch.equal(whole, torch.cat(parts))


def test_randn_per_image_rows_follow_their_generators() -> None:
    noise = randn_per_image(generators(3), (2, 4, 4), "cpu", torch.float32)
    assert noise.shape == (3, 2, 4, 4)
    for i, generator in enumerate(generators(3)):
        assert torch.equal(noise[i], torch.randn((2, 4, 4), generator=generator))


def test_timestep_grids() -> None:
    torch.testing.assert_close(
        timestep_grid(4, COSINE), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=F64)
    )
    # Discrete T = 1000: N | T gives i/N exactly; otherwise t = round(iT/N)/T on the grid.
    assert torch.equal(timestep_grid(4, LINEAR), timestep_grid(4, COSINE))
    grid = timestep_grid(3, LINEAR)
    torch.testing.assert_close(grid, torch.tensor([1.0, 0.667, 0.333, 0.0], dtype=F64))
    steps = LINEAR.t_to_step(grid[:-1])
    assert torch.equal(LINEAR.step_to_t(steps, dtype=F64), grid[:-1])
    assert torch.equal(
        timestep_grid(1000, LINEAR)[:-1], LINEAR.step_to_t(torch.arange(999, -1, -1), F64)
    )
    with pytest.raises(ConfigError, match="only 1000 steps"):
        timestep_grid(1001, LINEAR)


def test_iddpm_grid_holds_the_first_and_last_step_rounding_half_to_even() -> None:
    ten = DiscreteSchedule(torch.linspace(1e-4, 0.02, 10, dtype=F64))
    # T = 10, N = 4: stride 3, steps 9, 6, 3, 0 at t = (k + 1)/T, then the data.
    torch.testing.assert_close(
        iddpm_timestep_grid(4, ten), torch.tensor([1.0, 0.7, 0.4, 0.1, 0.0], dtype=F64)
    )
    # N = 3: positions 0, 4.5, 9; IDDPM's round(4.5) is 4 (half to even), not 5.
    torch.testing.assert_close(
        iddpm_timestep_grid(3, ten), torch.tensor([1.0, 0.5, 0.1, 0.0], dtype=F64)
    )
    grid = iddpm_timestep_grid(250, LINEAR)  # SpeeD's evaluation grid
    steps = LINEAR.t_to_step(grid[:-1])
    assert grid.shape == (251,)
    assert (int(steps[0]), int(steps[-1])) == (999, 0)
    assert bool((steps[:-1] > steps[1:]).all())
    assert set((steps[:-1] - steps[1:]).tolist()) == {4, 5}  # 999 / 249 = 4.012 apart
    assert int(LINEAR.t_to_step(timestep_grid(250, LINEAR)[-2])) == 3  # trailing ends at 3
    assert torch.equal(iddpm_timestep_grid(1000, LINEAR), timestep_grid(1000, LINEAR))


def test_iddpm_spacing_is_checked_and_reaches_the_solvers() -> None:
    assert list(GRIDS) == list(GRID_SPACINGS)
    with pytest.raises(ConfigError, match="discrete schedule"):
        iddpm_timestep_grid(4, COSINE)
    with pytest.raises(ConfigError, match=r"expected 2\.\.1000"):
        iddpm_timestep_grid(1, LINEAR)
    with pytest.raises(ConfigError, match="EDM's sigma grid"):
        build_solver("heun", COSINE, spacing="iddpm")
    with pytest.raises(ConfigError, match=r"spacing='even'; expected one of"):
        build_solver("ddim", LINEAR, spacing="even")
    for name in ("ddim", "ancestral", "stochastic"):
        solver = build_solver(name, LINEAR, spacing="iddpm")
        assert torch.equal(solver.default_timesteps(8), iddpm_timestep_grid(8, LINEAR))
    seen: list[float] = []

    def record(z: Tensor, t: Tensor) -> Tensor:
        seen.append(float(t[0]))
        return torch.zeros_like(z)

    solver = build_solver("ancestral", LINEAR, variance="small", spacing="iddpm")
    solver.solve(record, torch.randn(1, 1, 2, 2), solver.default_timesteps(5), generators(1))
    assert seen == pytest.approx(iddpm_timestep_grid(5, LINEAR)[:-1].tolist())
    assert seen[-1] == pytest.approx(1 / 1000)  # the last call is at step 0, then x̂


def test_clip_denoiser_clips_x0_only() -> None:
    def wild(z: Tensor, t: Tensor) -> Tensor:
        return 3.0 * z

    z = torch.linspace(-1.0, 1.0, 16).reshape(1, 1, 4, 4)
    x0 = clip_denoiser(wild)(z, torch.ones(1))
    assert float(x0.abs().max()) == 1.0
    assert torch.equal(x0, (3.0 * z).clamp(-1, 1))
    # Data ÷ σ_d = 0.5 (EDM): [-1, 1] pixels are [-2, 2] in model units.
    assert torch.equal(clip_denoiser(wild, limit=2.0)(z, torch.ones(1)), (3.0 * z).clamp(-2, 2))


def test_build_solver_errors() -> None:
    assert sorted(SOLVERS) == ["ancestral", "ddim", "heun", "stochastic"]
    assert build_solver("ancestral", COSINE, variance="small").variance == "small"
    assert AncestralSolver(COSINE).variance == "large"
    with pytest.raises(ConfigError, match=r"'dpm'.*\['ancestral', 'ddim', 'heun', 'stochastic'\]"):
        build_solver("dpm", COSINE)
    with pytest.raises(ConfigError, match="'medium'"):
        build_solver("ancestral", COSINE, variance="medium")
    with pytest.raises(ConfigError, match="no variance"):
        build_solver("ddim", COSINE, variance="small")
    with pytest.raises(ConfigError, match="'heun' has no variance"):
        build_solver("heun", COSINE, variance="small")
    with pytest.raises(ValueError, match="one generator per image"):
        AncestralSolver(COSINE).solve(
            exact_denoiser(COSINE), torch.zeros(2, 1, 2, 2), timestep_grid(2, COSINE), generators(1)
        )
