"""Schedules against closed forms (docs/guided_distillation.md j), and the training-time t
samplers."""

import pytest
import torch

from frugaldiff.diffusion.schedule import (
    CosineLogSNRSchedule,
    LinearBetaSchedule,
    NoiseSchedule,
    ScheduleConfig,
    build_schedule,
    build_schedule_by_name,
)
from frugaldiff.diffusion.timesteps import (
    TimestepConfig,
    UniformTimestepSampler,
    build_timestep_sampler,
)
from frugaldiff.errors import ConfigError
from frugaldiff.rng import make_generator

F64 = torch.float64


def test_cosine_endpoints_are_the_truncation() -> None:
    schedule = CosineLogSNRSchedule()
    lam = schedule.logsnr(torch.tensor([0.0, 1.0], dtype=F64))
    torch.testing.assert_close(lam, torch.tensor([20.0, -20.0], dtype=F64), atol=1e-6, rtol=0)
    alpha, sigma = schedule.alpha_sigma(torch.tensor([0.0, 1.0], dtype=F64))
    # α_1 = σ_0 = sqrt(sigmoid(−20)) ≈ 4.54e-5, not 0.
    torch.testing.assert_close(alpha[1], sigma[0], rtol=1e-9, atol=0)
    assert 4.5e-5 < float(alpha[1]) < 4.6e-5


def test_cosine_float32_keeps_its_dtype_and_precision() -> None:
    lam = CosineLogSNRSchedule().logsnr(torch.tensor([0.0, 1.0]))
    assert lam.dtype == torch.float32
    torch.testing.assert_close(lam, torch.tensor([20.0, -20.0]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("schedule", [CosineLogSNRSchedule(), LinearBetaSchedule()])
def test_logsnr_strictly_decreasing_and_vp(schedule: NoiseSchedule) -> None:
    t = torch.linspace(0.0, 1.0, 20001, dtype=F64)
    lam = schedule.logsnr(t)
    assert bool((lam[1:] < lam[:-1]).all())
    alpha, sigma = schedule.alpha_sigma(t)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t), atol=1e-15, rtol=0)


def test_cosine_inverse_round_trips() -> None:
    schedule = CosineLogSNRSchedule()
    t = torch.linspace(0.0, 1.0, 1001, dtype=F64)
    torch.testing.assert_close(schedule.t_from_logsnr(schedule.logsnr(t)), t, atol=1e-12, rtol=0)
    lam = torch.linspace(-20.0, 20.0, 401, dtype=F64)
    torch.testing.assert_close(schedule.logsnr(schedule.t_from_logsnr(lam)), lam, atol=1e-9, rtol=0)


def test_linear_beta_grid_matches_cumprod_of_betas() -> None:
    schedule = LinearBetaSchedule(num_steps=1000, beta_start=1e-4, beta_end=0.02)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
    expected = torch.cumprod(1.0 - betas, dim=0)  # ᾱ_k
    t = schedule.step_to_t(torch.arange(1000), dtype=F64)
    alpha, sigma = schedule.alpha_sigma(t)
    torch.testing.assert_close(alpha**2, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(sigma**2, 1.0 - expected, rtol=1e-12, atol=0)
    assert schedule.is_discrete
    assert not CosineLogSNRSchedule().is_discrete


def test_linear_beta_steps_and_extrapolation_to_t0() -> None:
    schedule = LinearBetaSchedule()
    steps = torch.arange(schedule.num_steps)
    t = schedule.step_to_t(steps)
    torch.testing.assert_close(t[[0, -1]], torch.tensor([1e-3, 1.0]))
    assert torch.equal(schedule.t_to_step(t), steps)
    assert torch.equal(schedule.t_to_step(t + 0.4e-3), steps)  # nearest, not floor
    grid = schedule.logsnr_grid
    lam0 = schedule.logsnr(torch.tensor([0.0], dtype=F64))
    # Below the first grid point λ continues the first segment: finite at the data end.
    torch.testing.assert_close(lam0, (2 * grid[0] - grid[1]).reshape(1), rtol=1e-12, atol=0)


@pytest.mark.parametrize("schedule", [CosineLogSNRSchedule(), LinearBetaSchedule()])
def test_sigma_ratio_equals_sigma_quotient(schedule: NoiseSchedule) -> None:
    gen = make_generator(0)
    t_from = torch.rand(256, generator=gen, dtype=F64)
    t_to = torch.rand(256, generator=gen, dtype=F64)
    _, sigma_from = schedule.alpha_sigma(t_from)
    _, sigma_to = schedule.alpha_sigma(t_to)
    ratio = schedule.sigma_ratio(t_from, t_to)
    torch.testing.assert_close(ratio, sigma_to / sigma_from, rtol=1e-12, atol=0)


def test_build_schedule_and_errors() -> None:
    assert isinstance(build_schedule(ScheduleConfig()), CosineLogSNRSchedule)
    linear = build_schedule(ScheduleConfig(name="linear_beta", num_steps=10))
    assert isinstance(linear, LinearBetaSchedule)
    assert linear.num_steps == 10
    assert isinstance(build_schedule_by_name("linear_beta"), LinearBetaSchedule)
    with pytest.raises(ConfigError, match=r"'cosin'.*\['cosine', 'linear_beta'\]"):
        build_schedule(ScheduleConfig(name="cosin"))
    with pytest.raises(ConfigError, match="logsnr_min"):
        CosineLogSNRSchedule(logsnr_min=5.0, logsnr_max=-5.0)
    with pytest.raises(ConfigError, match="beta_start"):
        LinearBetaSchedule(beta_start=0.1, beta_end=0.01)


def test_uniform_sampler_continuous_is_in_half_open_unit_interval() -> None:
    sampler = UniformTimestepSampler(CosineLogSNRSchedule())
    t = sampler.sample(100_000, make_generator(1), "cpu")
    assert t.shape == (100_000,)
    assert t.dtype == torch.float32
    assert float(t.min()) > 0.0
    assert float(t.max()) <= 1.0
    assert abs(float(t.mean()) - 0.5) < 4 * (1 / 12) ** 0.5 / 100_000**0.5
    again = sampler.sample(100_000, make_generator(1), "cpu")
    assert torch.equal(t, again)


def test_uniform_sampler_discrete_draws_grid_points_only() -> None:
    schedule = LinearBetaSchedule(num_steps=10)
    sampler = build_timestep_sampler(TimestepConfig(name="uniform"), schedule)
    t = sampler.sample(5000, make_generator(2), "cpu")
    steps = schedule.t_to_step(t)
    assert torch.equal(schedule.step_to_t(steps), t)  # exactly on the grid
    counts = torch.bincount(steps, minlength=10).double()  # (10,), 500 expected each
    assert bool(((counts - 500.0).abs() < 5 * (5000 * 0.1 * 0.9) ** 0.5).all())


def test_build_timestep_sampler_errors() -> None:
    schedule = CosineLogSNRSchedule()
    assert isinstance(build_timestep_sampler("uniform", schedule), UniformTimestepSampler)
    with pytest.raises(ConfigError, match=r"'unifrom'.*\['edm_lognormal', 'speed', 'uniform'\]"):
        build_timestep_sampler(TimestepConfig(name="unifrom"), schedule)
