"""EDM on the VP core (docs/microdit.md (g), test l9): EDM's loss and D̂ in EDM's own formulas.

EDM (Karras et al. 2022, Table 1): x_σ = x + σε, D̂ = c_skip·x_σ + c_out·F(c_in·x_σ, c_noise),
c_skip = σ_d²/(σ² + σ_d²), c_out = σσ_d/√(σ² + σ_d²), c_in = 1/√(σ² + σ_d²),
c_noise = ln σ / 4, loss w(σ)‖D̂ − x‖² with w = (σ² + σ_d²)/(σσ_d)². The harness's side is the
v output (F = −v̂) on data ÷ σ_d at λ = 2 ln(σ_d/σ), weighted by `snr_plus1`.
"""

import math

import pytest
import torch
from scipy import stats

from frugaldiff.config import DiffusionConfig, TimestepConfig, WeightingConfig
from frugaldiff.diffusion.objective import DiffusionObjective
from frugaldiff.diffusion.parameterization import target_for, x0_from
from frugaldiff.diffusion.preconditioning import InputScaling
from frugaldiff.diffusion.schedule import (
    CosineLogSNRSchedule,
    LinearBetaSchedule,
    edm_sigma_to_logsnr,
    logsnr_to_edm_sigma,
)
from frugaldiff.diffusion.timesteps import EDMLogNormalTimestepSampler, build_timestep_sampler
from frugaldiff.errors import ConfigError
from frugaldiff.models.embeddings import TIME_SCALE

F64 = torch.float64
SIGMA_DATA = 0.5
COSINE = CosineLogSNRSchedule()
EDM = DiffusionConfig(
    schedule="cosine",
    parameterization="v",
    timesteps=TimestepConfig(name="edm_lognormal", p_mean=-1.2, p_std=1.2),
    loss_weighting=WeightingConfig(name="snr_plus1"),
    p_uncond=0.0,
    sigma_data=SIGMA_DATA,
    time_input="c_noise",
)


def edm_coefficients(sigma: torch.Tensor, sigma_data: float) -> dict[str, torch.Tensor]:
    """EDM's preconditioning and loss weight, (B, 1, 1, 1) each, written as in the paper."""
    s = sigma.reshape(-1, 1, 1, 1)
    total = s**2 + sigma_data**2
    return {
        "skip": sigma_data**2 / total,
        "out": s * sigma_data / total.sqrt(),
        "in": 1.0 / total.sqrt(),
        "weight": total / (s * sigma_data) ** 2,
    }


def test_edm_loss_is_the_v_mse_and_edm_denoiser_the_vp_x0() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 4, 4, generator=gen, dtype=F64) * 2 - 1  # data in [-1, 1]
    sigma = torch.exp(-1.2 + 1.2 * torch.randn(64, generator=gen, dtype=F64))  # (B,)
    eps = torch.randn(x.shape, generator=gen, dtype=F64)
    net_out = torch.randn(x.shape, generator=gen, dtype=F64)  # any F
    c = edm_coefficients(sigma, SIGMA_DATA)
    x_sigma = x + sigma.reshape(-1, 1, 1, 1) * eps
    d_edm = c["skip"] * x_sigma + c["out"] * net_out  # (B, C, H, W)
    loss_edm = (c["weight"] * (d_edm - x) ** 2).flatten(1).mean(1)  # (B,)

    logsnr = edm_sigma_to_logsnr(sigma, SIGMA_DATA)
    torch.testing.assert_close(logsnr_to_edm_sigma(logsnr, SIGMA_DATA), sigma, rtol=1e-12, atol=0)
    t = COSINE.t_from_logsnr(logsnr)
    alpha, sig = (v.reshape(-1, 1, 1, 1) for v in COSINE.alpha_sigma(t))
    x_model = x / SIGMA_DATA
    z = alpha * x_model + sig * eps  # the VP state
    torch.testing.assert_close(z, c["in"] * x_sigma, rtol=1e-10, atol=1e-12)
    v_hat = -net_out  # EDM's F is −v̂
    v_mse = (v_hat - target_for("v", x_model, eps, alpha, sig)).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(v_mse, loss_edm, rtol=1e-5, atol=0)
    x0 = x0_from(v_hat, z, alpha, sig, "v")
    torch.testing.assert_close(SIGMA_DATA * x0, d_edm, rtol=1e-10, atol=1e-12)


class Recorder:
    """A fake network: returns a fixed random output and keeps what it was given."""

    def __init__(self, out: torch.Tensor) -> None:
        self.out, self.seen = out, {}

    def __call__(self, z, t, labels, *, generator=None):
        self.seen = {"z": z, "t": t}
        return self.out


def test_objective_computes_edms_weighted_loss() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(16, 3, 4, 4, generator=gen, dtype=F64) * 2 - 1
    net = Recorder(torch.randn(x.shape, generator=gen, dtype=F64))
    obj = DiffusionObjective.from_config(EDM, null_label=10)
    loss, diag = obj.loss(net, x, torch.zeros(16, dtype=torch.long), gen)
    # σ from the objective's own (float32) α, σ_t at its t: σ = σ_d·σ_t/α, x_σ = σ_d·z/α.
    alpha, sig = COSINE.alpha_sigma(diag["t"])
    sigma = SIGMA_DATA * sig.to(F64) / alpha.to(F64)  # (B,)
    c = edm_coefficients(sigma, SIGMA_DATA)
    x_sigma = SIGMA_DATA * net.seen["z"] / alpha.to(F64).reshape(-1, 1, 1, 1)  # x + σε
    d_edm = c["skip"] * x_sigma - c["out"] * net.out  # F = −(network output)
    loss_edm = (c["weight"] * (d_edm - x) ** 2).flatten(1).mean(1)
    torch.testing.assert_close(loss.to(F64), loss_edm, rtol=1e-5, atol=0)
    # The network's time input makes its sinusoid see c_noise = ln σ / 4 unscaled.
    torch.testing.assert_close(
        TIME_SCALE * net.seen["t"].to(F64), sigma.log() / 4, rtol=1e-5, atol=1e-6
    )


def test_lognormal_sampler_draws_ln_sigma_from_its_normal_law() -> None:
    sampler = build_timestep_sampler(EDM.timesteps, COSINE, sigma_data=SIGMA_DATA)
    assert isinstance(sampler, EDMLogNormalTimestepSampler)
    t = sampler.sample(20_000, torch.Generator().manual_seed(2), "cpu")
    assert t.dtype == torch.float32
    assert bool(((t >= 0) & (t <= 1)).all())
    log_sigma = logsnr_to_edm_sigma(COSINE.logsnr(t.to(F64)), SIGMA_DATA).log()
    result = stats.kstest(log_sigma.numpy(), stats.norm(loc=-1.2, scale=1.2).cdf)
    assert result.pvalue > 0.01
    # ... and a law 0.05 away in the mean is rejected at this size (the test can fail).
    assert stats.kstest(log_sigma.numpy(), stats.norm(loc=-1.15, scale=1.2).cdf).pvalue < 0.01
    again = sampler.sample(20_000, torch.Generator().manual_seed(2), "cpu")
    assert torch.equal(t, again)


def test_plain_inputs_are_the_identity_and_errors_name_the_key() -> None:
    plain = InputScaling.from_config(DiffusionConfig(), COSINE)
    t = torch.tensor([0.1, 0.9])
    assert plain.is_identity
    assert plain.network_time(t) is t
    assert plain.clip_limit == 1.0
    edm = InputScaling.from_config(EDM, COSINE)
    torch.testing.assert_close(edm.to_data_units(edm.to_model_units(t)), t)
    assert edm.clip_limit == 2.0
    c_noise = edm.c_noise(t.to(F64))
    sigma = logsnr_to_edm_sigma(COSINE.logsnr(t.to(F64)), SIGMA_DATA)
    torch.testing.assert_close(c_noise, torch.log(sigma) / 4)
    with pytest.raises(ConfigError, match=r"diffusion\.time_input='sigma'"):
        InputScaling(COSINE, time_input="sigma")
    with pytest.raises(ConfigError, match=r"diffusion\.sigma_data=0"):
        InputScaling(COSINE, sigma_data=0.0)
    with pytest.raises(ConfigError, match="expected schedule 'cosine'"):
        build_timestep_sampler(EDM.timesteps, LinearBetaSchedule(), sigma_data=SIGMA_DATA)
    with pytest.raises(ConfigError, match="p_std=0"):
        EDMLogNormalTimestepSampler(COSINE, p_std=0.0)
    assert math.isclose(float(edm_sigma_to_logsnr(torch.tensor(0.5), 0.5)), 0.0, abs_tol=1e-7)
