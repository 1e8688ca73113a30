"""Transformer layers of DiT (Peebles & Xie 2023, arXiv 2212.09748, Fig. 3), shared by MicroDiT.

The fixed 2-D sin-cos position table, adaLN modulation, self-attention (width d_attn, which
MicroDiT's layer-wise scaling varies per block, docs/microdit.md (f)), the GELU MLP, the adaLN-zero
block with a pluggable feed-forward, and the zero-initialised final layer. No randomness.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class BlockWidths:
    """One block's attention width d_attn = num_heads · head_dim and feed-forward hidden width."""

    attn_dim: int
    num_heads: int
    ffn_dim: int


def _xavier(*layers: nn.Linear) -> None:
    """DiT's `initialize_weights` for every Linear: Xavier-uniform weight, zero bias."""
    for layer in layers:
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)


def sincos_pos_embed_2d(dim: int, grid_size: int) -> Tensor:
    """DiT / MAE fixed 2-D sin-cos table: (G², dim) float32, row-major over the patch grid.

    The first dim/2 channels embed the column index, the rest the row index (DiT's
    `get_2d_sincos_pos_embed`); each half is [sin(qω_j), cos(qω_j)], ω_j = 10000^(−j/(dim/4)).
    Computed on the CPU in float64 as DiT's numpy code, whatever the default device (a float64
    arange on the meta device would import torch._dynamo); move it where the model lives.
    """
    quarter, cpu = dim // 4, torch.device("cpu")
    exponent = torch.arange(quarter, dtype=torch.float64, device=cpu) / quarter  # (D/4,)
    omega = 1.0 / 10000.0**exponent  # (D/4,)
    coords = torch.arange(grid_size, dtype=torch.float64, device=cpu)  # (G,)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")  # (G, G) each

    def embed(q: Tensor) -> Tensor:
        args = q.flatten()[:, None] * omega[None, :]  # (G², D/4)
        return torch.cat([torch.sin(args), torch.cos(args)], dim=1)  # (G², D/2)

    return torch.cat([embed(cols), embed(rows)], dim=1).float()  # (G², D)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: x (B, N, D) · (1 + scale) + shift, with shift, scale (B, D)."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]  # (B, N, D)


class Attention(nn.Module):
    """Multi-head self-attention from width D through d_attn = heads·head_dim back to D."""

    def __init__(self, dim: int, attn_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * attn_dim)
        self.proj = nn.Linear(attn_dim, dim)
        _xavier(self.qkv, self.proj)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, N, D) → (B, N, D)."""
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1)  # (B, N, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 × (B, h, N, d)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, d)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, -1))  # (B, N, D)


class Mlp(nn.Module):
    """DiT's feed-forward: Linear → GELU(tanh) → Linear."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)
        _xavier(self.fc1, self.fc2)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, N, D) → (B, N, D)."""
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))  # (B, N, D)


class DiTBlock(nn.Module):
    """adaLN-zero block: x += g₁·Attn(mod(LN x)); x += g₂·FFN(mod(LN x)) (DiT Fig. 3)."""

    def __init__(self, dim: int, widths: BlockWidths, ffn: nn.Module) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, widths.attn_dim, widths.num_heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ffn = ffn
        self.adaLN_modulation = nn.Linear(dim, 6 * dim)
        # adaLN-zero: every gate starts at 0, so each block starts as the identity.
        nn.init.zeros_(self.adaLN_modulation.weight)
        nn.init.zeros_(self.adaLN_modulation.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """x: (B, N, D), c: (B, D) conditioning → (B, N, D)."""
        mod = self.adaLN_modulation(F.silu(c)).chunk(6, dim=1)  # 6 × (B, D)
        shift1, scale1, gate1, shift2, scale2, gate2 = mod
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1))  # (B, N, D)
        return x + gate2[:, None] * self.ffn(modulate(self.norm2(x), shift2, scale2))  # (B, N, D)


class FinalLayer(nn.Module):
    """adaLN shift/scale on LN, then Linear(D → p²·C_out); zero-initialised (DiT)."""

    def __init__(self, dim: int, patch_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.adaLN_modulation = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, patch_dim)
        for layer in (self.adaLN_modulation, self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """x: (B, N, D), c: (B, D) → (B, N, p²·C_out)."""
        shift, scale = self.adaLN_modulation(F.silu(c)).chunk(2, dim=1)  # 2 × (B, D)
        return self.linear(modulate(self.norm(x), shift, scale))  # (B, N, p²·C_out)
