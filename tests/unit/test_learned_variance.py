"""IDDPM's learned variance in training: KL and decoder NLL against torch.distributions, the
tables and their first-step clip, L_vb with a detached ε̂, unsupported settings (docs/speed.md (b),
(e)).
"""

import dataclasses
import math

import pytest
import torch
from torch import Tensor
from torch.distributions import Normal, kl_divergence

from frugaldiff.config import DiffusionConfig, TimestepConfig, WeightingConfig
from frugaldiff.diffusion.learned_variance import (
    DATA_BINS,
    LearnedRangeTerm,
    check_learn_sigma,
    discretized_gaussian_log_likelihood,
    normal_kl,
)
from frugaldiff.diffusion.objective import DiffusionObjective
from frugaldiff.diffusion.schedule import LinearBetaSchedule
from frugaldiff.errors import ConfigError
from frugaldiff.rng import make_generator

F64 = torch.float64
LINEAR = LinearBetaSchedule()
SPEED = DiffusionConfig(
    "linear_beta",
    "eps",
    TimestepConfig("speed"),
    WeightingConfig("change_aware"),
    p_uncond=0.0,
    learn_sigma=True,
)


def test_normal_kl_matches_torch_distributions() -> None:
    gen = make_generator(0)
    m1, m2 = torch.randn(2, 50, generator=gen, dtype=F64)
    lv1, lv2 = torch.randn(2, 50, generator=gen, dtype=F64)
    expected = kl_divergence(Normal(m1, (0.5 * lv1).exp()), Normal(m2, (0.5 * lv2).exp()))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), expected, rtol=1e-12, atol=1e-12)
    assert float(normal_kl(m1, lv1, m1, lv1).abs().max()) < 1e-14


def test_discretized_gaussian_matches_torch_distributions_and_sums_to_one() -> None:
    centres = torch.linspace(-1.0, 1.0, DATA_BINS, dtype=F64)  # (256,) the data values
    for mean, log_scale in ((0.1, math.log(0.3)), (-0.97, math.log(0.02)), (0.5, math.log(2.0))):
        m = torch.full_like(centres, mean)
        s = torch.full_like(centres, log_scale)
        log_p = discretized_gaussian_log_likelihood(centres, m, s)  # (256,)
        law = Normal(m, s.exp())
        half = 1.0 / 255.0
        upper = law.cdf(centres + half)
        lower = law.cdf(centres - half)
        upper[-1], lower[0] = 1.0, 0.0  # the end bins reach to ±∞
        mass = upper - lower  # (256,)
        kept = mass > 1e-9  # below, both are ~0 (ours floors at log 1e-12)
        torch.testing.assert_close(log_p[kept], mass[kept].log(), rtol=1e-7, atol=1e-9)
        assert bool((log_p[~kept] < math.log(1e-8)).all())
        assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-9)


def test_learned_range_tables_and_first_step_clip() -> None:
    term = LearnedRangeTerm(LINEAR)
    betas, abar = LINEAR.betas, LINEAR.alphas_cumprod
    posterior = betas[1:] * (1 - abar[:-1]) / (1 - abar[1:])  # β̃_k, k >= 1
    torch.testing.assert_close(term.log_large, betas.log(), rtol=0, atol=0)
    torch.testing.assert_close(term.log_small[1:], posterior.log(), rtol=1e-12, atol=0)
    assert float(term.log_small[0]) == float(term.log_small[1])  # IDDPM's clipped log β̃_0
    # k = 0: ᾱ_{−1} = 1, the posterior mean is x_0 itself.
    x0, z = torch.ones(1, 1, 1, 1), torch.full((1, 1, 1, 1), 5.0)
    assert float(term.posterior_mean(torch.tensor([0]), x0, z)) == pytest.approx(1.0, abs=1e-6)


def test_bits_per_dim_is_the_kl_then_the_decoder_nll() -> None:
    term = LearnedRangeTerm(LINEAR)
    gen = make_generator(1)
    x0 = torch.rand(3, 2, 4, 4, generator=gen, dtype=F64) * 2 - 1
    z = torch.randn(3, 2, 4, 4, generator=gen, dtype=F64)
    x0_hat = x0 + 0.1 * torch.randn(3, 2, 4, 4, generator=gen, dtype=F64)
    v = torch.rand(3, 2, 4, 4, generator=gen, dtype=F64) * 2 - 1
    steps = torch.tensor([0, 1, 640])
    vb = term.bits_per_dim(steps, x0, z, x0_hat, v)
    betas, abar = LINEAR.betas, LINEAR.alphas_cumprod
    for row, k in enumerate(steps.tolist()):
        frac = (v[row] + 1) / 2
        prev = float(abar[k - 1]) if k > 0 else 1.0
        tilde = float(betas[k]) * (1 - prev) / (1 - float(abar[k])) if k > 0 else None
        log_small = math.log(tilde) if tilde else float(term.log_small[1])
        log_var = frac * math.log(float(betas[k])) + (1 - frac) * log_small
        c0 = float(betas[k]) * math.sqrt(prev) / (1 - float(abar[k]))
        ck = (1 - prev) * math.sqrt(1 - float(betas[k])) / (1 - float(abar[k]))
        model = Normal(c0 * x0_hat[row] + ck * z[row], (0.5 * log_var).exp())
        if k == 0:
            expected = -discretized_gaussian_log_likelihood(x0[row], model.mean, model.stddev.log())
        else:
            true = Normal(c0 * x0[row] + ck * z[row], math.sqrt(tilde))
            expected = kl_divergence(true, model)
        assert float(vb[row]) == pytest.approx(float(expected.mean()) / math.log(2), rel=1e-9)


class Table(torch.nn.Module):
    """A fake network: a (1, 2C, H, W) parameter whatever the input, the last C the v channels."""

    def __init__(self, channels: int = 3, side: int = 4) -> None:
        super().__init__()
        gen = make_generator(2)
        self.out = torch.nn.Parameter(0.3 * torch.randn(1, 2 * channels, side, side, generator=gen))

    def forward(self, z: Tensor, t: Tensor, labels: Tensor, *, generator=None) -> Tensor:
        return self.out.expand(z.shape[0], -1, -1, -1)


def test_l_vb_trains_only_the_variance_and_the_weight_touches_only_the_mse() -> None:
    x0 = torch.linspace(-1, 1, 6 * 3 * 4 * 4).reshape(6, 3, 4, 4)
    labels = torch.zeros(6, dtype=torch.long)
    net = Table()
    loss, diag = DiffusionObjective.from_config(SPEED, 10).loss(net, x0, labels, make_generator(3))
    (grad,) = torch.autograd.grad(loss.sum(), net.out)

    plain = dataclasses.replace(SPEED, learn_sigma=False)
    eps_only = Table()
    eps_only.out = torch.nn.Parameter(net.out.detach()[:, :3].clone())
    mse, plain_diag = DiffusionObjective.from_config(plain, 10).loss(
        eps_only, x0, labels, make_generator(3)
    )
    (mse_grad,) = torch.autograd.grad(mse.sum(), eps_only.out)
    assert torch.equal(diag["t"], plain_diag["t"])  # L_vb draws nothing: the same batch
    torch.testing.assert_close(loss - diag["vb"], mse, rtol=1e-6, atol=0)  # ω·MSE + L_vb
    assert bool((diag["vb"] > 0).all())
    torch.testing.assert_close(grad[:, :3], mse_grad, rtol=1e-6, atol=0)  # ε̂ detached in L_vb
    assert float(grad[:, 3:].abs().min()) > 0  # L_vb reaches every v channel


def test_wrong_output_channels_is_a_config_error() -> None:
    objective = DiffusionObjective.from_config(SPEED, 10)
    with pytest.raises(ConfigError, match=r"learn_sigma.*2·C = 6"):
        objective.loss(
            lambda z, t, labels, generator=None: z,
            torch.zeros(2, 3, 4, 4),
            torch.zeros(2, dtype=torch.long),
            make_generator(0),
        )


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"schedule": "cosine"}, "diffusion.schedule"),
        ({"parameterization": "v"}, "diffusion.parameterization"),
        ({"mask_ratio": 0.5}, "diffusion.mask_ratio"),
        ({"sigma_data": 0.5}, "diffusion.sigma_data"),
        ({"time_input": "c_noise"}, "diffusion.time_input"),
        ({"timesteps": TimestepConfig("edm_lognormal")}, "diffusion.timesteps.name"),
    ],
)
def test_unsupported_settings_name_the_key(override: dict, key: str) -> None:
    cfg = dataclasses.replace(SPEED, **override)
    with pytest.raises(ConfigError, match=rf"learn_sigma is true, but {key}="):
        check_learn_sigma(cfg)
    with pytest.raises(ConfigError, match=key):
        DiffusionObjective.from_config(cfg, 10)
    check_learn_sigma(dataclasses.replace(cfg, learn_sigma=False))  # off: anything goes


@pytest.mark.parametrize("name", ["dit-tiny", "unet-tiny"])
def test_the_model_build_doubles_the_output_channels(name: str) -> None:
    from frugaldiff.config import ModelConfig
    from frugaldiff.models.registry import build_model

    z, t, labels = torch.zeros(2, 3, 8, 8), torch.full((2,), 0.5), torch.zeros(2, dtype=torch.long)
    assert build_model(ModelConfig(name), learn_sigma=True)(z, t, labels).shape == (2, 6, 8, 8)
    assert build_model(ModelConfig(name))(z, t, labels).shape == (2, 3, 8, 8)
