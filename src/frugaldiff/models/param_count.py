"""Parameter counts of DiT and MicroDiT by arithmetic, without building the model.

MicroDiT (Sehwag et al. 2024, arXiv 2407.15811) calls its final model a "1.16 B parameter
sparse transformer": that is the *total* trainable count, every expert included, of the
released `MicroDiT_XL_2` (1,165,442,320; docs/microdit.md (h)); the sin-cos table is a buffer. DiT
(Peebles & Xie 2023, arXiv 2212.09748): XL/2 has 675,129,632, its frozen pos-emb Parameter
included. Per block: DiT 18D² + 15D; MicroDiT 3D + 4·D·d_attn + 4D² + FFN + 6D(D + 1).
"""

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from frugaldiff.errors import ConfigError
from frugaldiff.models.caption import PROMPT_MLP_RATIO
from frugaldiff.models.moe import moe_block_indices
from frugaldiff.models.scaling import (
    CONSTANT_ATTN_RATIOS,
    CONSTANT_MLP_RATIOS,
    MICRODIT_ATTN_RATIOS,
    MICRODIT_MLP_RATIOS,
    ffn_hidden,
    layerwise_widths,
)


@dataclass(frozen=True)
class DiTShape:
    """The architecture facts that fix a DiT / MicroDiT parameter count.

    num_tokens (T) counts only if `pos_embed_parameter` (DiT's frozen nn.Parameter); MicroDiT's
    table is a buffer. num_classes > 0 adds a label table with a null row (K + 1 rows);
    caption_channels > 0 adds MicroDiT's caption MLP, prompt block and pooled-caption MLP.
    bias: biases in attention, cross-attention, dense FFN and mixer projections (patch embed,
    time and caption MLPs, adaLN and final Linear always have them; MoE experts never).
    norm_weight: LayerNorms with a learnable weight and no bias (MicroDiT); else affine-free
    (DiT). QK-norm is affine-free in both, so it adds nothing. num_experts = 0: dense only;
    else EC-MoE in odd blocks (backbone: not the last). mixer_dim = 0 means `dim`.
    """

    in_channels: int
    out_channels: int
    patch_size: int
    num_tokens: int
    dim: int
    depth: int
    head_dim: int
    frequency_dim: int = 256
    num_classes: int = 0
    caption_channels: int = 0
    cross_attn: bool = False
    ffn: Literal["gelu", "swiglu"] = "gelu"
    bias: bool = True
    norm_weight: bool = False
    attn_ratios: tuple[float, float] = CONSTANT_ATTN_RATIOS
    mlp_ratios: tuple[float, float] = CONSTANT_MLP_RATIOS
    num_experts: int = 0
    mixer_depth: int = 0
    mixer_dim: int = 0
    pos_embed_parameter: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "attn_ratios", tuple(float(r) for r in self.attn_ratios))
        object.__setattr__(self, "mlp_ratios", tuple(float(r) for r in self.mlp_ratios))
        for key in ("in_channels", "out_channels", "patch_size", "dim", "depth", "head_dim"):
            if getattr(self, key) < 1:
                raise ConfigError(f"DiTShape.{key}={getattr(self, key)}; expected an int >= 1")
        if self.ffn not in ("gelu", "swiglu"):
            raise ConfigError(f"DiTShape.ffn={self.ffn!r}; expected 'gelu' or 'swiglu'")
        if self.dim % self.head_dim or self.mixer_width % self.head_dim:
            raise ConfigError(
                f"DiTShape: dim={self.dim} and mixer_dim={self.mixer_width} must be multiples "
                f"of head_dim={self.head_dim}"
            )

    @property
    def mixer_width(self) -> int:
        """Dm, the patch-mixer's width."""
        return self.mixer_dim or self.dim


# Official `MicroDiT_XL_2` / `MicroDiT_Tiny_2` (SDXL-VAE 4×32² latents, DFN CLIP-H captions of
# width 1024) and DiT-XL/2 (learns σ: 4 → 8 channels; ImageNet's 1000 labels).
MICRODIT_XL_2 = DiTShape(
    in_channels=4,
    out_channels=4,
    patch_size=2,
    num_tokens=256,
    dim=1024,
    depth=28,
    head_dim=64,
    frequency_dim=512,
    caption_channels=1024,
    cross_attn=True,
    ffn="swiglu",
    bias=False,
    norm_weight=True,
    attn_ratios=MICRODIT_ATTN_RATIOS,
    mlp_ratios=MICRODIT_MLP_RATIOS,
    num_experts=8,
    mixer_depth=6,
    mixer_dim=768,
)
MICRODIT_TINY_2 = dataclasses.replace(
    MICRODIT_XL_2, dim=512, depth=16, head_dim=32, mixer_depth=4, mixer_dim=512
)
DIT_XL_2 = DiTShape(
    in_channels=4,
    out_channels=8,
    patch_size=2,
    num_tokens=256,
    dim=1152,
    depth=28,
    head_dim=72,
    num_classes=1000,
    pos_embed_parameter=True,
)


def _norm(shape: DiTShape, width: int) -> int:
    return width if shape.norm_weight else 0


def _linear(fan_in: int, fan_out: int, bias: bool) -> int:
    return fan_in * fan_out + (fan_out if bias else 0)


def _mlp(width: int, hidden: int, ffn: str, bias: bool) -> int:
    """Dense FFN: GELU (2 Linears) or SwiGLU (w1, w2 in; w3 out)."""
    inputs = 1 if ffn == "gelu" else 2
    return inputs * _linear(width, hidden, bias) + _linear(hidden, width, bias)


def _block(shape: DiTShape, width: int, attn_dim: int, hidden: int, moe: bool) -> int:
    """One block at `width`, adaLN from the D-wide conditioning vector."""
    num_norms = 3 if shape.cross_attn else 2
    count = num_norms * _norm(shape, width)
    count += _linear(width, 3 * attn_dim, shape.bias) + _linear(attn_dim, width, shape.bias)
    if shape.cross_attn:
        # q, kv and proj at full width (the official compress_xattn=False).
        count += _linear(width, 3 * width, shape.bias) + _linear(width, width, shape.bias)
    if moe:
        count += shape.num_experts * 2 * width * hidden + width * shape.num_experts
    else:
        count += _mlp(width, hidden, shape.ffn, shape.bias)
    return count + _linear(shape.dim, 6 * width, bias=True)


def _stack(shape: DiTShape, depth: int, width: int, *, layerwise: bool, dense_last: bool) -> int:
    moe_blocks = moe_block_indices(depth, dense_last=dense_last) if shape.num_experts else ()
    widths = layerwise_widths(
        depth,
        width,
        shape.head_dim,
        attn_ratios=shape.attn_ratios if layerwise else CONSTANT_ATTN_RATIOS,
        mlp_ratios=shape.mlp_ratios if layerwise else CONSTANT_MLP_RATIOS,
        ffn=shape.ffn,
        moe_blocks=moe_blocks,
    )
    return sum(
        _block(shape, width, widths.attn_dims[i], widths.mlp_hidden[i], i in moe_blocks)
        for i in range(depth)
    )


def parameter_breakdown(shape: DiTShape) -> dict[str, int]:
    """Parameter counts by part: embed, conditioning, mixer, mixer_projections, backbone, head.

    Assumptions where the spec is silent: the harness's class-conditional model has no caption
    path and no `patch_mixer_map_y` (that projection exists only to feed cross-attention); the
    caption path's prompt block uses SwiGLU and `head_dim`, as the official code does.
    """
    d, dm = shape.dim, shape.mixer_width
    embed = _linear(shape.in_channels * shape.patch_size**2, d, bias=True)
    embed += shape.num_tokens * d if shape.pos_embed_parameter else 0
    conditioning = _linear(shape.frequency_dim, d, bias=True) + _linear(d, d, bias=True)
    conditioning += (shape.num_classes + 1) * d if shape.num_classes else 0
    if shape.caption_channels:
        projection = _linear(shape.caption_channels, d, True) + _norm(shape, d)
        projection += _linear(d, d, True)
        prompt_hidden = ffn_hidden(d, PROMPT_MLP_RATIO, "swiglu")
        prompt = 2 * _norm(shape, d) + _linear(d, 3 * d, shape.bias) + _linear(d, d, shape.bias)
        prompt += _mlp(d, prompt_hidden, "swiglu", shape.bias)
        pooled = _linear(d, d, True) + _norm(shape, d) + _linear(d, d, True)
        conditioning += projection + prompt + pooled
    mixer = projections = 0
    if shape.mixer_depth:
        mixer = _stack(shape, shape.mixer_depth, dm, layerwise=False, dense_last=False)
        if dm != d:
            num_inputs = 2 if shape.cross_attn else 1  # x, and the caption tokens y
            projections = num_inputs * (_norm(shape, d) + _linear(d, dm, shape.bias))
            projections += _norm(shape, dm) + _linear(dm, d, shape.bias)
    backbone = _stack(shape, shape.depth, d, layerwise=True, dense_last=True)
    head_out = shape.patch_size**2 * shape.out_channels
    head = _norm(shape, d) + _linear(d, head_out, True) + _linear(d, 2 * d, True)
    return {
        "embed": embed,
        "conditioning": conditioning,
        "mixer": mixer,
        "mixer_projections": projections,
        "backbone": backbone,
        "head": head,
    }


def _as_shape(shape: DiTShape | Mapping[str, Any]) -> DiTShape:
    if isinstance(shape, DiTShape):
        return shape
    fields = [f.name for f in dataclasses.fields(DiTShape)]
    for key in shape:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"DiTShape: unknown key {key!r}; expected one of {fields}{hint}")
    return DiTShape(**shape)


def count_microdit_parameters(shape: DiTShape | Mapping[str, Any]) -> int:
    """Total trainable parameters (all experts) of a DiT / MicroDiT, by arithmetic.

    `count_microdit_parameters(MICRODIT_XL_2)` = 1,165,442,320, the paper's "1.16 B";
    MICRODIT_TINY_2 gives 200,692,752 and DIT_XL_2 675,129,632. A dense DiT is `num_experts=0`.
    A mapping is read as DiTShape keyword arguments (unknown keys raise ConfigError).
    """
    return sum(parameter_breakdown(_as_shape(shape)).values())
