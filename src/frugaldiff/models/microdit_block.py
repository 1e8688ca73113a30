"""MicroDiT's transformer block (Sehwag et al. 2024, arXiv 2407.15811, Fig. 3; official code).

As the official `micro_diffusion/models/{dit,utils}.py`: LayerNorms with a weight and no bias,
an affine-free LayerNorm over the whole q and k projections (QK-norm), no biases in attention
and feed-forward, a SwiGLU feed-forward, adaLN-zero from GELU(tanh)(c), optional
cross-attention to caption tokens, and truncated-normal init whose output projections start at
`out_init_std` (0.02/√(2(i+1)) in backbone block i; models/stacks.py). docs/microdit.md (b).
"""

import torch.nn.functional as F
from torch import Tensor, nn

from frugaldiff.models.transformer import BlockWidths, modulate

NORM_EPS = 1e-6  # official norm_eps
# Official init std of every projection *into* a residual branch (qkv, q, kv, SwiGLU w1).
IN_INIT_STD = 0.02


def trunc_normal(weight: Tensor, std: float) -> None:
    """The official `nn.init.trunc_normal_(w, std=std)`: cut at ±2 absolute, i.e. ≥ 100σ here.

    Also stands in for the official `normal_(std=0.02)` of the embedding MLPs: the same law to
    within the ~1e-2000 mass beyond 100σ, and unlike normal_ it needs no torch._dynamo import
    on the meta device (parameter counting).
    """
    nn.init.trunc_normal_(weight, std=std)


def layer_norm(width: int) -> nn.LayerNorm:
    """MicroDiT's LayerNorm: a learnable weight, no bias (official create_norm('layernorm'))."""
    return nn.LayerNorm(width, eps=NORM_EPS, bias=False)


def qk_norm(width: int) -> nn.LayerNorm:
    """QK-norm: an affine-free LayerNorm over all heads of q (or k) at once, no parameters."""
    return nn.LayerNorm(width, eps=NORM_EPS, elementwise_affine=False)


def _split_heads(u: Tensor, num_heads: int) -> Tensor:
    """(B, N, h·d) → (B, h, N, d), the layout scaled_dot_product_attention takes."""
    return u.reshape(u.shape[0], u.shape[1], num_heads, -1).transpose(1, 2)


def _merge_heads(u: Tensor) -> Tensor:
    """(B, h, N, d) → (B, N, h·d)."""
    return u.transpose(1, 2).reshape(u.shape[0], u.shape[2], -1)


class QKNormAttention(nn.Module):
    """Self-attention D → d_attn (heads · h) → D, bias-free, q and k LayerNormed (official)."""

    def __init__(self, dim: int, attn_dim: int, num_heads: int, out_init_std: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * attn_dim, bias=False)
        self.proj = nn.Linear(attn_dim, dim, bias=False)
        self.q_norm = qk_norm(attn_dim)
        self.k_norm = qk_norm(attn_dim)
        trunc_normal(self.qkv.weight, IN_INIT_STD)
        trunc_normal(self.proj.weight, out_init_std)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, N, D) → (B, N, D)."""
        batch, tokens, _ = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, -1).unbind(2)  # 3 × (B, N, A)
        q, k = self.q_norm(q), self.k_norm(k)  # (B, N, A) each, normalised over all heads
        q, k, v = (_split_heads(u, self.num_heads) for u in (q, k, v))  # 3 × (B, h, N, d)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, d)
        return self.proj(_merge_heads(out))  # (B, N, D)


class CrossAttention(nn.Module):
    """Attention from image tokens (B, N, W) to caption tokens (B, L, W), full width W.

    Official `CrossAttention` with compress_xattn=False: q_linear, kv_linear, proj, all
    bias-free, and QK-norm; no caption mask (the official code pads captions to 77 tokens).
    """

    def __init__(self, dim: int, num_heads: int, out_init_std: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_linear = nn.Linear(dim, dim, bias=False)
        self.kv_linear = nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.q_norm = qk_norm(dim)
        self.k_norm = qk_norm(dim)
        for layer in (self.q_linear, self.kv_linear):
            trunc_normal(layer.weight, IN_INIT_STD)
        trunc_normal(self.proj.weight, out_init_std)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """x: (B, N, W) queries, y: (B, L, W) caption tokens → (B, N, W)."""
        q = self.q_norm(self.q_linear(x))  # (B, N, W)
        k, v = self.kv_linear(y).reshape(y.shape[0], y.shape[1], 2, -1).unbind(2)  # 2 × (B, L, W)
        k = self.k_norm(k)  # (B, L, W)
        q, k, v = (_split_heads(u, self.num_heads) for u in (q, k, v))  # (B, h, N|L, d)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, d)
        return self.proj(_merge_heads(out))  # (B, N, W)


class SwiGLU(nn.Module):
    """w3(SiLU(w1 x) ⊙ w2 x), bias-free (official `FeedForward`; Shazeer 2020, arXiv 2002.05202).

    Official init: w1 at 0.02, both w2 and w3 at the block's `out_init_std`.
    """

    def __init__(self, dim: int, hidden_dim: int, out_init_std: float) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(dim, hidden_dim, bias=False)
        self.w3 = nn.Linear(hidden_dim, dim, bias=False)
        trunc_normal(self.w1.weight, IN_INIT_STD)
        for layer in (self.w2, self.w3):
            trunc_normal(layer.weight, out_init_std)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, N, D) → (B, N, D)."""
        return self.w3(F.silu(self.w1(x)) * self.w2(x))  # (B, N, D)


class MicroDiTBlock(nn.Module):
    """x += g₁·Attn(mod(LN x)); [x += XAttn(LN x, y)]; x += g₂·FFN(mod(LN x)) (official DiTBlock).

    `width` is the residual width (the mixer's may differ from the backbone's), `cond_dim` the
    conditioning vector's (always the backbone's D). The cross-attention is ungated, as in the
    official block, and exists only with a caption path (`cross_attn`).
    """

    def __init__(
        self,
        width: int,
        cond_dim: int,
        widths: BlockWidths,
        ffn: nn.Module,
        *,
        cross_attn: bool,
        head_dim: int,
        out_init_std: float,
    ) -> None:
        super().__init__()
        self.norm1 = layer_norm(width)
        self.attn = QKNormAttention(width, widths.attn_dim, widths.num_heads, out_init_std)
        self.norm_cross = layer_norm(width) if cross_attn else None
        self.cross_attn = (
            CrossAttention(width, width // head_dim, out_init_std) if cross_attn else None
        )
        self.norm2 = layer_norm(width)
        self.ffn = ffn
        self.adaLN_modulation = nn.Linear(cond_dim, 6 * width)
        # adaLN-zero: every gate starts at 0, so each block starts as the identity.
        nn.init.zeros_(self.adaLN_modulation.weight)
        nn.init.zeros_(self.adaLN_modulation.bias)

    def forward(self, x: Tensor, c: Tensor, y: Tensor | None = None) -> Tensor:
        """x: (B, N, W), c: (B, D) conditioning, y: (B, L, W) caption tokens → (B, N, W)."""
        mod = self.adaLN_modulation(F.gelu(c, approximate="tanh")).chunk(6, dim=1)  # 6 × (B, W)
        shift1, scale1, gate1, shift2, scale2, gate2 = mod
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))  # (B, N, W)
        if self.cross_attn is not None and self.norm_cross is not None:
            if y is None:
                raise ValueError("MicroDiTBlock: a cross-attention block needs caption tokens y")
            x = x + self.cross_attn(self.norm_cross(x), y)  # (B, N, W)
        return x + gate2[:, None] * self.ffn(modulate(self.norm2(x), shift2, scale2))  # (B, N, W)


class MicroDiTFinalLayer(nn.Module):
    """adaLN shift/scale on LN (weight, no bias), then Linear(D → p²·C_out); zero-initialised.

    Official `T2IFinalLayer`: GELU(tanh) on the conditioning, biases on both Linears.
    """

    def __init__(self, dim: int, patch_dim: int) -> None:
        super().__init__()
        self.norm = layer_norm(dim)
        self.adaLN_modulation = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, patch_dim)
        for layer in (self.adaLN_modulation, self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """x: (B, N, D), c: (B, D) → (B, N, p²·C_out)."""
        shift, scale = self.adaLN_modulation(F.gelu(c, approximate="tanh")).chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))  # (B, N, p²·C_out)


def mixer_projection(in_dim: int, out_dim: int) -> nn.Module:
    """LayerNorm + bias-free Linear between backbone and mixer widths; Identity if equal.

    Official `patch_mixer_map_xin` / `_xout` / `_y`, Xavier-uniform (its `_basic_init`).
    """
    if in_dim == out_dim:
        return nn.Identity()
    linear = nn.Linear(in_dim, out_dim, bias=False)
    nn.init.xavier_uniform_(linear.weight)
    return nn.Sequential(layer_norm(in_dim), linear)
