"""The block stacks of a DiT / MicroDiT: backbone and patch-mixer (arXiv 2407.15811, Fig. 3).

Which blocks are expert-choice MoE (docs/microdit.md (e)), each block's attention and FFN
widths (layer-wise scaling, (f)), its output-projection init std, and the blocks themselves:
DiT's adaLN-zero block (models/transformer.py) or MicroDiT's (models/microdit_block.py).
"""

import math

from torch import nn

from frugaldiff.models.dit_config import DiTConfig
from frugaldiff.models.microdit_block import MicroDiTBlock, SwiGLU
from frugaldiff.models.scaling import (
    CONSTANT_ATTN_RATIOS,
    MICRODIT_ATTN_RATIOS,
    MICRODIT_MLP_RATIOS,
    layerwise_widths,
)
from frugaldiff.models.transformer import BlockWidths, DiTBlock, Mlp

# The official init std of a residual branch's input-side weights, and the base of its
# output-side std (0.02/√(2(i+1))).
BASE_INIT_STD = 0.02


def moe_blocks(cfg: DiTConfig, depth: int, *, dense_last: bool) -> frozenset[int]:
    """Indices of the MoE blocks in a stack of `depth` (empty unless ffn == "moe").

    Block i is MoE iff i % moe_every == moe_every − 1; the backbone keeps its last block dense
    (dense_last; moe_every 2: odd i ≤ L−2, 13 of 28 in XL), the mixer does not (docs/microdit.md
    (e)).
    """
    if cfg.ffn != "moe":
        return frozenset()
    from frugaldiff.models.moe import moe_block_indices  # lazy: moe.py only when asked for

    return frozenset(moe_block_indices(depth, dense_last=dense_last, every=cfg.moe_every))


def stack_widths(cfg: DiTConfig, depth: int, *, in_mixer: bool) -> list[BlockWidths]:
    """Attention and FFN widths of each block of the backbone (or of the mixer).

    DiT's block, constant: d_attn = D, FFN hidden = int(mlp_ratio·D). Layer-wise scaling
    (docs/microdit.md (f)) grows α_i from 0.5 to 1 and β_i from 0.5 to 4 over the backbone, with
    the rounding rules of `models/scaling.py` (GELU MLP 32·⌈β_i·D/32⌉, MoE 256·⌈·⌉). MicroDiT's
    block always rounds as the official code (SwiGLU 256·⌈⅔·⌉, MoE 256·⌈·⌉), also at constant
    width, and its mixer has width Dm = patch_mixer_dim at the backbone's head width.
    """
    microdit = cfg.block == "microdit"
    width = cfg.mixer_width if in_mixer else cfg.hidden_size
    moe = moe_blocks(cfg, depth, dense_last=not in_mixer)
    if not microdit and (not cfg.layerwise_scaling or in_mixer):
        return [BlockWidths(width, cfg.num_heads, int(cfg.mlp_ratio * width))] * depth
    layerwise = cfg.layerwise_scaling and not in_mixer
    widths = layerwise_widths(
        depth,
        width,
        cfg.head_dim,
        attn_ratios=MICRODIT_ATTN_RATIOS if layerwise else CONSTANT_ATTN_RATIOS,
        mlp_ratios=MICRODIT_MLP_RATIOS if layerwise else (cfg.mlp_ratio, cfg.mlp_ratio),
        ffn="swiglu" if microdit else "gelu",
        moe_blocks=moe,
    )
    rows = zip(widths.attn_dims, widths.num_heads, widths.mlp_hidden, strict=True)
    return [BlockWidths(attn, heads, hidden) for attn, heads, hidden in rows]


def output_init_std(index: int, backbone_depth: int, *, in_mixer: bool) -> float:
    """MicroDiT's init std of a block's output projections (official `weight_init_std`).

    Backbone block i (0-based): 0.02/√(2(i+1)), so deeper residual branches start smaller
    (official depth_init=True); every patch-mixer block: 0.02/√(2L) with L the *backbone's*
    depth (the official mixer blocks get depth_init=False, num_layers=depth).
    """
    return BASE_INIT_STD / math.sqrt(2 * (backbone_depth if in_mixer else index + 1))


def build_ffn(
    cfg: DiTConfig, width: int, widths: BlockWidths, moe: bool, out_init_std: float
) -> nn.Module:
    """DiT's GELU MLP or MicroDiT's SwiGLU, or the expert-choice MoE (imported when asked for).

    `out_init_std` (output_init_std) starts the MoE experts' and the SwiGLU's output-side
    weights; DiT's dense MLP keeps its Xavier init.
    """
    if not moe:
        if cfg.block == "microdit":
            return SwiGLU(width, widths.ffn_dim, out_init_std)
        return Mlp(width, widths.ffn_dim)
    from frugaldiff.models.moe import ExpertChoiceMoE  # optional until a config asks for MoE

    return ExpertChoiceMoE(
        width, widths.ffn_dim, cfg.num_experts, cfg.capacity_factor, out_init_std=out_init_std
    )


def build_stack(cfg: DiTConfig, depth: int, *, in_mixer: bool) -> nn.ModuleList:
    """`depth` adaLN-zero blocks: the backbone, or (in_mixer) the patch-mixer."""
    moe = moe_blocks(cfg, depth, dense_last=not in_mixer)
    widths = stack_widths(cfg, depth, in_mixer=in_mixer)
    width = cfg.mixer_width if in_mixer else cfg.hidden_size
    blocks: list[nn.Module] = []
    for i, w in enumerate(widths):
        std = output_init_std(i, cfg.depth, in_mixer=in_mixer)
        ffn = build_ffn(cfg, width, w, i in moe, std)
        if cfg.block == "dit":
            blocks.append(DiTBlock(width, w, ffn))
            continue
        block = MicroDiTBlock(
            width,
            cfg.hidden_size,
            w,
            ffn,
            cross_attn=cfg.caption_channels > 0,
            head_dim=cfg.head_dim,
            out_init_std=std,
        )
        blocks.append(block)
    return nn.ModuleList(blocks)
