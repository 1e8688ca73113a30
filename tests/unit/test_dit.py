"""Invariants of the DiT / MicroDiT backbone (docs/microdit.md (l) 1, 3, 4, 6, 7)."""

import dataclasses

import pytest
import torch
from torch import nn

from frugaldiff.errors import ConfigError
from frugaldiff.masking import TokenMasker, masked_mse
from frugaldiff.models.dit import DiT, DiTConfig
from frugaldiff.models.registry import (
    MODEL_SIZES,
    ModelConfig,
    build_model,
    count_parameters,
    resolve_model_config,
)
from frugaldiff.models.stacks import moe_blocks, stack_widths
from frugaldiff.models.transformer import BlockWidths

TINY = MODEL_SIZES["dit-tiny"]
assert isinstance(TINY, DiTConfig)
CPU = torch.device("cpu")

# Parameter counts of the official DiT code (facebookresearch/DiT models.py, learn_sigma=True:
# 8 output channels, 1001 label rows, the sin-cos table a frozen Parameter), by the closed form
# conv + time MLP + labels + table + L·(18D² + 15D) + final layer. DiT-XL/2 is docs/microdit.md (h).
OFFICIAL_PARAMS = {
    "DiT-S/2": 32_963_360,
    "DiT-B/2": 130_512_416,
    "DiT-L/2": 458_102_816,
    "DiT-XL/2": 675_129_632,
}
# The DiT paper's rounded sizes (Peebles & Xie 2023, text and Table 4), in millions.
PAPER_MILLIONS = {"DiT-S/2": 33, "DiT-B/2": 130, "DiT-L/2": 458, "DiT-XL/2": 675}


def _model(cfg: DiTConfig, generator: torch.Generator) -> DiT:
    """A model whose zero-initialised parameters (adaLN, final layer, biases) are made random,
    so that every block contributes to the output."""
    with torch.random.fork_rng():
        torch.manual_seed(0)  # module init draws from the global RNG; keep tests order-free
        model = DiT(cfg)
    with torch.no_grad():
        for param in model.parameters():
            if not param.any():
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
    return model


def _inputs(
    generator: torch.Generator, cfg: DiTConfig = TINY, batch: int = 3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    z = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, generator=generator)
    t = torch.rand(batch, generator=generator)
    labels = torch.randint(0, cfg.num_classes + 1, (batch,), generator=generator)
    return z, t, labels


def _masked(masking: str, mixer_depth: int = 1) -> DiTConfig:
    return dataclasses.replace(TINY, masking=masking, patch_mixer_depth=mixer_depth)


def _patch_pixels(dropped: torch.Tensor, cfg: DiTConfig) -> torch.Tensor:
    """(B, N) bool per token → (B, C, H, W) bool per pixel, in the model's row-major order."""
    grid, patch = cfg.grid_size, cfg.patch_size
    pixels = dropped.reshape(-1, 1, grid, 1, grid, 1)
    pixels = pixels.expand(-1, cfg.in_channels, -1, patch, -1, patch)
    return pixels.reshape(-1, cfg.in_channels, cfg.image_size, cfg.image_size)


def _record_token_counts(model: DiT) -> list[tuple[str, int]]:
    """Hooks that log (stage, tokens) for every mixer and backbone block the model runs."""
    seen: list[tuple[str, int]] = []
    for stage, blocks in (("mixer", model.mixer), ("backbone", model.blocks)):
        for block in blocks:
            block.register_forward_pre_hook(
                lambda _module, args, stage=stage: seen.append((stage, args[0].shape[1]))
            )
    return seen


def test_output_shape(generator: torch.Generator) -> None:
    for cfg in (TINY, MODEL_SIZES["dit-smoke"], dataclasses.replace(TINY, learn_sigma=True)):
        assert isinstance(cfg, DiTConfig)
        z, t, labels = _inputs(generator, cfg, batch=2)
        out = DiT(cfg)(z, t, labels)
        assert out.shape == (2, cfg.out_channels, cfg.image_size, cfg.image_size)


def test_fresh_model_outputs_exactly_zero(generator: torch.Generator) -> None:
    z, t, labels = _inputs(generator)
    model = DiT(_masked("deferred"))
    keep = TokenMasker(0.5).draw(3, TINY.num_tokens, generator, CPU).keep
    for out in (model(z, t, labels), model(z, t, labels, keep_indices=keep)):
        assert torch.equal(out, torch.zeros_like(z))


def test_named_sizes_parameter_counts() -> None:
    counts = {}
    with torch.device("meta"):
        for name in ("dit-tiny", "dit-smoke", "microdit-smoke", "dit-cifar10", "microdit-cifar10"):
            counts[name] = count_parameters(build_model(ModelConfig(name)))
        for name in OFFICIAL_PARAMS:
            sigma_model = DiT(dataclasses.replace(MODEL_SIZES[name], learn_sigma=True))
            # Our sin-cos table is a buffer; the official code counts it as a Parameter.
            official = count_parameters(sigma_model) + sigma_model.pos_embed.numel()
            assert official == OFFICIAL_PARAMS[name], name
            assert abs(official / 1e6 / PAPER_MILLIONS[name] - 1) < 0.01, name
    assert counts["dit-tiny"] < 100_000
    assert counts["dit-smoke"] < counts["microdit-smoke"] < 1_000_000
    assert 30_000_000 < counts["dit-cifar10"] < 35_000_000
    mixer_share = counts["microdit-cifar10"] / counts["dit-cifar10"] - 1
    assert 0.1 < mixer_share < 0.2  # docs/microdit.md (b) 3: a 2×384 mixer is ~17 % of DiT-S/2


@pytest.mark.parametrize("masking", ["deferred", "naive"])
def test_keeping_every_token_equals_the_unmasked_forward(
    masking: str, generator: torch.Generator
) -> None:
    model = _model(_masked(masking), generator)
    z, t, labels = _inputs(generator)
    keep = TokenMasker(0.0).draw(3, TINY.num_tokens, generator, CPU).keep
    unmasked = model(z, t, labels)
    assert unmasked.abs().min() > 0
    assert torch.equal(model(z, t, labels, keep_indices=keep), unmasked)


def test_deferred_mixer_sees_dropped_tokens_naive_does_not(generator: torch.Generator) -> None:
    z, t, labels = _inputs(generator)
    mask = TokenMasker(0.75).draw(3, TINY.num_tokens, generator, CPU)
    dropped = _patch_pixels(mask.dropped, TINY)
    z_perturbed = torch.where(dropped, z + 1.0, z)  # change only dropped patches
    for masking, mixer_matters in (("deferred", True), ("naive", False)):
        model = _model(_masked(masking), generator)
        out = model(z, t, labels, keep_indices=mask.keep)
        out_perturbed = model(z_perturbed, t, labels, keep_indices=mask.keep)
        assert bool((out[dropped] == 0).all())  # dropped patches are restored as exact zeros
        kept_changed = not torch.equal(out[~dropped], out_perturbed[~dropped])
        assert kept_changed == mixer_matters, masking


def test_masked_loss_gradient_skips_dropped_patches(generator: torch.Generator) -> None:
    z, t, labels = _inputs(generator)
    target = torch.randn(z.shape, generator=generator)
    mask = TokenMasker(0.5).draw(3, TINY.num_tokens, generator, CPU)
    dropped = _patch_pixels(mask.dropped, TINY)
    for masking, input_grad_at_dropped in (("deferred", True), ("naive", False)):
        model = _model(_masked(masking), generator)
        z_in = z.clone().requires_grad_(True)
        out = model(z_in, t, labels, keep_indices=mask.keep)
        out.retain_grad()
        masked_mse(out, target, mask.keep, TINY.patch_size).sum().backward()
        assert out.grad is not None
        assert z_in.grad is not None
        assert bool((out.grad[dropped] == 0).all())
        assert bool((out.grad[~dropped] != 0).all())
        assert bool((z_in.grad[dropped] != 0).any()) == input_grad_at_dropped, masking


def test_mixer_and_backbone_see_the_right_token_counts(generator: torch.Generator) -> None:
    z, t, labels = _inputs(generator)
    keep = TokenMasker(0.75).draw(3, TINY.num_tokens, generator, CPU).keep
    for masking, mixer_tokens in (("deferred", TINY.num_tokens), ("naive", 4)):
        model = DiT(_masked(masking, mixer_depth=2))
        seen = _record_token_counts(model)
        model(z, t, labels, keep_indices=keep)
        assert seen == [("mixer", mixer_tokens)] * 2 + [("backbone", 4)] * TINY.depth


def test_masked_forward_is_determined_by_the_mask_generator() -> None:
    generator = torch.Generator().manual_seed(0)
    model = _model(_masked("deferred"), generator)
    z, t, labels = _inputs(generator)
    outs = []
    for seed in (7, 7, 8):
        mask_generator = torch.Generator().manual_seed(seed)
        keep = TokenMasker(0.5).draw(3, TINY.num_tokens, mask_generator, CPU).keep
        outs.append(model(z, t, labels, keep_indices=keep))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_layerwise_widths_of_microdit_xl() -> None:
    # MicroDiT_XL_2 backbone: D 1024, 28 blocks, head width 64 (docs/microdit.md (f), (h)).
    xl = DiTConfig(
        image_size=32,
        in_channels=4,
        patch_size=2,
        hidden_size=1024,
        depth=28,
        num_heads=16,
        num_classes=1000,
        ffn="moe",
        layerwise_scaling=True,
    )
    widths = stack_widths(xl, xl.depth, in_mixer=False)
    moe = sorted(moe_blocks(xl, xl.depth, dense_last=True))
    assert moe == list(range(1, 27, 2))  # 13 of 28
    assert (widths[0].num_heads, widths[-1].num_heads) == (8, 16)
    assert (widths[0].ffn_dim, widths[-1].ffn_dim) == (512, 4096)  # dense GELU blocks
    assert (widths[moe[0]].ffn_dim, widths[moe[-1]].ffn_dim) == (768, 3840)  # MoE experts
    assert set(stack_widths(xl, 6, in_mixer=True)) == {BlockWidths(1024, 16, 4096)}  # unscaled


def test_moe_feed_forward_plugs_in(generator: torch.Generator) -> None:
    from frugaldiff.models.moe import ExpertChoiceMoE

    cfg = dataclasses.replace(_masked("deferred", 2), depth=3, ffn="moe", num_experts=2)
    model = _model(cfg, generator)
    ffns = [type(block.ffn).__name__ for block in [*model.mixer, *model.blocks]]
    assert ffns == ["Mlp", "ExpertChoiceMoE", "Mlp", "ExpertChoiceMoE", "Mlp"]
    assert isinstance(model.blocks[1].ffn, ExpertChoiceMoE)
    z, t, labels = _inputs(generator, cfg)
    keep_all = TokenMasker(0.0).draw(3, cfg.num_tokens, generator, CPU).keep
    assert torch.equal(model(z, t, labels, keep_indices=keep_all), model(z, t, labels))
    keep = TokenMasker(0.75).draw(3, cfg.num_tokens, generator, CPU).keep
    assert model(z, t, labels, keep_indices=keep).shape == z.shape


def test_errors_name_the_key(generator: torch.Generator) -> None:
    z, t, labels = _inputs(generator)
    keep = TokenMasker(0.5).draw(3, TINY.num_tokens, generator, CPU).keep
    with pytest.raises(ConfigError, match="masking='none'"):
        DiT(TINY)(z, t, labels, keep_indices=keep)
    with pytest.raises(ConfigError, match=r"DiTConfig\.dropout=0\.1"):
        resolve_model_config(ModelConfig("dit-tiny", dropout=0.1))
    with pytest.raises(ConfigError, match=r"DiTConfig\.patch_size=3"):
        dataclasses.replace(TINY, patch_size=3)
    with pytest.raises(ConfigError, match=r"DiTConfig\.masking='deffered'"):
        dataclasses.replace(TINY, masking="deffered")
    with pytest.raises(ValueError, match="labels must lie in"):
        DiT(TINY)(z, t, labels + TINY.num_classes + 1)
    resized = resolve_model_config(ModelConfig("dit-smoke", image_size=16, num_classes=100))
    assert isinstance(build_model(ModelConfig("dit-tiny")), nn.Module)
    assert (resized.image_size, resized.num_classes) == (16, 100)


def test_run_table_switches_moe_and_layerwise_scaling() -> None:
    from frugaldiff.config import MoEConfig, RunSpec, from_dict
    from frugaldiff.models.moe import ExpertChoiceMoE

    spec = from_dict(
        RunSpec,
        {"model": {"name": "microdit-smoke", "moe": {"num_experts": 4, "every": 1}}},
        "t.yaml",
    )
    cfg = resolve_model_config(dataclasses.replace(spec.model, layerwise_scaling=True))
    assert isinstance(cfg, DiTConfig)
    base = MODEL_SIZES["microdit-smoke"]
    assert (cfg.ffn, cfg.num_experts, cfg.moe_every, cfg.layerwise_scaling) == ("moe", 4, 1, True)
    assert cfg.capacity_factor == base.capacity_factor  # None keeps the size's value
    assert cfg == dataclasses.replace(
        base, ffn="moe", num_experts=4, moe_every=1, layerwise_scaling=True
    )
    model = build_model(dataclasses.replace(spec.model, layerwise_scaling=True))
    kinds = [isinstance(block.ffn, ExpertChoiceMoE) for block in [*model.mixer, *model.blocks]]
    assert kinds == [True, True, False]  # mixer block 0; backbone 0 of 2 (its last stays dense)
    assert model.blocks[0].ffn.num_experts == 4
    assert resolve_model_config(ModelConfig("microdit-smoke", moe=MoEConfig())).ffn == "moe"
    assert resolve_model_config(ModelConfig("microdit-smoke")) == base  # no switch: the size
    with pytest.raises(
        ConfigError, match=r"t\.yaml: unknown key 'model\.moe\.expert'.*'num_experts'"
    ):
        from_dict(RunSpec, {"model": {"name": "dit-smoke", "moe": {"expert": 4}}}, "t.yaml")
    with pytest.raises(ConfigError, match=r"model\.layerwise_scaling is set.*UNetConfig"):
        resolve_model_config(ModelConfig("unet-tiny", layerwise_scaling=True))
    with pytest.raises(ConfigError, match=r"DiTConfig\.num_experts=0"):
        resolve_model_config(ModelConfig("dit-smoke", moe=MoEConfig(num_experts=0)))
