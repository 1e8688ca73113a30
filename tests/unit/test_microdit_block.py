"""MicroDiT's own block, embeddings, init and caption path (docs/microdit.md (b) "Block", (h)).

Counts against models/param_count.py's arithmetic and the official literals, the block's
structure (QK-norm, biases), its init std per block, the [cos, sin] timestep features, and
masking / mixer / MoE / layer-wise scaling working with the new block.
"""

import dataclasses
import math
import random

import pytest
import torch
from torch import nn

from frugaldiff.errors import ConfigError
from frugaldiff.masking import TokenMasker
from frugaldiff.models.caption import CaptionEncoder
from frugaldiff.models.dit import DiT, DiTConfig
from frugaldiff.models.embeddings import TIME_SCALE, MicroDiTTimestepEmbedder
from frugaldiff.models.microdit_block import CrossAttention, MicroDiTBlock, QKNormAttention
from frugaldiff.models.param_count import (
    MICRODIT_TINY_2,
    MICRODIT_XL_2,
    DiTShape,
    count_microdit_parameters,
)
from frugaldiff.models.registry import ModelConfig, build_model, count_parameters
from frugaldiff.models.scaling import (
    CONSTANT_ATTN_RATIOS,
    CONSTANT_MLP_RATIOS,
    MICRODIT_ATTN_RATIOS,
    MICRODIT_MLP_RATIOS,
)
from frugaldiff.models.transformer import DiTBlock

CPU = torch.device("cpu")
# 8×8 RGB, patch 2 (16 tokens), width 64 (head width 16), 4 blocks, a 2×32 mixer, MoE, captions.
SMALL = DiTConfig(
    image_size=8, patch_size=2, hidden_size=64, depth=4, num_heads=4, num_classes=0,
    caption_channels=24, block="microdit", patch_mixer_depth=2, patch_mixer_dim=32,
    masking="deferred", ffn="moe", num_experts=2, layerwise_scaling=True,
)  # fmt: skip
LABELLED = dataclasses.replace(SMALL, num_classes=10, caption_channels=0)


def _shape(cfg: DiTConfig) -> DiTShape:
    """param_count's description of a MicroDiT-block DiTConfig."""
    layerwise = cfg.layerwise_scaling
    return DiTShape(
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        patch_size=cfg.patch_size,
        num_tokens=cfg.num_tokens,
        dim=cfg.hidden_size,
        depth=cfg.depth,
        head_dim=cfg.head_dim,
        frequency_dim=cfg.frequency_dim,
        num_classes=cfg.num_classes,
        caption_channels=cfg.caption_channels,
        cross_attn=cfg.caption_channels > 0,
        ffn="swiglu",
        bias=False,
        norm_weight=True,
        attn_ratios=MICRODIT_ATTN_RATIOS if layerwise else CONSTANT_ATTN_RATIOS,
        mlp_ratios=MICRODIT_MLP_RATIOS if layerwise else CONSTANT_MLP_RATIOS,
        num_experts=cfg.num_experts if cfg.ffn == "moe" else 0,
        mixer_depth=cfg.patch_mixer_depth,
        mixer_dim=cfg.patch_mixer_dim,
    )


def _random_configs(count: int, seed: int) -> list[DiTConfig]:
    """Small MicroDiT-block configs drawn from a local RNG (no global state)."""
    rng, configs = random.Random(seed), []
    for _ in range(count):
        head_dim = rng.choice((4, 8, 16))
        num_heads = rng.randint(1, 4)
        caption = rng.choice((0, 12))
        configs.append(
            DiTConfig(
                image_size=8,
                patch_size=rng.choice((1, 2, 4)),
                in_channels=rng.choice((3, 4)),
                learn_sigma=rng.random() < 0.5,
                hidden_size=head_dim * num_heads,
                depth=rng.randint(1, 5),
                num_heads=num_heads,
                num_classes=0 if caption else rng.randint(1, 10),
                caption_channels=caption,
                block="microdit",
                patch_mixer_depth=rng.randint(0, 3),
                patch_mixer_dim=head_dim * rng.randint(0, 3),
                masking="deferred",
                ffn=rng.choice(("mlp", "moe")),
                num_experts=rng.randint(1, 4),
                layerwise_scaling=rng.random() < 0.5,
            )
        )
    return configs


def _randomised(cfg: DiTConfig, generator: torch.Generator) -> DiT:
    """A model whose zero-initialised parameters are made random, so every path matters."""
    with torch.random.fork_rng():
        torch.manual_seed(0)  # module init draws from the global RNG; keep tests order-free
        model = DiT(cfg)
    with torch.no_grad():
        for param in model.parameters():
            if not param.any():
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
    return model


def _inputs(cfg: DiTConfig, generator: torch.Generator, batch: int = 3) -> tuple[torch.Tensor, ...]:
    z = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, generator=generator)
    t = torch.rand(batch, generator=generator)
    if cfg.caption_channels:
        cond = torch.randn(batch, 5, cfg.caption_channels, generator=generator)  # (B, L, C_cap)
    else:
        cond = torch.randint(0, cfg.num_classes + 1, (batch,), generator=generator)
    return z, t, cond


def test_official_sizes_count_exactly_the_papers_parameters() -> None:
    with torch.device("meta"):
        tiny = count_parameters(build_model(ModelConfig("MicroDiT-Tiny/2-t2i")))
        xl = count_parameters(build_model(ModelConfig("MicroDiT-XL/2-t2i")))
    assert tiny == count_microdit_parameters(MICRODIT_TINY_2) == 200_692_752
    assert xl == count_microdit_parameters(MICRODIT_XL_2) == 1_165_442_320  # the "1.16 B"


@pytest.mark.parametrize(
    "cfg",
    [
        pytest.param(SMALL, id="caption-moe-lws-narrow-mixer"),
        pytest.param(LABELLED, id="labels-moe-lws-narrow-mixer"),
        pytest.param(dataclasses.replace(LABELLED, ffn="mlp", layerwise_scaling=False), id="dense"),
        pytest.param(dataclasses.replace(SMALL, patch_mixer_dim=0, ffn="mlp"), id="same-width"),
        *(pytest.param(c, id=f"random{i}") for i, c in enumerate(_random_configs(8, seed=16))),
    ],
)
def test_built_count_equals_the_arithmetic(cfg: DiTConfig) -> None:
    with torch.device("meta"):
        model = DiT(cfg)
    assert count_parameters(model) == count_microdit_parameters(_shape(cfg))


def test_output_shape_and_fresh_model_is_exactly_zero(generator: torch.Generator) -> None:
    for cfg in (SMALL, LABELLED, dataclasses.replace(SMALL, learn_sigma=True)):
        z, t, cond = _inputs(cfg, generator, batch=2)
        out = DiT(cfg)(z, t, cond)
        assert out.shape == (2, cfg.out_channels, cfg.image_size, cfg.image_size)
        assert torch.equal(out, torch.zeros_like(out))  # zero-initialised final layer
        assert _randomised(cfg, generator)(z, t, cond).abs().min() > 0


@pytest.mark.parametrize("cfg", [SMALL, LABELLED], ids=["captions", "labels"])
def test_deferred_masking_with_keep_indices(cfg: DiTConfig, generator: torch.Generator) -> None:
    model = _randomised(cfg, generator)
    z, t, cond = _inputs(cfg, generator)
    keep_all = TokenMasker(0.0).draw(3, cfg.num_tokens, generator, CPU).keep
    assert torch.equal(model(z, t, cond, keep_indices=keep_all), model(z, t, cond))
    mask = TokenMasker(0.75).draw(3, cfg.num_tokens, generator, CPU)
    seen: list[tuple[str, int]] = []
    for stage, blocks in (("mixer", model.mixer), ("backbone", model.blocks)):
        for block in blocks:
            block.register_forward_pre_hook(
                lambda _m, args, stage=stage: seen.append((stage, args[0].shape[1]))
            )
    out = model(z, t, cond, keep_indices=mask.keep)
    assert seen == [("mixer", 16)] * 2 + [("backbone", 4)] * cfg.depth
    dropped = mask.dropped.reshape(3, 1, 4, 1, 4, 1).expand(-1, 3, -1, 2, -1, 2).reshape(z.shape)
    assert bool((out[dropped] == 0).all())
    # The mixer sees the dropped patches: changing only them changes the kept outputs.
    perturbed = model(torch.where(dropped, z + 1.0, z), t, cond, keep_indices=mask.keep)
    assert not torch.equal(out[~dropped], perturbed[~dropped])


def test_captions_condition_through_cross_attention(generator: torch.Generator) -> None:
    model = _randomised(SMALL, generator)
    z, t, captions = _inputs(SMALL, generator)
    other = captions.clone()
    other[0] += 1.0  # change sample 0's caption only
    out, out_other = model(z, t, captions), model(z, t, other)
    assert not torch.equal(out[0], out_other[0])
    assert torch.equal(out[1:], out_other[1:])  # no cross-sample leak
    with pytest.raises(ValueError, match="caption embeddings of shape"):
        model(z, t, torch.zeros(3, dtype=torch.long))


def test_prompt_block_starts_as_the_identity(generator: torch.Generator) -> None:
    encoder = CaptionEncoder(caption_channels=12, dim=32, head_dim=8)
    x = torch.randn(2, 5, 32, generator=generator)  # (B, L, D)
    assert torch.equal(encoder.prompt_block(x), x)  # attn proj and SwiGLU w3 start at 0


def _std_of(weight: torch.Tensor) -> float:
    return weight.detach().float().std().item()


def test_output_projections_start_at_the_per_block_std() -> None:
    cfg = dataclasses.replace(
        SMALL, hidden_size=128, num_heads=8, ffn="mlp", layerwise_scaling=False
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = DiT(cfg)
    stages = [(b, 0.02 / math.sqrt(2 * (i + 1))) for i, b in enumerate(model.blocks)]
    stages += [(b, 0.02 / math.sqrt(2 * cfg.depth)) for b in model.mixer]  # backbone's L
    for block, std in stages:
        assert isinstance(block, MicroDiTBlock)
        assert block.cross_attn is not None
        outputs = (block.attn.proj, block.cross_attn.proj, block.ffn.w2, block.ffn.w3)
        inputs = (
            block.attn.qkv,
            block.cross_attn.q_linear,
            block.cross_attn.kv_linear,
            block.ffn.w1,
        )
        for layer in outputs:  # SwiGLU: both w2 and w3 at the block's std, as the official code
            assert _std_of(layer.weight) == pytest.approx(std, rel=0.06)
        for layer in inputs:
            assert _std_of(layer.weight) == pytest.approx(0.02, rel=0.06)
        assert not block.adaLN_modulation.weight.any()  # adaLN-zero
    assert _std_of(model.time_embedder.linear_in.weight) == pytest.approx(0.02, rel=0.06)


def test_qk_norm_is_parameter_free_and_only_embeddings_have_biases() -> None:
    with torch.device("meta"):
        model = DiT(SMALL)
    attentions = [m for m in model.modules() if isinstance(m, QKNormAttention | CrossAttention)]
    assert len(attentions) == 1 + 2 * (SMALL.patch_mixer_depth + SMALL.depth)  # prompt block
    for attn in attentions:
        for norm in (attn.q_norm, attn.k_norm):
            assert list(norm.parameters()) == []
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert all(n.bias is None for n in norms)
    assert {n.weight is None for n in norms} == {True, False}  # QK-norm none, the rest a weight
    # Official: biases only on the patch embedding, the time / caption / pooled MLPs, adaLN
    # and the final Linear; none in attention, cross-attention, FFN, experts, mixer projections.
    with_bias = {"patch_embed", "time_embedder", "projection", "pooled_mlp", "adaLN_modulation"}
    with_bias |= {"final_layer.linear"}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            expected = any(part in name for part in with_bias)
            assert (module.bias is not None) == expected, name
    assert all("bias" not in name for name, _ in model.mixer_in.named_parameters())


def test_timestep_features_are_cos_then_sin_at_512_frequencies() -> None:
    embedder = MicroDiTTimestepEmbedder(16, frequency_dim=DiT(LABELLED).cfg.frequency_dim)
    t = torch.tensor([0.0, 0.25, 1e-3])
    feats = embedder.features(t)
    assert feats.shape == (3, 512)
    assert feats.dtype == torch.float32
    k = torch.arange(256, dtype=torch.float64)
    freqs = torch.exp(-math.log(10000.0) * k / 256)  # exponent k/(F/2), not k/(F/2 − 1)
    args = TIME_SCALE * t.double()[:, None] * freqs  # (B, 256)
    expected = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    assert (feats.double() - expected).abs().max() < 1e-4
    assert torch.equal(feats[0], torch.cat([torch.ones(256), torch.zeros(256)]))  # t = 0
    assert freqs[-1].item() == pytest.approx(10000 ** (-255 / 256))


def test_block_switch_builds_microdits_block_and_checks_its_options() -> None:
    default = build_model(ModelConfig("microdit-smoke"))
    switched = build_model(ModelConfig("microdit-smoke", block="microdit"))
    assert all(isinstance(b, DiTBlock) for b in [*default.mixer, *default.blocks])
    assert all(isinstance(b, MicroDiTBlock) for b in [*switched.mixer, *switched.blocks])
    assert all(b.cross_attn is None for b in switched.blocks)  # labels: no caption path
    with pytest.raises(ConfigError, match=r"DiTConfig\.block='micro'"):
        build_model(ModelConfig("dit-tiny", block="micro"))
    with pytest.raises(ConfigError, match=r"model\.block is set.*UNetConfig"):
        build_model(ModelConfig("unet-tiny", block="microdit"))
    with pytest.raises(ConfigError, match=r"caption_channels=8 needs block='microdit'"):
        dataclasses.replace(LABELLED, block="dit", num_classes=0, caption_channels=8)
    with pytest.raises(ConfigError, match=r"patch_mixer_dim=32 needs block='microdit'"):
        dataclasses.replace(LABELLED, block="dit", ffn="mlp", layerwise_scaling=False)
    with pytest.raises(ConfigError, match="expected exactly one > 0"):
        dataclasses.replace(SMALL, num_classes=10)
