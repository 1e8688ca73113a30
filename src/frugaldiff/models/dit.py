"""Diffusion Transformer (Peebles & Xie 2023, arXiv 2212.09748), with MicroDiT's extensions.

DiT: patchify, a fixed 2-D sin-cos position embedding, adaLN-zero blocks conditioned on the
time + label embedding, a zero-initialised final layer, unpatchify. MicroDiT (Sehwag et al.
2024, arXiv 2407.15811; docs/microdit.md (b)) adds a patch-mixer over all tokens, deferred or naive
masking via `keep_indices`, expert-choice MoE feed-forwards, layer-wise scaling and (block
"microdit") its own block, embeddings, mixer projections and caption path.
"""

import math

import torch
from torch import Tensor, nn

from frugaldiff.errors import ConfigError
from frugaldiff.masking import MaskIndices, apply_mask, restore_tokens
from frugaldiff.models.caption import CaptionEncoder
from frugaldiff.models.dit_config import DiTConfig
from frugaldiff.models.embeddings import LabelEmbedder, MicroDiTTimestepEmbedder, TimestepEmbedder
from frugaldiff.models.microdit_block import MicroDiTFinalLayer, mixer_projection
from frugaldiff.models.stacks import build_stack
from frugaldiff.models.transformer import FinalLayer, sincos_pos_embed_2d


class DiT(nn.Module):
    """z (B, C, H, W), t (B,), cond [, keep_indices (B, K)] → raw output (B, C_out, H, W).

    cond: labels (B,), or caption embeddings (B, L, C_cap) for a caption model. Tokens: patch
    embed + fixed sin-cos table (added once, before any masking) → patch-mixer blocks →
    backbone blocks → final layer. With keep_indices the "naive" model gathers the kept tokens
    before the mixer, the "deferred" one after it (docs/microdit.md (b) 3-8, (c)); the final
    layer's (B, K, p²C) patches are scattered back and dropped patches are exactly 0.
    """

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim, patch, microdit = cfg.hidden_size, cfg.patch_size, cfg.block == "microdit"
        self.patch_embed = nn.Conv2d(cfg.in_channels, dim, kernel_size=patch, stride=patch)
        # DiT and MicroDiT: initialise the patch embedding like a Linear (Xavier, flattened).
        nn.init.xavier_uniform_(self.patch_embed.weight.view(dim, -1))
        nn.init.zeros_(self.patch_embed.bias)
        # Deviation: a non-persistent buffer, not DiT's frozen Parameter; the same values, not
        # counted as a parameter, and recomputed (not loaded) for a new image size.
        table = sincos_pos_embed_2d(dim, cfg.grid_size).to(self.patch_embed.weight.device)
        self.register_buffer("pos_embed", table, persistent=False)  # (N, D)
        self.time_embedder: nn.Module
        if microdit:  # MicroDiT's own: [cos, sin], 512 features, GELU(tanh) (embeddings.py)
            self.time_embedder = MicroDiTTimestepEmbedder(dim, frequency_dim=cfg.frequency_dim)
        else:
            # Deviation: embeddings.py's sinusoid of 1000·t ([sin, cos], exponents k/(F/2 − 1))
            # instead of DiT's of the integer step ([cos, sin], k/(F/2)); the same band.
            self.time_embedder = TimestepEmbedder(dim, frequency_dim=cfg.frequency_dim)
            # Deviation: DiT draws the time MLP from N(0, 0.02²); uniform of the same variance,
            # since normal_ on the meta device (parameter counting) imports torch._dynamo.
            bound = 0.02 * math.sqrt(3.0)
            for layer in (self.time_embedder.linear_in, self.time_embedder.linear_out):
                nn.init.uniform_(layer.weight, -bound, bound)
                nn.init.zeros_(layer.bias)
        # Deviation: LabelEmbedder's uniform 1/num_classes-variance init, not DiT's N(0, 0.02²).
        self.label_embedder = LabelEmbedder(cfg.num_classes, dim) if cfg.num_classes else None
        self.caption = (
            CaptionEncoder(cfg.caption_channels, dim, cfg.head_dim)
            if cfg.caption_channels
            else None
        )
        # Official LN + Linear projections into and out of a mixer of another width, and of
        # the caption tokens into it (Identity at equal widths, always with DiT's block).
        mixer_dim = cfg.mixer_width if cfg.patch_mixer_depth else dim
        self.mixer_in = mixer_projection(dim, mixer_dim)
        self.mixer_out = mixer_projection(mixer_dim, dim)
        self.mixer_captions = mixer_projection(dim, mixer_dim) if self.caption else nn.Identity()
        self.mixer = build_stack(cfg, cfg.patch_mixer_depth, in_mixer=True)
        self.blocks = build_stack(cfg, cfg.depth, in_mixer=False)
        final = MicroDiTFinalLayer if microdit else FinalLayer
        self.final_layer = final(dim, patch * patch * cfg.out_channels)

    def _check_cond(self, cond: Tensor, batch: int) -> None:
        cfg = self.cfg
        if self.caption is not None:
            if cond.ndim != 3 or cond.shape[0] != batch or cond.shape[2] != cfg.caption_channels:
                raise ValueError(
                    f"DiT: a caption model expects caption embeddings of shape ({batch}, L, "
                    f"{cfg.caption_channels}), got {tuple(cond.shape)}"
                )
            return
        if tuple(cond.shape) != (batch,):
            raise ValueError(f"DiT: expected labels of shape ({batch},), got {cond.shape}")
        if cond.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"DiT: expected integer labels, got {cond.dtype}")
        if cond.numel() and (cond.min() < 0 or cond.max() > cfg.num_classes):
            raise ValueError(
                f"DiT: labels must lie in [0, {cfg.num_classes}] ({cfg.num_classes} = null "
                f"label), got range [{int(cond.min())}, {int(cond.max())}]"
            )

    def _check_inputs(self, z: Tensor, t: Tensor, cond: Tensor, keep: Tensor | None) -> None:
        cfg = self.cfg
        expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if z.ndim != 4 or tuple(z.shape[1:]) != expected:
            raise ValueError(f"DiT: expected z of shape (B, {expected}), got {tuple(z.shape)}")
        batch = z.shape[0]
        if tuple(t.shape) != (batch,):
            raise ValueError(f"DiT: expected t of shape ({batch},), got {t.shape}")
        self._check_cond(cond, batch)
        if keep is not None and cfg.masking == "none":
            raise ConfigError(
                "DiT: got keep_indices but model.masking='none'; expected 'deferred' or 'naive'"
            )
        if keep is not None and keep.shape[0] != batch:
            raise ValueError(f"DiT: expected keep_indices of shape ({batch}, K), got {keep.shape}")

    def condition(self, t: Tensor, cond: Tensor) -> tuple[Tensor, Tensor | None]:
        """c (B, D) = time + label (or pooled caption) embedding; caption tokens (B, L, D)."""
        c = self.time_embedder(t)  # (B, D)
        if self.caption is None:
            assert self.label_embedder is not None  # DiTConfig: labels xor captions
            return c + self.label_embedder(cond), None  # (B, D)
        y, pooled = self.caption(cond.to(c.dtype))  # (B, L, D), (B, D)
        return c + pooled, y

    def unpatchify(self, x: Tensor) -> Tensor:
        """x: (B, N, p²·C_out) row-major patches → (B, C_out, H, W) (DiT's `unpatchify`)."""
        cfg, grid, patch = self.cfg, self.cfg.grid_size, self.cfg.patch_size
        x = x.reshape(x.shape[0], grid, grid, patch, patch, cfg.out_channels)  # (B, G, G, p, p, C)
        x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, G, p, G, p)
        return x.reshape(x.shape[0], cfg.out_channels, cfg.image_size, cfg.image_size)

    def forward(
        self,
        z: Tensor,
        t: Tensor,
        cond: Tensor,
        *,
        generator: torch.Generator | None = None,
        keep_indices: Tensor | None = None,
    ) -> Tensor:
        """Raw network output for noisy images at time t and class labels (or captions).

        z: (B, C, H, W) float; t: (B,) float in [0, 1], 1 noisiest; cond: labels (B,) long in
        [0, num_classes], num_classes the null label, or for a caption model (caption_channels
        > 0) caption embeddings (B, L, C_cap) float; generator: unused (DiT draws nothing),
        accepted as every model's interface; keep_indices: (B, K) sorted kept token indices
        from `TokenMasker.draw(...).keep` (None: all tokens; arange(N) gives the same result
        bit for bit). Returns (B, C_out, H, W), exactly 0 at dropped patches.
        """
        del generator  # no dropout, no noise: nothing to draw
        self._check_inputs(z, t, cond, keep_indices)
        cfg = self.cfg
        c, y = self.condition(t, cond)  # (B, D), (B, L, D) or None
        x = self.patch_embed(z).flatten(2).transpose(1, 2)  # (B, N, D)
        x = x + self.pos_embed.to(x.dtype)  # (B, N, D), added once: kept tokens carry it
        mask = None if keep_indices is None else MaskIndices.from_keep(keep_indices, x.shape[1])
        if mask is not None and cfg.masking == "naive":
            x = apply_mask(x, mask.keep)  # (B, K, D) the mixer sees only kept tokens
        if self.mixer:
            x = self.mixer_in(x)  # (B, N, Dm)
            y_mixer = None if y is None else self.mixer_captions(y)  # (B, L, Dm)
            for block in self.mixer:
                x = block(x, c) if y_mixer is None else block(x, c, y_mixer)  # (B, N|K, Dm)
        if mask is not None and cfg.masking == "deferred":
            x = apply_mask(x, mask.keep)  # (B, K, Dm) dropped after the mixer
        x = self.mixer_out(x)  # (B, K, D), after the gather as the official code (cheaper)
        for block in self.blocks:
            x = block(x, c) if y is None else block(x, c, y)  # (B, K, D)
        x = self.final_layer(x, c)  # (B, K, p²·C_out)
        if mask is not None:
            # docs/microdit.md (b) 8: dropped slots are a constant 0, not a learned token (the
            # masked loss never reaches them, so a learned one would get no gradient).
            x = restore_tokens(x, x.new_zeros(x.shape[2]), mask.restore)  # (B, N, p²·C_out)
        return self.unpatchify(x)  # (B, C_out, H, W)
