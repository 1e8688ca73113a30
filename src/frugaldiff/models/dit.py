"""Class-conditional Diffusion Transformer (Peebles & Xie 2023, arXiv 2212.09748), with MicroDiT.

DiT: patchify, a fixed 2-D sin-cos position embedding, adaLN-zero blocks conditioned on the
time + label embedding, a zero-initialised final layer, unpatchify. MicroDiT (Sehwag et al.
2024, arXiv 2407.15811; docs/microdit.md (b)) adds a patch-mixer over all tokens, deferred or naive
masking via `keep_indices`, expert-choice MoE feed-forwards and layer-wise scaling.
"""

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from frugaldiff.errors import ConfigError
from frugaldiff.masking import MaskIndices, apply_mask, restore_tokens
from frugaldiff.models.embeddings import LabelEmbedder, TimestepEmbedder
from frugaldiff.models.scaling import MICRODIT_ATTN_RATIOS, MICRODIT_MLP_RATIOS, layerwise_widths
from frugaldiff.models.transformer import (
    BlockWidths,
    DiTBlock,
    FinalLayer,
    Mlp,
    sincos_pos_embed_2d,
)

Masking = Literal["none", "deferred", "naive"]
FFN = Literal["mlp", "moe"]

# DiT's timestep embedder sees 256 sinusoid frequencies (`frequency_embedding_size`).
DIT_FREQUENCY_DIM = 256


@dataclass(frozen=True)
class DiTConfig:
    """Architecture of one DiT; DiT's names (hidden_size, depth, ...), MicroDiT's extras below.

    num_classes excludes the null label (index num_classes). learn_sigma doubles the output
    channels (IDDPM's learned variance). patch_mixer_depth: MicroDiT blocks over all tokens
    before masking (0: none); masking says where `keep_indices` drop tokens: "deferred" after
    the mixer, "naive" before it, "none" never. ffn "moe" makes every `moe_every`-th block
    (not the backbone's last) an expert-choice MoE of `num_experts` experts; layerwise_scaling
    grows the backbone's attention/FFN widths with depth (docs/microdit.md (e), (f)).
    """

    image_size: int
    patch_size: int
    hidden_size: int
    depth: int
    num_heads: int
    num_classes: int
    in_channels: int = 3
    mlp_ratio: float = 4.0
    dropout: float = 0.0  # must stay 0: DiT trains without dropout (label dropout: objective)
    learn_sigma: bool = False
    patch_mixer_depth: int = 0
    masking: Masking = "none"
    ffn: FFN = "mlp"
    moe_every: int = 2
    num_experts: int = 8
    capacity_factor: float = 2.0
    layerwise_scaling: bool = False

    def __post_init__(self) -> None:
        positive = ("image_size", "patch_size", "hidden_size", "depth", "num_heads", "num_classes")
        for key in (*positive, "in_channels", "moe_every", "num_experts"):
            if getattr(self, key) < 1:
                raise ConfigError(f"DiTConfig.{key}={getattr(self, key)}; expected an int >= 1")
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"DiTConfig.patch_size={self.patch_size}; expected a divisor of "
                f"image_size={self.image_size}"
            )
        if self.hidden_size % (4 * self.num_heads) or self.hidden_size % 4:
            raise ConfigError(
                f"DiTConfig.hidden_size={self.hidden_size}; expected a multiple of "
                f"4·num_heads={4 * self.num_heads} (head width, 2-D sin-cos embedding)"
            )
        if self.dropout != 0.0:
            raise ConfigError(
                f"DiTConfig.dropout={self.dropout}; expected 0 (DiT has no dropout; "
                "classifier-free label dropout is diffusion.p_uncond)"
            )
        if self.mlp_ratio <= 0 or self.capacity_factor <= 0:
            raise ConfigError(
                f"DiTConfig: mlp_ratio={self.mlp_ratio}, capacity_factor="
                f"{self.capacity_factor}; expected both > 0"
            )
        if self.patch_mixer_depth < 0:
            raise ConfigError(
                f"DiTConfig.patch_mixer_depth={self.patch_mixer_depth}; expected an int >= 0"
            )
        for key, kind in (("masking", Masking), ("ffn", FFN)):
            if getattr(self, key) not in get_args(kind):
                raise ConfigError(
                    f"DiTConfig.{key}={getattr(self, key)!r}; expected one of {get_args(kind)}"
                )

    @property
    def grid_size(self) -> int:
        """G, patches per side."""
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        """N = G², the unmasked sequence length."""
        return self.grid_size**2

    @property
    def out_channels(self) -> int:
        """Output channels: C, or 2C with a learned variance."""
        return 2 * self.in_channels if self.learn_sigma else self.in_channels


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

    Constant (DiT, and always the mixer): d_attn = D, FFN hidden = mlp_ratio·D. Layer-wise
    scaling (docs/microdit.md (f)) grows α_i from 0.5 to 1 and β_i from 0.5 to 4 over the backbone,
    with the rounding rules of `models/scaling.py` (GELU MLP 32·⌈β_i·D/32⌉, MoE 256·⌈·⌉).
    """
    dim, head_dim = cfg.hidden_size, cfg.hidden_size // cfg.num_heads
    if not cfg.layerwise_scaling or in_mixer:
        return [BlockWidths(dim, cfg.num_heads, int(cfg.mlp_ratio * dim))] * depth
    widths = layerwise_widths(
        depth,
        dim,
        head_dim,
        attn_ratios=MICRODIT_ATTN_RATIOS,
        mlp_ratios=MICRODIT_MLP_RATIOS,
        ffn="gelu",
        moe_blocks=moe_blocks(cfg, depth, dense_last=True),
    )
    rows = zip(widths.attn_dims, widths.num_heads, widths.mlp_hidden, strict=True)
    return [BlockWidths(attn, heads, hidden) for attn, heads, hidden in rows]


def moe_out_init_std(index: int, depth: int, *, in_mixer: bool) -> float:
    """MicroDiT's init std of a block's output projection (arXiv 2407.15811, official code).

    Backbone block i (0-based): 0.02/√(2(i+1)), so deeper residual branches start smaller; a
    patch-mixer block: 0.02/√(2·depth of the mixer).
    """
    return 0.02 / math.sqrt(2 * (depth if in_mixer else index + 1))


def build_ffn(
    cfg: DiTConfig, widths: BlockWidths, moe: bool, out_init_std: float = 0.02
) -> nn.Module:
    """A GELU MLP, or MicroDiT's expert-choice MoE (imported only when a config asks for it).

    `out_init_std` is the MoE experts' output-projection init (moe_out_init_std); the dense MLP
    keeps DiT's Xavier init.
    """
    if not moe:
        return Mlp(cfg.hidden_size, widths.ffn_dim)
    from frugaldiff.models.moe import ExpertChoiceMoE  # optional until a config asks for MoE

    return ExpertChoiceMoE(
        cfg.hidden_size,
        widths.ffn_dim,
        cfg.num_experts,
        cfg.capacity_factor,
        out_init_std=out_init_std,
    )


def _stack(cfg: DiTConfig, depth: int, *, in_mixer: bool) -> nn.ModuleList:
    """`depth` adaLN-zero blocks: the backbone, or (in_mixer) the patch-mixer."""
    moe = moe_blocks(cfg, depth, dense_last=not in_mixer)
    widths = stack_widths(cfg, depth, in_mixer=in_mixer)
    return nn.ModuleList(
        DiTBlock(
            cfg.hidden_size,
            w,
            build_ffn(cfg, w, i in moe, moe_out_init_std(i, depth, in_mixer=in_mixer)),
        )
        for i, w in enumerate(widths)
    )


class DiT(nn.Module):
    """z (B, C, H, W), t (B,), labels (B,) [, keep_indices (B, K)] → raw output (B, C_out, H, W).

    Tokens: patch embed + fixed sin-cos table (added once, before any masking) → patch-mixer
    blocks → backbone blocks → final layer. With keep_indices the "naive" model gathers the kept
    tokens before the mixer, the "deferred" one after it (docs/microdit.md (b) 3-8, (c)); the final
    layer's (B, K, p²C) patches are scattered back and dropped patches are exactly 0.
    """

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim, patch = cfg.hidden_size, cfg.patch_size
        self.patch_embed = nn.Conv2d(cfg.in_channels, dim, kernel_size=patch, stride=patch)
        # DiT: initialise the patch embedding like a Linear (Xavier on the flattened kernel).
        nn.init.xavier_uniform_(self.patch_embed.weight.view(dim, -1))
        nn.init.zeros_(self.patch_embed.bias)
        # Deviation: a non-persistent buffer, not DiT's frozen Parameter; the same values, not
        # counted as a parameter, and recomputed (not loaded) for a new image size.
        table = sincos_pos_embed_2d(dim, cfg.grid_size).to(self.patch_embed.weight.device)
        self.register_buffer("pos_embed", table, persistent=False)  # (N, D)
        # Deviation: embeddings.py's sinusoid of 1000·t ([sin, cos], exponents k/(F/2 − 1))
        # instead of DiT's of the integer step ([cos, sin], k/(F/2)); the same frequency band.
        self.time_embedder = TimestepEmbedder(dim, frequency_dim=DIT_FREQUENCY_DIM)
        # Deviation: DiT draws the time MLP from N(0, 0.02²); uniform of the same variance,
        # since normal_ on the meta device (parameter counting) imports torch._dynamo.
        bound = 0.02 * math.sqrt(3.0)
        for layer in (self.time_embedder.linear_in, self.time_embedder.linear_out):
            nn.init.uniform_(layer.weight, -bound, bound)
            nn.init.zeros_(layer.bias)
        # Deviation: LabelEmbedder's uniform 1/num_classes-variance init, not DiT's N(0, 0.02²).
        self.label_embedder = LabelEmbedder(cfg.num_classes, dim)
        # Deviation: the mixer has the backbone's width D (docs/microdit.md (b) 3, "ours"), so the
        # official LN + Linear projections into and out of a narrower mixer are not needed.
        self.mixer = _stack(cfg, cfg.patch_mixer_depth, in_mixer=True)
        self.blocks = _stack(cfg, cfg.depth, in_mixer=False)
        self.final_layer = FinalLayer(dim, patch * patch * cfg.out_channels)

    def _check_inputs(self, z: Tensor, t: Tensor, labels: Tensor, keep: Tensor | None) -> None:
        cfg = self.cfg
        expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if z.ndim != 4 or tuple(z.shape[1:]) != expected:
            raise ValueError(f"DiT: expected z of shape (B, {expected}), got {tuple(z.shape)}")
        batch = z.shape[0]
        for name, value in (("t", t), ("labels", labels)):
            if tuple(value.shape) != (batch,):
                raise ValueError(f"DiT: expected {name} of shape ({batch},), got {value.shape}")
        if labels.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"DiT: expected integer labels, got {labels.dtype}")
        if labels.numel() and (labels.min() < 0 or labels.max() > cfg.num_classes):
            raise ValueError(
                f"DiT: labels must lie in [0, {cfg.num_classes}] ({cfg.num_classes} = null "
                f"label), got range [{int(labels.min())}, {int(labels.max())}]"
            )
        if keep is not None and cfg.masking == "none":
            raise ConfigError(
                "DiT: got keep_indices but model.masking='none'; expected 'deferred' or 'naive'"
            )
        if keep is not None and keep.shape[0] != batch:
            raise ValueError(f"DiT: expected keep_indices of shape ({batch}, K), got {keep.shape}")

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
        labels: Tensor,
        *,
        generator: torch.Generator | None = None,
        keep_indices: Tensor | None = None,
    ) -> Tensor:
        """Raw network output for noisy images at time t and class labels.

        z: (B, C, H, W) float; t: (B,) float in [0, 1], 1 noisiest; labels: (B,) long in
        [0, num_classes], num_classes the null label; generator: unused (DiT draws nothing),
        accepted as every model's interface; keep_indices: (B, K) sorted kept token indices
        from `TokenMasker.draw(...).keep` (None: all tokens; arange(N) gives the same result
        bit for bit). Returns (B, C_out, H, W), exactly 0 at dropped patches.
        """
        del generator  # no dropout, no noise: nothing to draw
        self._check_inputs(z, t, labels, keep_indices)
        cfg = self.cfg
        c = self.time_embedder(t) + self.label_embedder(labels)  # (B, D)
        x = self.patch_embed(z).flatten(2).transpose(1, 2)  # (B, N, D)
        x = x + self.pos_embed.to(x.dtype)  # (B, N, D), added once: kept tokens carry it
        mask = None if keep_indices is None else MaskIndices.from_keep(keep_indices, x.shape[1])
        if mask is not None and cfg.masking == "naive":
            x = apply_mask(x, mask.keep)  # (B, K, D) the mixer sees only kept tokens
        for block in self.mixer:
            x = block(x, c)  # (B, N, D) deferred / (B, K, D) naive
        if mask is not None and cfg.masking == "deferred":
            x = apply_mask(x, mask.keep)  # (B, K, D) dropped after the mixer
        for block in self.blocks:
            x = block(x, c)  # (B, K, D)
        x = self.final_layer(x, c)  # (B, K, p²·C_out)
        if mask is not None:
            # docs/microdit.md (b) 8: dropped slots are a constant 0, not a learned token (the
            # masked loss never reaches them, so a learned one would get no gradient).
            x = restore_tokens(x, x.new_zeros(x.shape[2]), mask.restore)  # (B, N, p²·C_out)
        return self.unpatchify(x)  # (B, C_out, H, W)
