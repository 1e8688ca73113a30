"""Invariants of the progressive-distillation U-Net and its size registry."""

import dataclasses
import re

import pytest
import torch
from torch import nn

from frugaldiff.errors import ConfigError
from frugaldiff.models.registry import (
    MODEL_SIZES,
    ModelConfig,
    build_model,
    count_parameters,
    resolve_model_config,
)
from frugaldiff.models.unet import UNet, UNetConfig

TINY = MODEL_SIZES["unet-tiny"]


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def _tiny(**overrides: float) -> UNet:
    model = build_model(ModelConfig("unet-tiny", **overrides))
    assert isinstance(model, UNet)
    return model


def _inputs(
    generator: torch.Generator, batch: int = 4, cfg: UNetConfig = TINY
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    z = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, generator=generator)
    t = torch.rand(batch, generator=generator)
    labels = torch.randint(0, cfg.num_classes + 1, (batch,), generator=generator)
    return z, t, labels


def _perturb_zero_params(model: nn.Module, generator: torch.Generator, skip: str = "-") -> None:
    """Give every all-zero parameter (zero-init layers, biases) small random values."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.startswith(skip) and not param.any():
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))


def test_output_shape_equals_input_shape(generator: torch.Generator) -> None:
    for name, batch in (("unet-tiny", 3), ("unet-smoke", 1)):
        model = build_model(ModelConfig(name))
        z, t, labels = _inputs(generator, batch, MODEL_SIZES[name])
        assert model(z, t, labels).shape == z.shape


def test_named_sizes_parameter_counts() -> None:
    counts = {}
    with torch.device("meta"):
        for name in MODEL_SIZES:
            counts[name] = count_parameters(build_model(ModelConfig(name)))
    assert counts["unet-tiny"] < 20_000
    assert counts["unet-smoke"] < 1_000_000
    assert 20_000_000 < counts["unet-cifar10"] < 80_000_000


def test_count_parameters_matches_real_model() -> None:
    model = _tiny()
    with torch.device("meta"):
        meta_model = _tiny()
    expected = sum(p.numel() for p in model.state_dict().values())
    assert count_parameters(model) == count_parameters(meta_model) == expected


def test_fresh_model_outputs_exactly_zero(generator: torch.Generator) -> None:
    z, t, labels = _inputs(generator)
    out = _tiny()(z, t, labels)
    assert torch.equal(out, torch.zeros_like(z))


def test_fresh_guidance_embedding_keeps_outputs_bit_identical(generator: torch.Generator) -> None:
    model = _tiny().eval()
    _perturb_zero_params(model, generator)  # non-trivial outputs, w embedding not yet there
    z, t, labels = _inputs(generator)
    with torch.no_grad():
        reference = model(z, t, labels)
        model.attach_guidance_embedding(w_max=4.0)
        outs = {w: model(z, t, labels, torch.full((4,), w)) for w in (0.0, 1.0, 4.0)}
    assert reference.abs().max() > 0
    for out in outs.values():
        assert torch.equal(out, reference)
    # Once its last layer is trained (here: perturbed), w does change the output.
    _perturb_zero_params(model, generator)
    with torch.no_grad():
        assert not torch.equal(model(z, t, labels, torch.full((4,), 1.0)), reference)


def test_guidance_weight_errors(generator: torch.Generator) -> None:
    model = _tiny()
    z, t, labels = _inputs(generator)
    with pytest.raises(ConfigError, match="attach_guidance_embedding"):
        model(z, t, labels, torch.ones(4))
    model.attach_guidance_embedding(w_max=4.0)
    with pytest.raises(ValueError, match="pass the guidance weight"):
        model(z, t, labels)
    with pytest.raises(RuntimeError, match="already attached"):
        model.attach_guidance_embedding(w_max=4.0)


def test_null_label_row_exists(generator: torch.Generator) -> None:
    model = _tiny()
    _perturb_zero_params(model, generator)
    z, t, _ = _inputs(generator, batch=2)
    null = torch.full((2,), TINY.num_classes)
    with torch.no_grad():
        uncond = model(z, t, null)
        cond = model(z, t, torch.zeros(2, dtype=torch.long))
    assert not torch.equal(uncond, cond)
    for bad in (TINY.num_classes + 1, -1):
        with pytest.raises(ValueError, match="labels must lie in"):
            model(z, t, torch.full((2,), bad))


def test_inputs_of_wrong_shape_are_rejected(generator: torch.Generator) -> None:
    model = _tiny()
    z, t, labels = _inputs(generator)
    with pytest.raises(ValueError, match="z of shape"):
        model(z[:, :2], t, labels)
    with pytest.raises(ValueError, match="t of shape"):
        model(z, t[:3], labels)
    with pytest.raises(ValueError, match="integer labels"):
        model(z, t, labels.float())


def test_gradients_reach_every_parameter(generator: torch.Generator) -> None:
    model = _tiny()
    model.attach_guidance_embedding(w_max=4.0)
    _perturb_zero_params(model, generator)
    z, t, labels = _inputs(generator)
    w = 4.0 * torch.rand(4, generator=generator)
    model(z, t, labels, w).square().mean().backward()
    no_grad = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []


def test_outputs_depend_on_time_and_label(generator: torch.Generator) -> None:
    model = _tiny()
    _perturb_zero_params(model, generator)
    z, t, labels = _inputs(generator)
    with torch.no_grad():
        out = model(z, t, labels)
        assert not torch.allclose(out, model(z, 1 - t, labels))
        assert not torch.allclose(out, model(z, t, (labels + 1) % TINY.num_classes))


def test_eval_mode_is_deterministic(generator: torch.Generator) -> None:
    model = _tiny(dropout=0.5).eval()
    _perturb_zero_params(model, generator)
    z, t, labels = _inputs(generator)
    with torch.no_grad():
        assert torch.equal(model(z, t, labels), model(z, t, labels))


def test_dropout_draws_only_from_the_callers_generator(generator: torch.Generator) -> None:
    model = _tiny(dropout=0.5).train()
    _perturb_zero_params(model, generator)
    z, t, labels = _inputs(generator)
    global_state = torch.get_rng_state()
    with torch.no_grad():
        a = model(z, t, labels, generator=torch.Generator().manual_seed(7))
        b = model(z, t, labels, generator=torch.Generator().manual_seed(7))
        c = model(z, t, labels, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), global_state)
    with pytest.raises(ValueError, match="generator"):
        model(z, t, labels)


def test_runs_under_bfloat16_autocast(generator: torch.Generator) -> None:
    model = _tiny().eval()
    _perturb_zero_params(model, generator)
    z, t, labels = _inputs(generator)
    with torch.no_grad():
        reference = model(z, t, labels)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(z, t, labels)
    assert out.shape == z.shape
    assert torch.isfinite(out).all()
    # bf16 keeps ~3 significant digits; the network is shallow, so errors stay small.
    assert (out.float() - reference).abs().max() < 0.05 * reference.abs().max()


def test_unknown_size_names_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unet-cifar10.*unet-smoke.*unet-tiny"):
        build_model(ModelConfig("unet-large"))
    with pytest.raises(ConfigError, match="did you mean 'unet-smoke'"):
        build_model(ModelConfig("unet-smoek"))


def test_overrides_apply_and_revalidate() -> None:
    resolved = resolve_model_config(
        ModelConfig("unet-smoke", image_size=16, num_classes=3, dropout=0.2)
    )
    assert (resolved.image_size, resolved.num_classes, resolved.dropout) == (16, 3, 0.2)
    assert resolved.base_channels == MODEL_SIZES["unet-smoke"].base_channels
    with pytest.raises(ConfigError, match="image_size"):
        resolve_model_config(ModelConfig("unet-cifar10", image_size=30))


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"num_groups": 3}, "num_groups"),
        ({"attention_resolutions": (2,)}, "attention_resolutions"),
        ({"image_size": 7}, "image_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"num_heads": 3}, "num_heads"),
        ({"channel_mult": ()}, "channel_mult"),
    ],
)
def test_invalid_unet_config_raises(change: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"UNetConfig.{key}=")):
        dataclasses.replace(TINY, **change)


def test_config_from_lists_is_hashable() -> None:
    cfg = dataclasses.replace(TINY, channel_mult=[1, 2], attention_resolutions=[4])
    assert cfg == TINY
    assert hash(cfg) == hash(TINY)
