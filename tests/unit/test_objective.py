"""The denoising objective: equals a hand computation; label dropout; weighting identities."""

import torch

from frugaldiff.config import DiffusionConfig, WeightingConfig
from frugaldiff.diffusion.objective import DiffusionObjective


class Linear:
    """A fake network whose output is a fixed affine map of z (no parameters)."""

    def __call__(self, z, t, labels, *, generator=None):
        return 0.5 * z + 0.1


def hand_loss(cfg: DiffusionConfig, x0: torch.Tensor, seed: int) -> torch.Tensor:
    """Redo the objective's draws in order: t, then eps, then label dropout."""
    obj = DiffusionObjective.from_config(cfg, null_label=10)
    gen = torch.Generator().manual_seed(seed)
    t = 1.0 - torch.rand(x0.shape[0], generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    logsnr = obj.schedule.logsnr(t)
    alpha, sigma = torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()
    a, s = alpha[:, None, None, None], sigma[:, None, None, None]
    z = a * x0 + s * eps
    x_hat = a * z - s * (0.5 * z + 0.1)  # v-parameterisation: x̂ = α z − σ v̂
    snr = torch.exp(logsnr)
    return torch.maximum(snr, torch.ones_like(snr)) * (x_hat - x0).pow(2).flatten(1).mean(1)


def test_loss_equals_hand_computation() -> None:
    cfg = DiffusionConfig(
        parameterization="v", loss_weighting=WeightingConfig("snr_trunc"), p_uncond=0.0
    )
    obj = DiffusionObjective.from_config(cfg, null_label=10)
    x0 = torch.linspace(-1, 1, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    loss, diag = obj.loss(Linear(), x0, torch.tensor([1, 2]), torch.Generator().manual_seed(3))
    torch.testing.assert_close(loss, hand_loss(cfg, x0, 3), rtol=1e-5, atol=1e-6)
    assert diag["t"].shape == (2,)


def test_eps_and_v_losses_agree_in_x_space() -> None:
    """Same x-space weighting, different output spaces: the same number for the same x̂."""
    x0 = torch.randn(4, 3, 4, 4, generator=torch.Generator().manual_seed(0))

    def x_predictor(param: str):
        def model(z, t, labels, *, generator=None):
            obj = DiffusionObjective.from_config(DiffusionConfig(parameterization=param), 10)
            alpha, sigma = obj.schedule.alpha_sigma(t)
            a, s = alpha[:, None, None, None], sigma[:, None, None, None]
            x_hat = 0.9 * z  # any fixed x̂
            eps_hat = (z - a * x_hat) / s
            return {"x": x_hat, "eps": eps_hat, "v": a * eps_hat - s * x_hat}[param]

        return model

    losses = {}
    for param in ("x", "eps", "v"):
        cfg = DiffusionConfig(
            parameterization=param, loss_weighting=WeightingConfig("snr_trunc"), p_uncond=0.0
        )
        obj = DiffusionObjective.from_config(cfg, null_label=10)
        losses[param] = obj.loss(
            x_predictor(param),
            x0,
            torch.zeros(4, dtype=torch.long),
            torch.Generator().manual_seed(5),
        )[0]
    torch.testing.assert_close(losses["eps"], losses["x"], rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(losses["v"], losses["x"], rtol=1e-3, atol=1e-5)


def test_label_dropout_rate_and_generator() -> None:
    obj = DiffusionObjective.from_config(DiffusionConfig(p_uncond=0.25), null_label=10)
    labels = torch.zeros(20000, dtype=torch.long)
    dropped = obj.drop_labels(labels, torch.Generator().manual_seed(0))
    rate = (dropped == 10).float().mean().item()
    assert abs(rate - 0.25) < 0.015
    again = obj.drop_labels(labels, torch.Generator().manual_seed(0))
    assert torch.equal(dropped, again)
