"""Named model sizes and the one builder that turns a `ModelConfig` into a network.

`MODEL_SIZES` maps a size name (also the CLI's and the YAML's `model.name`) to a frozen family
config; `MODEL_FAMILIES` maps that config's type to its module class. The U-Nets of progressive
distillation (Salimans & Ho 2022) and guided distillation (Meng et al. 2023; sizes:
docs/guided_distillation.md (g)) sit beside DiTs (Peebles & Xie 2023; sizes: docs/speed.md (g)) and
their MicroDiT variants (Sehwag et al. 2024; docs/microdit.md (h), (i)).
"""

import dataclasses
import difflib
import logging
from collections.abc import Callable

from torch import nn

from frugaldiff.config import ModelConfig
from frugaldiff.errors import ConfigError
from frugaldiff.models.dit import DiT
from frugaldiff.models.dit_config import DiTConfig
from frugaldiff.models.unet import UNet, UNetConfig

log = logging.getLogger(__name__)

FamilyConfig = UNetConfig | DiTConfig

# Family config type → module class; each class takes its config as the only argument.
MODEL_FAMILIES: dict[type, Callable[..., nn.Module]] = {UNetConfig: UNet, DiTConfig: DiT}


def _latent_dit(hidden_size: int, depth: int, num_heads: int) -> DiTConfig:
    """A DiT-x/2 of the paper: 32×32×4 SD-VAE latents (256² images), patch 2, ImageNet classes."""
    return DiTConfig(
        image_size=32,
        in_channels=4,
        patch_size=2,
        hidden_size=hidden_size,
        depth=depth,
        num_heads=num_heads,
        num_classes=1000,
    )


def _official_microdit(
    hidden_size: int, depth: int, *, head_dim: int, mixer: tuple[int, int]
) -> DiTConfig:
    """An official text-to-image MicroDiT (`MicroDiT_*_2` of micro_diffusion/models/dit.py).

    MicroDiT's block, captions of DFN CLIP-H width 1024 instead of labels, EC-MoE (E 8, f 2,
    every other block), layer-wise scaling, a (depth, width) patch-mixer, deferred masking.
    """
    return DiTConfig(
        image_size=32,
        in_channels=4,
        patch_size=2,
        hidden_size=hidden_size,
        depth=depth,
        num_heads=hidden_size // head_dim,
        num_classes=0,
        caption_channels=1024,
        block="microdit",
        patch_mixer_depth=mixer[0],
        patch_mixer_dim=mixer[1],
        masking="deferred",
        ffn="moe",
        num_experts=8,
        capacity_factor=2.0,
        moe_every=2,
        layerwise_scaling=True,
    )


# CIFAR-10 pixel DiTs: docs/speed.md (g) (smoke: depth 2, width 64, patch 4; cifar10: DiT-S/2) and
# docs/microdit.md (i) (the same backbones; deferred adds a mixer of 1×64 / 2×384, naive none).
_DIT_SMOKE = DiTConfig(
    image_size=32, patch_size=4, hidden_size=64, depth=2, num_heads=2, num_classes=10
)
# cpu tier (2 CPU cores, minutes per run) on 16×16 CIFAR-10: patch 2 -> 64 tokens, width 128,
# depth 4 (1.3M parameters, ~270 training images/s at batch 64 on 2 cores; README, cpu tier).
_DIT_CPU = DiTConfig(
    image_size=16, patch_size=2, hidden_size=128, depth=4, num_heads=4, num_classes=10
)
_DIT_CIFAR10 = DiTConfig(
    image_size=32, patch_size=2, hidden_size=384, depth=12, num_heads=6, num_classes=10
)

MODEL_SIZES: dict[str, FamilyConfig] = {
    # Unit tests: 8×8 RGB, every code path (down, up, attention at 4 and in the middle).
    "unet-tiny": UNetConfig(
        image_size=8,
        base_channels=4,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(4,),
        num_classes=10,
        num_groups=2,
    ),
    # Smoke tier (CPU, minutes): 32 / [1, 2] / 1 / none on 32×32 CIFAR-10.
    "unet-smoke": UNetConfig(
        image_size=32,
        base_channels=32,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(),
        num_classes=10,
        num_groups=8,
    ),
    # cifar10 tier (1 GPU, hours): 128 / [1, 2, 2] / 2 / 16, DDPM++-class; teacher dropout 0.1.
    "unet-cifar10": UNetConfig(
        image_size=32,
        base_channels=128,
        channel_mult=(1, 2, 2),
        num_res_blocks=2,
        attention_resolutions=(16,),
        num_classes=10,
        dropout=0.1,
        num_groups=32,
    ),
    # Unit tests: 8×8 RGB, patch 2 (16 tokens), two blocks of width 32.
    "dit-tiny": DiTConfig(
        image_size=8, patch_size=2, hidden_size=32, depth=2, num_heads=2, num_classes=10
    ),
    "dit-smoke": _DIT_SMOKE,
    "microdit-smoke": dataclasses.replace(_DIT_SMOKE, patch_mixer_depth=1, masking="deferred"),
    "microdit-smoke-naive": dataclasses.replace(_DIT_SMOKE, masking="naive"),
    "dit-cpu": _DIT_CPU,
    "microdit-cpu": dataclasses.replace(_DIT_CPU, patch_mixer_depth=1, masking="deferred"),
    "microdit-cpu-naive": dataclasses.replace(_DIT_CPU, masking="naive"),
    # cpu tier's U-Net (distillation) on 16×16: 32 / [1, 2] / 1 / none (~0.45 s per step of 64
    # on one core).
    "unet-cpu": UNetConfig(
        image_size=16,
        base_channels=32,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(),
        num_classes=10,
        num_groups=8,
    ),
    "dit-cifar10": _DIT_CIFAR10,
    "microdit-cifar10": dataclasses.replace(_DIT_CIFAR10, patch_mixer_depth=2, masking="deferred"),
    "microdit-cifar10-naive": dataclasses.replace(_DIT_CIFAR10, masking="naive"),
    # Peebles & Xie 2023, Table 1: width / depth / heads.
    "DiT-S/2": _latent_dit(384, 12, 6),
    "DiT-B/2": _latent_dit(768, 12, 12),
    "DiT-L/2": _latent_dit(1024, 24, 16),
    "DiT-XL/2": _latent_dit(1152, 28, 16),
    # MicroDiT paper tier (docs/microdit.md (h), (i)): MicroDiT_Tiny_2's shape (D 512, L 16, head
    # width 32 -> 16 heads) with its 4×512 patch-mixer, class-conditional on 4×32² latents.
    # DiT's block unless a run sets model.block: microdit (the paper tier does); no MoE or
    # layer-wise scaling unless a run sets them. Naive masking has no mixer ((c)).
    "MicroDiT-Tiny/2": dataclasses.replace(
        _latent_dit(512, 16, 16), patch_mixer_depth=4, masking="deferred"
    ),
    "MicroDiT-Tiny/2-naive": dataclasses.replace(_latent_dit(512, 16, 16), masking="naive"),
    # The official text-to-image MicroDiT_Tiny_2 / MicroDiT_XL_2 (docs/microdit.md (h)): 200.7 M
    # and 1.16 B parameters, every expert counted (models/param_count.py agrees).
    "MicroDiT-Tiny/2-t2i": _official_microdit(512, 16, head_dim=32, mixer=(4, 512)),
    "MicroDiT-XL/2-t2i": _official_microdit(1024, 28, head_dim=64, mixer=(6, 768)),
    # Progressive distillation's U-Nets (docs/guided_distillation.md (g)) with a class embedding,
    # for the distill paper tier. CIFAR-10: 256 / [1,1,1] / 3 / 8,16, 1 head, dropout 0.2.
    "unet-pd-cifar10": UNetConfig(
        image_size=32,
        base_channels=256,
        channel_mult=(1, 1, 1),
        num_res_blocks=3,
        attention_resolutions=(8, 16),
        num_classes=10,
        dropout=0.2,
        num_groups=32,
        num_heads=1,
    ),
    # ImageNet 64²: 192 / [1,2,3,4] / 3 / 8,16,32, dropout 0.1. Deviation: PD uses head width 64
    # (6, 9, 12 heads at 384, 576, 768 channels); our U-Net has one head count: 6 everywhere.
    "unet-pd-imagenet64": UNetConfig(
        image_size=64,
        base_channels=192,
        channel_mult=(1, 2, 3, 4),
        num_res_blocks=3,
        attention_resolutions=(8, 16, 32),
        num_classes=1000,
        dropout=0.1,
        num_groups=32,
        num_heads=6,
    ),
}


def _dit_switches(cfg: ModelConfig, family: FamilyConfig) -> dict[str, object]:
    """DiTConfig fields set by the run's `moe`, `layerwise_scaling` and `block`
    (docs/microdit.md (b), (e), (f))."""
    keys = ("moe", "layerwise_scaling", "block")
    set_keys = [key for key in keys if getattr(cfg, key) is not None]
    if not set_keys:
        return {}
    if not isinstance(family, DiTConfig):
        raise ConfigError(
            f"model.{set_keys[0]} is set, but model.name={cfg.name!r} is a "
            f"{type(family).__name__}; MoE, layer-wise scaling and the block kind apply to DiT "
            "sizes only"
        )
    switches: dict[str, object] = {}
    if cfg.layerwise_scaling is not None:
        switches["layerwise_scaling"] = cfg.layerwise_scaling
    if cfg.block is not None:
        switches["block"] = cfg.block  # DiTConfig checks it is dit or microdit
    if cfg.moe is not None:
        switches["ffn"] = "moe"
        # model.moe's keys → DiTConfig's fields; None keeps the size's value.
        names = {"num_experts": "num_experts", "capacity_factor": "capacity_factor"}
        names["every"] = "moe_every"
        for key, field_name in names.items():
            if getattr(cfg.moe, key) is not None:
                switches[field_name] = getattr(cfg.moe, key)
    return switches


def resolve_model_config(cfg: ModelConfig, learn_sigma: bool = False) -> FamilyConfig:
    """The family config of `cfg.name` with the overrides applied (and re-validated).

    `learn_sigma` is the run's diffusion.learn_sigma: the network then outputs 2C channels
    (IDDPM's learned variance), the last C its variance interpolation.
    """
    if cfg.name not in MODEL_SIZES:
        close = difflib.get_close_matches(cfg.name, MODEL_SIZES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"model.name={cfg.name!r}; expected one of {sorted(MODEL_SIZES)}{hint}")
    family = MODEL_SIZES[cfg.name]
    overrides = {
        key: getattr(cfg, key)
        for key in ("image_size", "in_channels", "num_classes", "dropout")
        if getattr(cfg, key) is not None
    }
    if learn_sigma:
        overrides["learn_sigma"] = True  # both families have a 2C-channel head
    return dataclasses.replace(family, **overrides, **_dit_switches(cfg, family))


def fit_to_data(cfg: ModelConfig, sample_shape: tuple[int, int, int], source: str) -> ModelConfig:
    """`cfg` with in_channels and image_size of the training data (C, H, W), H == W.

    The data decide: a named size trained on other inputs (DiT-XL/2's 4×32×32 on a tiny test
    VAE's latents) is adapted and logged; an explicit override that disagrees is a ConfigError.
    """
    channels, height, width = sample_shape
    if height != width:
        raise ConfigError(f"{source}: inputs are {height}x{width}; the models expect square ones")
    family = resolve_model_config(cfg)
    for key, value in (("in_channels", channels), ("image_size", height)):
        explicit = getattr(cfg, key)
        if explicit is not None and explicit != value:
            raise ConfigError(
                f"model.{key}={explicit}, but {source} holds inputs with {key}={value}; "
                f"remove the override or use other data"
            )
    if (family.in_channels, family.image_size) == (channels, height):
        return cfg
    log.warning(
        "model %s: in_channels/image_size %s/%s adapted to the data's %s/%s",
        cfg.name,
        family.in_channels,
        family.image_size,
        channels,
        height,
    )
    return dataclasses.replace(cfg, in_channels=channels, image_size=height)


def build_model(cfg: ModelConfig, learn_sigma: bool = False) -> nn.Module:
    """A freshly initialised network for `cfg`; raises ConfigError on an unknown size name.

    `learn_sigma`: the run's diffusion.learn_sigma (2C output channels). Build it
    under `with torch.device("meta"):` to count parameters without allocating.
    """
    family_cfg = resolve_model_config(cfg, learn_sigma)
    return MODEL_FAMILIES[type(family_cfg)](family_cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not; works on meta-device models)."""
    return sum(p.numel() for p in model.parameters())


MASKING_VARIANTS = ("unmasked", "naive", "deferred")


def masking_mode(model_name: str, mask_ratio: float, init_from: str | None) -> str:
    """What a run's masking is, from its model and diffusion config, never from a free label.

    "unmasked": a run from scratch that drops no token; "naive" / "deferred": the model's
    masking (deferred = behind the patch-mixer, docs/microdit.md (b)), also for its unmasked
    fine-tuning (mask_ratio 0, init_from the masked run); "none" for models without masking.
    """
    family = MODEL_SIZES.get(model_name)
    mode = getattr(family, "masking", "none")
    if mask_ratio == 0 and init_from is None and mode != "none":
        return "unmasked"
    return mode
