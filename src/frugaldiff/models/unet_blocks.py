"""The U-Net's layers (Salimans & Ho 2022, arXiv 2202.00512; DDPM, arXiv 2006.11239).

PD's `ResnetBlock` (which also resamples), 1-head self-attention, and the down / up levels the
U-Net stacks them into (models/unet.py). Initialisation follows DDPM / PD's `default_init`;
dropout masks come from the caller's generator so training stays reproducible without touching
the global RNG. Details: docs/guided_distillation.md (g).
"""

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Resample = Literal["none", "down", "up"]


def fan_avg_init(layer: nn.Conv2d | nn.Linear, scale: float = 1.0) -> None:
    """DDPM / PD `default_init(scale)`: variance scaling, fan_avg, uniform; zero bias.

    With scale 1 this is Glorot-uniform; scale 0 gives the zero-initialised output layers
    (PD uses 1e-10, the same thing in practice).
    """
    if scale == 0.0:
        nn.init.zeros_(layer.weight)
    else:
        nn.init.xavier_uniform_(layer.weight, gain=math.sqrt(scale))
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def generator_dropout(
    h: Tensor, p: float, training: bool, generator: torch.Generator | None
) -> Tensor:
    """Inverted dropout with the caller's generator; the model never touches the global RNG."""
    if not training or p == 0.0:
        return h
    if generator is None:
        raise ValueError(
            f"UNet in train mode with dropout={p} needs forward(..., generator=...) "
            "(masks come from the caller's torch.Generator, never the global RNG)"
        )
    keep = torch.empty_like(h).bernoulli_(1.0 - p, generator=generator)  # (B, C, H, W)
    return h * keep / (1.0 - p)


class ResBlock(nn.Module):
    """PD `ResnetBlock`: norm → swish → [resample] → conv → scale/shift → swish → dropout → conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        embedding_dim: int,
        *,
        num_groups: int,
        dropout: float,
        resample: Resample = "none",
    ) -> None:
        super().__init__()
        self.resample = resample
        self.dropout = dropout
        self.norm1 = nn.GroupNorm(num_groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(embedding_dim, 2 * out_channels)
        self.norm2 = nn.GroupNorm(num_groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = (
            nn.Conv2d(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )
        fan_avg_init(self.conv1)
        fan_avg_init(self.emb_proj)
        # Zero conv2: each block starts as its skip path (PD init_scale=0).
        fan_avg_init(self.conv2, scale=0.0)
        if isinstance(self.skip, nn.Conv2d):
            fan_avg_init(self.skip)

    def _resample(self, x: Tensor) -> Tensor:
        if self.resample == "down":
            return F.avg_pool2d(x, 2)  # (B, C, H/2, W/2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")  # (B, C, 2H, 2W)
        return x

    def forward(self, x: Tensor, emb: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x: (B, C_in, H, W), emb: (B, E) → (B, C_out, H', W'), H' = H/2, H or 2H."""
        h = F.silu(self.norm1(x))  # (B, C_in, H, W)
        h = self._resample(h)  # (B, C_in, H', W')
        x = self._resample(x)  # (B, C_in, H', W')
        h = self.conv1(h)  # (B, C_out, H', W')
        scale, shift = self.emb_proj(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # (B,C_out,1,1)
        h = self.norm2(h) * (1 + scale) + shift  # (B, C_out, H', W')
        h = generator_dropout(F.silu(h), self.dropout, self.training, generator)  # (B,C_out,H',W')
        h = self.conv2(h)  # (B, C_out, H', W')
        return self.skip(x) + h  # (B, C_out, H', W')


class AttentionBlock(nn.Module):
    """PD `AttnBlock`: GroupNorm → multi-head self-attention over H·W tokens → zero proj_out."""

    def __init__(self, channels: int, *, num_heads: int, num_groups: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(num_groups, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj_out = nn.Linear(channels, channels)
        fan_avg_init(self.qkv)
        # Zero proj_out: attention starts as the identity (PD init_scale=0).
        fan_avg_init(self.proj_out, scale=0.0)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) → (B, C, H, W)."""
        b, c, height, width = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, N, C), N = H·W
        qkv = self.qkv(tokens).reshape(b, -1, 3, self.num_heads, c // self.num_heads)  # (B,N,3,h,d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 × (B, heads, N, C/heads)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, C/heads)
        h = self.proj_out(h.transpose(1, 2).reshape(b, -1, c))  # (B, N, C)
        return x + h.transpose(1, 2).reshape(b, c, height, width)  # (B, C, H, W)


class UNetBlock(nn.Module):
    """One res-block, then self-attention where the level has it (else identity)."""

    def __init__(self, res: ResBlock, attention: AttentionBlock | None) -> None:
        super().__init__()
        self.res = res
        self.attention = attention if attention is not None else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor, generator: torch.Generator | None) -> Tensor:
        """x: (B, C_in, H, W) → (B, C_out, H', W')."""
        return self.attention(self.res(x, emb, generator))  # (B, C_out, H', W')


class DownLevel(nn.Module):
    """Encoder level: its blocks, then a downsampling res-block (absent at the last level)."""

    def __init__(self, blocks: list[UNetBlock], downsample: ResBlock | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, h: Tensor, emb: Tensor, generator: torch.Generator | None) -> list[Tensor]:
        """h: (B, C_in, H, W) → every block's output (the decoder's skips); the last feeds on."""
        outputs = []
        for block in self.blocks:
            h = block(h, emb, generator)  # (B, C_out, H, W)
            outputs.append(h)
        if self.downsample is not None:
            outputs.append(self.downsample(h, emb, generator))  # (B, C_out, H/2, W/2)
        return outputs


class UpLevel(nn.Module):
    """Decoder level: blocks that each concatenate one skip, then an upsampling res-block."""

    def __init__(self, blocks: list[UNetBlock], upsample: ResBlock | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.upsample = upsample

    def forward(
        self, h: Tensor, skips: list[Tensor], emb: Tensor, generator: torch.Generator | None
    ) -> Tensor:
        """h: (B, C_in, H, W); pops one skip per block off `skips` → (B, C_out, H', W')."""
        for block in self.blocks:
            h = torch.cat([h, skips.pop()], dim=1)  # (B, C_in + C_skip, H, W)
            h = block(h, emb, generator)  # (B, C_out, H, W)
        if self.upsample is not None:
            h = self.upsample(h, emb, generator)  # (B, C_out, 2H, 2W)
        return h
