"""MicroDiT's caption path (Sehwag et al. 2024, arXiv 2407.15811, Fig. 3: captions pass attention).

Caption embeddings (B, L, C_cap), e.g. 77 DFN CLIP-H tokens of width 1024, become the tokens y
every block cross-attends to and, mean-pooled, a vector added to the time embedding. Official
modules (`micro_diffusion/models/dit.py`): `y_embedder` (caption MLP), `y_emb_preprocess`
(a prompt block: self-attention + SwiGLU, no adaLN) and `pooled_y_emb_process` (pooled MLP).
docs/microdit.md (b) 2.
"""

import torch.nn.functional as F
from torch import Tensor, nn

from frugaldiff.models.microdit_block import (
    IN_INIT_STD,
    QKNormAttention,
    SwiGLU,
    layer_norm,
    trunc_normal,
)
from frugaldiff.models.scaling import ffn_hidden

# The prompt block's SwiGLU hidden ratio (official mlp_ratio=4.0, before SwiGLU's ⅔ rounding).
PROMPT_MLP_RATIO = 4.0


class NormedMlp(nn.Module):
    """fc1 → GELU(tanh) → LayerNorm → fc2, with biases (timm's Mlp with norm_layer, official).

    Official init: both weights N(0, 0.02²) (here its 100σ-truncated twin), biases 0.
    """

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, dim)
        self.norm = layer_norm(dim)
        self.fc2 = nn.Linear(dim, dim)
        for layer in (self.fc1, self.fc2):
            trunc_normal(layer.weight, IN_INIT_STD)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: (..., C_in) → (..., D)."""
        return self.fc2(self.norm(F.gelu(self.fc1(x), approximate="tanh")))  # (..., D)


class PromptBlock(nn.Module):
    """x += Attn(LN x); x += SwiGLU(LN x), unconditioned; both outputs start at exactly 0.

    Official `AttentionBlockPromptEmbedding` at the backbone's width and head width, its attn
    proj and SwiGLU w3 zeroed after the 0.02 init, so the block starts as the identity.
    """

    def __init__(self, dim: int, head_dim: int) -> None:
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = QKNormAttention(dim, dim, dim // head_dim, out_init_std=IN_INIT_STD)
        self.norm2 = layer_norm(dim)
        self.ffn = SwiGLU(dim, ffn_hidden(dim, PROMPT_MLP_RATIO, "swiglu"), IN_INIT_STD)
        nn.init.zeros_(self.attn.proj.weight)
        nn.init.zeros_(self.ffn.w3.weight)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, L, D) → (B, L, D)."""
        x = x + self.attn(self.norm1(x))  # (B, L, D)
        return x + self.ffn(self.norm2(x))  # (B, L, D)


class CaptionEncoder(nn.Module):
    """captions (B, L, C_cap) → (y, pooled): tokens (B, L, D) and a (B, D) conditioning term."""

    def __init__(self, caption_channels: int, dim: int, head_dim: int) -> None:
        super().__init__()
        self.projection = NormedMlp(caption_channels, dim)
        self.prompt_block = PromptBlock(dim, head_dim)
        self.pooled_mlp = NormedMlp(dim, dim)

    def forward(self, captions: Tensor) -> tuple[Tensor, Tensor]:
        """captions: (B, L, C_cap) float → y (B, L, D), pooled (B, D) (added to c)."""
        y = self.prompt_block(self.projection(captions))  # (B, L, D)
        return y, self.pooled_mlp(y.mean(dim=1))  # (B, L, D), (B, D)
