"""ε/x/v conversions and the loss weightings against the identities of docs/guided_distillation.md
b."""

import pytest
import torch
from torch import Tensor

from frugaldiff.diffusion.parameterization import (
    PARAMETERIZATIONS,
    broadcast_like,
    check_parameterization,
    eps_from_x0,
    output_from_x0,
    target_for,
    v_from_x0,
    x0_from,
    x_mse_factor,
)
from frugaldiff.diffusion.schedule import LinearBetaSchedule
from frugaldiff.diffusion.weighting import LOSS_WEIGHTINGS, build_loss_weighting
from frugaldiff.errors import ConfigError
from frugaldiff.rng import make_generator

F64 = torch.float64
LOGSNRS = (-20.0, 0.0, 20.0)
LINEAR = LinearBetaSchedule()  # for the schedule-derived weightings (change_aware)


def _noised(logsnr: float, seed: int) -> tuple[Tensor, ...]:
    """x, ε, z = αx + σε (4, 3, 8, 8) float64 and α, σ (4, 1, 1, 1) at one logSNR."""
    gen = make_generator(seed)
    x = torch.rand(4, 3, 8, 8, generator=gen, dtype=F64) * 2 - 1
    eps = torch.randn(4, 3, 8, 8, generator=gen, dtype=F64)
    lam = torch.full((4,), logsnr, dtype=F64)
    alpha = broadcast_like(torch.sigmoid(lam).sqrt(), x)
    sigma = broadcast_like(torch.sigmoid(-lam).sqrt(), x)
    return x, eps, alpha * x + sigma * eps, alpha, sigma


@pytest.mark.parametrize("logsnr", LOGSNRS)
@pytest.mark.parametrize("param", PARAMETERIZATIONS)
def test_output_round_trips_through_x0(param: str, logsnr: float) -> None:
    x, _, z, alpha, sigma = _noised(logsnr, seed=0)
    output = output_from_x0(param, x, z, alpha, sigma)
    torch.testing.assert_close(x0_from(output, z, alpha, sigma, param), x, rtol=0, atol=1e-9)


@pytest.mark.parametrize("logsnr", LOGSNRS)
@pytest.mark.parametrize("param", PARAMETERIZATIONS)
def test_target_is_the_output_that_recovers_x(param: str, logsnr: float) -> None:
    x, eps, z, alpha, sigma = _noised(logsnr, seed=1)
    target = target_for(param, x, eps, alpha, sigma)
    torch.testing.assert_close(x0_from(target, z, alpha, sigma, param), x, rtol=0, atol=1e-9)


@pytest.mark.parametrize("logsnr", LOGSNRS)
def test_v_definition_and_inverse(logsnr: float) -> None:
    x, eps, z, alpha, sigma = _noised(logsnr, seed=2)
    v = target_for("v", x, eps, alpha, sigma)
    torch.testing.assert_close(v, alpha * eps - sigma * x, rtol=0, atol=0)
    torch.testing.assert_close(sigma * z + alpha * v, eps, rtol=0, atol=1e-12)  # ε = σz + αv
    torch.testing.assert_close(alpha * z - sigma * v, x, rtol=0, atol=1e-12)  # x = αz − σv
    torch.testing.assert_close(eps_from_x0(x, z, alpha, sigma), eps, rtol=0, atol=1e-9)


@pytest.mark.parametrize("logsnr", LOGSNRS)
def test_mse_identities_elementwise(logsnr: float) -> None:
    x, _, z, alpha, sigma = _noised(logsnr, seed=3)
    x_hat = x + 0.1 * torch.randn(x.shape, generator=make_generator(4), dtype=F64)
    snr = torch.exp(torch.tensor(logsnr, dtype=F64))
    x_err = (x_hat - x) ** 2  # (B, C, H, W)
    eps_err = (eps_from_x0(x_hat, z, alpha, sigma) - eps_from_x0(x, z, alpha, sigma)) ** 2
    v_err = (v_from_x0(x_hat, z, alpha, sigma) - v_from_x0(x, z, alpha, sigma)) ** 2
    # ε̂ − ε is a difference of O(1) numbers of size (α/σ)|x̂ − x|, so at λ = −20 a tiny
    # |x̂ − x| keeps only ~1e-7 relative precision elementwise; the means below hold to 1e-9.
    torch.testing.assert_close(eps_err, snr * x_err, rtol=1e-6, atol=0)
    torch.testing.assert_close(v_err, (1 + snr) * x_err, rtol=1e-6, atol=0)

    lam = torch.full((1,), logsnr, dtype=F64)
    x_mse, eps_mse, v_mse = (e.mean() for e in (x_err, eps_err, v_err))
    # Weightings multiply the x-MSE: snr ↔ ε-MSE, snr_plus1 ↔ v-MSE, snr_trunc ↔ the max.
    weights = {name: float(build_loss_weighting(name, LINEAR)(lam)) for name in LOSS_WEIGHTINGS}
    assert weights["constant"] == 1.0
    torch.testing.assert_close(weights["snr"] * x_mse, eps_mse, rtol=1e-9, atol=0)
    torch.testing.assert_close(weights["snr_plus1"] * x_mse, v_mse, rtol=1e-9, atol=0)
    torch.testing.assert_close(
        weights["snr_trunc"] * x_mse, torch.maximum(x_mse, eps_mse), rtol=1e-9, atol=0
    )
    for param, err in (("x", x_err), ("eps", eps_err), ("v", v_err)):
        factor = x_mse_factor(param, lam)
        torch.testing.assert_close(factor * x_mse, err.mean().reshape(1), rtol=1e-9, atol=0)


def test_weightings_are_per_sample() -> None:
    lam = torch.tensor([-3.0, 0.0, 3.0])
    for name in LOSS_WEIGHTINGS:
        weight = build_loss_weighting(name, LINEAR)(lam)
        assert weight.shape == (3,)
        assert weight.dtype == torch.float32
    torch.testing.assert_close(
        build_loss_weighting("snr_trunc")(lam), lam.exp().clamp(min=1.0), rtol=0, atol=0
    )


def test_broadcast_like_and_errors() -> None:
    ref = torch.zeros(5, 3, 8, 8)
    assert broadcast_like(torch.arange(5.0), ref).shape == (5, 1, 1, 1)
    with pytest.raises(ValueError, match=r"\(5,\) vector"):
        broadcast_like(torch.arange(4.0), ref)
    assert check_parameterization("v") == "v"
    with pytest.raises(ConfigError, match=r"'velocity'.*\['eps', 'x', 'v'\]"):
        check_parameterization("velocity")
    with pytest.raises(ConfigError, match=r"'v_mse'.*'snr_trunc'"):
        build_loss_weighting("v_mse")
