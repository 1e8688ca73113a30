"""The architecture config of a DiT (Peebles & Xie 2023, arXiv 2212.09748) or MicroDiT.

One frozen dataclass for both block kinds, so a size in models/registry.py names DiT's facts
(width, depth, heads) and MicroDiT's switches (Sehwag et al. 2024, arXiv 2407.15811; mixer,
masking, MoE, layer-wise scaling, `block`, captions) side by side; docs/microdit.md (b), (h).
"""

from dataclasses import dataclass
from typing import Literal, get_args

from frugaldiff.errors import ConfigError

Masking = Literal["none", "deferred", "naive"]
FFN = Literal["mlp", "moe"]
Block = Literal["dit", "microdit"]

# Timestep features per block: DiT's `frequency_embedding_size` 256, MicroDiT's 512 (official
# `TimestepEmbedder`; docs/microdit.md (b) "Block").
FREQUENCY_DIMS: dict[str, int] = {"dit": 256, "microdit": 512}


@dataclass(frozen=True)
class DiTConfig:
    """Architecture of one DiT; DiT's names (hidden_size, depth, ...), MicroDiT's extras below.

    num_classes excludes the null label (index num_classes). learn_sigma doubles the output
    channels (IDDPM's learned variance). patch_mixer_depth: MicroDiT blocks over all tokens
    before masking (0: none); masking says where `keep_indices` drop tokens: "deferred" after
    the mixer, "naive" before it, "none" never. ffn "moe" makes every `moe_every`-th block
    (not the backbone's last) an expert-choice MoE of `num_experts` experts; layerwise_scaling
    grows the backbone's attention/FFN widths with depth (docs/microdit.md (e), (f)).
    block "microdit" builds MicroDiT's own block (models/microdit_block.py), which alone allows
    a mixer of another width (patch_mixer_dim, 0: hidden_size) and a caption path with
    cross-attention (caption_channels > 0, then num_classes = 0: captions replace labels).
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
    block: Block = "dit"
    patch_mixer_dim: int = 0  # microdit only; 0: the backbone's hidden_size
    caption_channels: int = 0  # microdit only; C_cap of the caption embeddings (B, L, C_cap)

    def __post_init__(self) -> None:
        positive = ("image_size", "patch_size", "hidden_size", "depth", "num_heads")
        for key in (*positive, "in_channels", "moe_every", "num_experts"):
            if getattr(self, key) < 1:
                raise ConfigError(f"DiTConfig.{key}={getattr(self, key)}; expected an int >= 1")
        for key in ("num_classes", "patch_mixer_depth", "patch_mixer_dim", "caption_channels"):
            if getattr(self, key) < 0:
                raise ConfigError(f"DiTConfig.{key}={getattr(self, key)}; expected an int >= 0")
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
        for key, kind in (("masking", Masking), ("ffn", FFN), ("block", Block)):
            if getattr(self, key) not in get_args(kind):
                raise ConfigError(
                    f"DiTConfig.{key}={getattr(self, key)!r}; expected one of {get_args(kind)}"
                )
        self._check_block_options()

    def _check_block_options(self) -> None:
        """Mixer width and captions need MicroDiT's block; labels xor captions condition it."""
        if self.block == "dit":
            for key in ("caption_channels", "patch_mixer_dim"):
                value = getattr(self, key)
                if value and (key == "caption_channels" or value != self.hidden_size):
                    raise ConfigError(
                        f"DiTConfig.{key}={value} needs block='microdit' (DiT's block has no "
                        f"caption path and no mixer projections); got block='dit'"
                    )
        if (self.num_classes > 0) == (self.caption_channels > 0):
            raise ConfigError(
                f"DiTConfig: num_classes={self.num_classes}, caption_channels="
                f"{self.caption_channels}; expected exactly one > 0 (labels or captions)"
            )
        if self.mixer_width % self.head_dim:
            raise ConfigError(
                f"DiTConfig.patch_mixer_dim={self.patch_mixer_dim}; expected a multiple of the "
                f"head width hidden_size/num_heads={self.head_dim}"
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

    @property
    def head_dim(self) -> int:
        """h, one attention head's width; layer-wise scaling varies the head count, not h."""
        return self.hidden_size // self.num_heads

    @property
    def mixer_width(self) -> int:
        """Dm, the patch-mixer's residual width."""
        return self.patch_mixer_dim or self.hidden_size

    @property
    def frequency_dim(self) -> int:
        """Width of the sinusoidal timestep features the time MLP sees."""
        return FREQUENCY_DIMS[self.block]
