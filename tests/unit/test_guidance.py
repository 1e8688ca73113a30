"""Classifier-free guidance in Meng's convention (docs/guided_distillation.md c, j)."""

import pytest
import torch
from torch import Tensor

from frugaldiff.diffusion.parameterization import (
    broadcast_like,
    eps_from_x0,
    v_from_x0,
    x0_from,
)
from frugaldiff.diffusion.schedule import CosineLogSNRSchedule
from frugaldiff.rng import make_generator
from frugaldiff.sampling.denoisers import clip_denoiser
from frugaldiff.sampling.grids import timestep_grid
from frugaldiff.sampling.guidance import (
    cfg_scale_to_w,
    guide,
    guided_denoiser,
    w_to_cfg_scale,
)
from frugaldiff.sampling.solvers import DDIMSolver
from tests.unit.counting import CallCounter

F64 = torch.float64
NULL = 10
WEIGHTS = (0.0, 0.3, 1.0, 4.0)


class FakeNetwork:
    """A nonlinear (z, t, labels) → x̂ on 4 channels, logging the rows of every call."""

    def __init__(self, use_labels: bool = True) -> None:
        self.use_labels = use_labels
        self.calls: list[Tensor] = []

    def __call__(self, z: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        self.calls.append(labels.clone())
        shift = labels.to(z.dtype) if self.use_labels else torch.zeros_like(t)
        channel = torch.arange(z.shape[1], dtype=z.dtype).reshape(1, -1, 1, 1)
        return torch.tanh(z * broadcast_like(1 + t, z)) + channel * broadcast_like(shift, z) / 7


def _inputs(batch: int = 3) -> tuple[Tensor, Tensor, Tensor]:
    gen = make_generator(0)
    z = torch.randn(batch, 4, 8, 8, generator=gen, dtype=F64)
    t = torch.rand(batch, generator=gen, dtype=F64)
    return z, t, torch.arange(batch)


def test_w0_is_the_conditional_prediction_bit_exactly() -> None:
    z, t, labels = _inputs()
    net = FakeNetwork()
    cond = net(z, t, labels)
    denoiser = guided_denoiser(net, labels, NULL, 0.0)
    assert torch.equal(denoiser(z, t), cond)
    assert len(net.calls[-1]) == 3  # one B-row call, no unconditional half
    uncond = torch.full_like(cond, float("inf"))
    assert torch.equal(guide(cond, uncond, 0.0), cond)
    assert torch.equal(guide(cond, net(z, t, labels * 0 + NULL), torch.zeros(3)), cond)


@pytest.mark.parametrize("w", WEIGHTS[1:])
def test_guided_denoiser_is_one_batched_call_over_all_channels(w: float) -> None:
    z, t, labels = _inputs()
    net = FakeNetwork()
    guided = guided_denoiser(net, labels, NULL, w)(z, t)
    assert len(net.calls) == 1
    assert torch.equal(net.calls[0], torch.tensor([0, 1, 2, NULL, NULL, NULL]))
    cond, uncond = net(z, t, labels), net(z, t, torch.full_like(labels, NULL))
    torch.testing.assert_close(guided, (1 + w) * cond - w * uncond, rtol=1e-12, atol=1e-12)
    assert not torch.equal(guided[:, 3], cond[:, 3])  # the 4th channel is guided too


def test_identical_cond_and_uncond_make_w_irrelevant() -> None:
    z, t, labels = _inputs()
    net = FakeNetwork(use_labels=False)
    outputs = [guided_denoiser(net, labels, NULL, w)(z, t) for w in WEIGHTS]
    for output in outputs[1:]:
        assert torch.equal(output, outputs[0])


@pytest.mark.parametrize("logsnr", [-5.0, 0.0, 5.0])
def test_guidance_agrees_in_x_eps_and_v_space(logsnr: float) -> None:
    z, t, labels = _inputs()
    net = FakeNetwork()
    cond, uncond = net(z, t, labels), net(z, t, torch.full_like(labels, NULL))
    lam = torch.full((3,), logsnr, dtype=F64)
    alpha = broadcast_like(torch.sigmoid(lam).sqrt(), z)
    sigma = broadcast_like(torch.sigmoid(-lam).sqrt(), z)
    w = torch.tensor([0.3, 1.0, 4.0], dtype=F64)  # per-sample w, as stage 1 draws it
    x_space = guide(cond, uncond, w)
    eps_space = guide(eps_from_x0(cond, z, alpha, sigma), eps_from_x0(uncond, z, alpha, sigma), w)
    v_space = guide(v_from_x0(cond, z, alpha, sigma), v_from_x0(uncond, z, alpha, sigma), w)
    torch.testing.assert_close(x0_from(eps_space, z, alpha, sigma, "eps"), x_space)
    torch.testing.assert_close(x0_from(v_space, z, alpha, sigma, "v"), x_space)


def test_scale_converters_invert_and_match_the_ldm_formula() -> None:
    cond, uncond = torch.tensor([0.7, -0.2]), torch.tensor([0.1, 0.4])
    for w in WEIGHTS:
        scale = w_to_cfg_scale(w)
        assert cfg_scale_to_w(scale) == pytest.approx(w, abs=1e-15)
        ldm = uncond + scale * (cond - uncond)  # diffusers: ε_u + s(ε_c − ε_u)
        torch.testing.assert_close(guide(cond, uncond, w), ldm)
    assert w_to_cfg_scale(0.0) == 1.0


@pytest.mark.parametrize(("w", "passes"), [(0.0, 1), (1.0, 2)])
def test_nfe_counts_network_passes_actually_made(w: float, passes: int) -> None:
    schedule = CosineLogSNRSchedule()
    z, _, labels = _inputs()
    net = FakeNetwork()
    counter = CallCounter(clip_denoiser(guided_denoiser(net, labels, NULL, w)))
    DDIMSolver(schedule).solve(counter, z, timestep_grid(5, schedule))
    assert counter.calls == 5
    assert sum(len(rows) for rows in net.calls) == passes * 5 * len(labels)
