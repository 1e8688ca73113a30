"""Class-conditional U-Net of progressive distillation (Salimans & Ho 2022, arXiv 2202.00512).

The DDPM / DDPM++ family (Ho et al. 2020; Song et al. 2021, arXiv 2011.13456): res-blocks that
also resample (avg-pool down, nearest up), embedding width 4·ch, swish on the embedding before
each block's Dense, GroupNorm(h)·(1 + scale) + shift, 1-head self-attention at chosen
resolutions, zero-initialised conv2 / proj_out / conv_out. Meng et al. 2023 (arXiv 2210.03142)
add a guidance-weight embedding: `attach_guidance_embedding`. Details: docs/guided_distillation.md
(g).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from frugaldiff.errors import ConfigError
from frugaldiff.models.embeddings import GuidanceWeightEmbedder, LabelEmbedder, TimestepEmbedder
from frugaldiff.models.unet_blocks import (
    AttentionBlock,
    DownLevel,
    Resample,
    ResBlock,
    UNetBlock,
    UpLevel,
    fan_avg_init,
)

# PD and DDPM: the conditioning embedding is 4× the base channel count.
EMBEDDING_MULT = 4


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of one U-Net; notation ch / mult / blocks / attention of (g) in the paper notes.

    image_size: side of the square input; attention_resolutions: feature-map sides (e.g. 16)
    that get self-attention after each res-block. num_classes excludes the null label, which
    is index `num_classes`. num_groups must divide every level's channel count. learn_sigma
    doubles the output channels (IDDPM's learned variance, as DiTConfig's).
    """

    image_size: int
    base_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attention_resolutions: tuple[int, ...]
    num_classes: int
    in_channels: int = 3
    dropout: float = 0.0
    num_groups: int = 32
    num_heads: int = 1
    learn_sigma: bool = False

    def __post_init__(self) -> None:
        # YAML gives lists; keep the frozen config hashable and comparable.
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))
        attention = tuple(int(r) for r in self.attention_resolutions)
        object.__setattr__(self, "attention_resolutions", attention)
        for key in ("image_size", "base_channels", "num_res_blocks", "num_classes"):
            if getattr(self, key) < 1:
                raise ConfigError(f"UNetConfig.{key}={getattr(self, key)}; expected an int >= 1")
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ConfigError(
                f"UNetConfig.channel_mult={self.channel_mult}; expected positive ints"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"UNetConfig.dropout={self.dropout}; expected 0 <= dropout < 1")
        levels = len(self.channel_mult)
        if self.image_size % 2 ** (levels - 1):
            raise ConfigError(
                f"UNetConfig.image_size={self.image_size}; expected a multiple of "
                f"2**(len(channel_mult) - 1) = {2 ** (levels - 1)}"
            )
        sides = self.resolutions
        unknown = sorted(set(attention) - set(sides))
        if unknown:
            raise ConfigError(
                f"UNetConfig.attention_resolutions={attention}: {unknown} never occur; "
                f"expected a subset of the feature-map sides {sides}"
            )
        widths = sorted({self.base_channels} | {self.base_channels * m for m in self.channel_mult})
        bad = [c for c in widths if c % self.num_groups]
        if self.num_groups < 1 or bad:
            raise ConfigError(
                f"UNetConfig.num_groups={self.num_groups} does not divide channel counts {bad}; "
                f"expected a common divisor of {widths} (base_channels * channel_mult)"
            )
        attended = [self.base_channels * self.channel_mult[sides.index(r)] for r in attention]
        if attention and (self.num_heads < 1 or any(c % self.num_heads for c in attended)):
            raise ConfigError(
                f"UNetConfig.num_heads={self.num_heads}; expected a divisor of the attended "
                f"channel counts {sorted(set(attended))}"
            )

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Feature-map side at each level, e.g. (32, 16, 8) for a 32² input and 3 levels."""
        return tuple(self.image_size // 2**level for level in range(len(self.channel_mult)))

    @property
    def embedding_dim(self) -> int:
        """Width of the conditioning embedding (4·ch, PD)."""
        return EMBEDDING_MULT * self.base_channels


class UNet(nn.Module):
    """z (B, C, H, W), t (B,), labels (B,) [, w (B,)] → raw output (B, C, H, W).

    The output is whatever the parameterisation (eps / x / v) makes of it; that lives in
    `diffusion/parameterization.py`. Under bf16 autocast it runs in mixed precision as is.
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch, emb_dim = cfg.base_channels, cfg.embedding_dim

        def res(c_in: int, c_out: int, resample: Resample = "none") -> ResBlock:
            return ResBlock(
                c_in,
                c_out,
                emb_dim,
                num_groups=cfg.num_groups,
                dropout=cfg.dropout,
                resample=resample,
            )

        def attention(c: int) -> AttentionBlock:
            return AttentionBlock(c, num_heads=cfg.num_heads, num_groups=cfg.num_groups)

        def block(c_in: int, c_out: int, side: int) -> UNetBlock:
            attends = side in cfg.attention_resolutions
            return UNetBlock(res(c_in, c_out), attention(c_out) if attends else None)

        # Deviation: PD's time input is 1000·u(λ) with u = arctan(e^{-λ/2})/(π/2), affine in t
        # and within 3e-5 of it under the truncated cosine schedule; we embed 1000·t.
        self.time_embedder = TimestepEmbedder(emb_dim, frequency_dim=ch)
        self.label_embedder = LabelEmbedder(cfg.num_classes, emb_dim)
        self.w_embedder: GuidanceWeightEmbedder | None = None
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        fan_avg_init(self.conv_in)

        # Encoder; `skip_channels` lists the channels of each tensor the decoder concatenates.
        skip_channels, c, levels = [ch], ch, len(cfg.channel_mult)
        self.down_levels = nn.ModuleList()
        for level, (mult, side) in enumerate(zip(cfg.channel_mult, cfg.resolutions, strict=True)):
            blocks = []
            for _ in range(cfg.num_res_blocks):
                blocks.append(block(c, ch * mult, side))
                c = ch * mult
                skip_channels.append(c)
            down = None
            if level < levels - 1:
                down = res(c, c, "down")
                skip_channels.append(c)
            self.down_levels.append(DownLevel(blocks, down))

        # Deviation: PD always attends in the middle; we do only if any resolution attends,
        # so "attention: none" (the smoke size) means none anywhere.
        mid_attention = attention(c) if cfg.attention_resolutions else None
        self.mid = nn.ModuleList([UNetBlock(res(c, c), mid_attention), UNetBlock(res(c, c), None)])

        # Decoder: num_res_blocks + 1 blocks per level, each eating one skip.
        self.up_levels = nn.ModuleList()
        for level in reversed(range(levels)):
            mult, side = cfg.channel_mult[level], cfg.resolutions[level]
            blocks = []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(block(c + skip_channels.pop(), ch * mult, side))
                c = ch * mult
            up = res(c, c, "up") if level > 0 else None
            self.up_levels.append(UpLevel(blocks, up))

        self.norm_out = nn.GroupNorm(cfg.num_groups, c)
        out_channels = 2 * cfg.in_channels if cfg.learn_sigma else cfg.in_channels
        self.conv_out = nn.Conv2d(c, out_channels, 3, padding=1)
        # Zero conv_out: a fresh network outputs exactly 0 (PD init_scale=0).
        fan_avg_init(self.conv_out, scale=0.0)

    def attach_guidance_embedding(self, w_max: float) -> GuidanceWeightEmbedder:
        """Add the zero-initialised w embedding of a stage-1 student (Meng et al. 2023).

        Call it after loading the teacher's weights (they have no w embedding) and before
        loading a stage-1 or later checkpoint. Returns the new module, on the model's device.
        """
        if self.w_embedder is not None:
            raise RuntimeError("UNet.attach_guidance_embedding: a w embedding is already attached")
        reference = self.conv_in.weight
        embedder = GuidanceWeightEmbedder(
            self.cfg.embedding_dim, w_max, frequency_dim=self.cfg.base_channels
        )
        self.w_embedder = embedder.to(device=reference.device, dtype=reference.dtype)
        return self.w_embedder

    def _check_inputs(self, z: Tensor, t: Tensor, labels: Tensor, w: Tensor | None) -> None:
        cfg = self.cfg
        expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if z.ndim != 4 or tuple(z.shape[1:]) != expected:
            raise ValueError(f"UNet: expected z of shape (B, {expected}), got {tuple(z.shape)}")
        batch = (z.shape[0],)
        for name, value in (("t", t), ("labels", labels), ("w", w)):
            if value is not None and tuple(value.shape) != batch:
                shape = tuple(value.shape)
                raise ValueError(f"UNet: expected {name} of shape {batch}, got {shape}")
        if labels.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"UNet: expected integer labels, got {labels.dtype}")
        if labels.numel() and (labels.min() < 0 or labels.max() > cfg.num_classes):
            raise ValueError(
                f"UNet: labels must lie in [0, {cfg.num_classes}] ({cfg.num_classes} = null "
                f"label), got range [{int(labels.min())}, {int(labels.max())}]"
            )
        if w is not None and self.w_embedder is None:
            raise ConfigError(
                "UNet: got a guidance weight w but the model has no w embedding; "
                "call attach_guidance_embedding(w_max) first (stage-1 students only)"
            )
        if w is None and self.w_embedder is not None:
            raise ValueError("UNet: this model has a w embedding; pass the guidance weight w")

    def forward(
        self,
        z: Tensor,
        t: Tensor,
        labels: Tensor,
        w: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Raw network output for noisy images at time t and class labels.

        z: (B, C, H, W) float; t: (B,) float in [0, 1], 1 noisiest; labels: (B,) long in
        [0, num_classes], num_classes being the null label; w: (B,) float guidance weight, only
        with an attached w embedding; generator: draws dropout masks in train mode (required
        there when dropout > 0). Returns (B, C, H, W) in the compute dtype.
        """
        self._check_inputs(z, t, labels, w)
        emb = self.time_embedder(t) + self.label_embedder(labels)  # (B, E)
        if self.w_embedder is not None and w is not None:
            emb = emb + self.w_embedder(w)  # (B, E)

        skips = [self.conv_in(z)]  # [(B, ch, H, W)]
        for level in self.down_levels:
            skips += level(skips[-1], emb, generator)  # + [(B, ch·mult, H_l, W_l), ...]
        h = skips[-1]  # (B, ch·mult[-1], H_L, W_L)
        for block in self.mid:
            h = block(h, emb, generator)  # (B, ch·mult[-1], H_L, W_L)
        for level in self.up_levels:
            h = level(h, skips, emb, generator)  # (B, ch·mult, H_l', W_l'), skips consumed
        h = F.silu(self.norm_out(h))  # (B, ch·mult[0], H, W)
        return self.conv_out(h)  # (B, C, H, W)
