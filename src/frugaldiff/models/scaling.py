"""Layer-wise scaling of MicroDiT (Sehwag et al. 2024, arXiv 2407.15811; docs/microdit.md (f)).

The residual width D stays fixed; block i of L gets attention width α_i·D and FFN hidden β_i·D
with α_i = 0.5 + 0.5·i/(L-1) and β_i = 0.5 + 3.5·i/(L-1) (official `np.linspace(0.5, 1, L)`,
`np.linspace(0.5, 4, L)`), each rounded as the official `DiTBlock` rounds it. Constant width
(DiT) is the special case α = (1, 1), β = (4, 4). XL: heads 8 → 16, MoE hidden 768 → 3840.
"""

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

FfnKind = Literal["gelu", "swiglu", "moe"]

# (first, last) ratios of the first and last block.
MICRODIT_ATTN_RATIOS = (0.5, 1.0)
MICRODIT_MLP_RATIOS = (0.5, 4.0)
CONSTANT_ATTN_RATIOS = (1.0, 1.0)
CONSTANT_MLP_RATIOS = (4.0, 4.0)

# Hidden widths are rounded up to these multiples: the official `multiple_of=256` for SwiGLU
# and the MoE experts; 32 for the harness's GELU MLP [I] (256 would dwarf a D = 64 smoke model).
FFN_MULTIPLE_OF: dict[str, int] = {"gelu": 32, "swiglu": 256, "moe": 256}

# ε for the GELU rule's ceiling, so a float product like 96.00000000000001 does not add 32.
_CEIL_EPS = 1e-6


@dataclass(frozen=True)
class LayerWidths:
    """Per-block widths; entry i belongs to block i.

    attn_dims: d_attn,i, the width of q, k and v (num_heads·head_dim); num_heads: d_attn,i / h;
    mlp_hidden: the FFN hidden width (for MoE blocks, each expert's hidden width).
    """

    attn_dims: tuple[int, ...]
    num_heads: tuple[int, ...]
    mlp_hidden: tuple[int, ...]


def linear_ratios(depth: int, first: float, last: float) -> tuple[float, ...]:
    """first + (last - first)·i/(L-1) for i = 0 … L-1: `np.linspace(first, last, L)` exactly.

    Same float operations as numpy (i·step + first, then the last entry set to `last`), so the
    `int()` truncations below see the very floats the official code saw.
    """
    if depth < 0:
        raise ValueError(f"linear_ratios: depth must be >= 0, got {depth}")
    if depth <= 1:
        return (float(first),) * depth
    step = (last - first) / (depth - 1)
    return (*(i * step + first for i in range(depth - 1)), float(last))


def _round_up(n: int, multiple: int) -> int:
    return multiple * ((n + multiple - 1) // multiple)


def attention_width(dim: int, head_dim: int, alpha: float) -> int:
    """d_attn = D if α = 1, else 2h·⌈int(α·D)/(2h)⌉ (an even head count); official `DiTBlock`."""
    if alpha == 1.0:
        return dim
    return _round_up(int(dim * alpha), 2 * head_dim)


def ffn_hidden(dim: int, beta: float, ffn: FfnKind) -> int:
    """FFN hidden width at ratio β.

    swiglu: 256·⌈int(⅔·int(β·D))/256⌉ (official `FeedForward`); moe: 256·⌈int(β·D)/256⌉
    (official `FeedForwardECMoe`); gelu: 32·⌈β·D/32⌉, our plain DiT MLP [I] (4D at β = 4).
    """
    if ffn not in FFN_MULTIPLE_OF:
        raise ValueError(f"ffn_hidden: ffn={ffn!r}; expected one of {sorted(FFN_MULTIPLE_OF)}")
    multiple = FFN_MULTIPLE_OF[ffn]
    if ffn == "swiglu":
        # int(2·h/3) in the official code equals the integer floor for every int h.
        return _round_up(2 * int(dim * beta) // 3, multiple)
    if ffn == "moe":
        return _round_up(int(dim * beta), multiple)
    return multiple * math.ceil(dim * beta / multiple - _CEIL_EPS)


def layerwise_widths(
    depth: int,
    dim: int,
    head_dim: int,
    *,
    attn_ratios: tuple[float, float],
    mlp_ratios: tuple[float, float],
    ffn: Literal["gelu", "swiglu"],
    moe_blocks: Collection[int],
) -> LayerWidths:
    """Widths of `depth` blocks of residual width `dim`, α and β linear from first to last.

    Blocks in `moe_blocks` (see `moe.moe_block_indices`) use the MoE hidden rule, the others the
    dense `ffn` rule. The patch-mixer and cross-attention are unscaled: pass the constant ratios.
    """
    if dim % head_dim:
        raise ValueError(f"layerwise_widths: dim={dim} is not a multiple of head_dim={head_dim}")
    alphas = linear_ratios(depth, *attn_ratios)
    betas = linear_ratios(depth, *mlp_ratios)
    attn_dims = tuple(attention_width(dim, head_dim, a) for a in alphas)
    mlp_hidden = tuple(
        ffn_hidden(dim, b, "moe" if i in moe_blocks else ffn) for i, b in enumerate(betas)
    )
    num_heads = tuple(d // head_dim for d in attn_dims)
    return LayerWidths(attn_dims=attn_dims, num_heads=num_heads, mlp_hidden=mlp_hidden)
