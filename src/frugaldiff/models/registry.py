"""Named model sizes and the one builder that turns a `ModelConfig` into a network.

`MODEL_SIZES` maps a size name (also the CLI's and the YAML's `model.name`) to a frozen family
config; `MODEL_FAMILIES` maps that config's type to its module class. A later DiT family
(Peebles & Xie 2023; MicroDiT, Sehwag et al. 2024) adds a `DiTConfig` → `DiT` entry there and its
sizes here, next to the U-Nets of progressive distillation (Salimans & Ho 2022) and guided
distillation (Meng et al. 2023). Sizes: guided_distillation.md (g).
"""

import dataclasses
import difflib
from collections.abc import Callable

from torch import nn

from frugaldiff.config import ModelConfig
from frugaldiff.errors import ConfigError
from frugaldiff.models.unet import UNet, UNetConfig

# Family config type → module class; each class takes its config as the only argument.
MODEL_FAMILIES: dict[type, Callable[..., nn.Module]] = {UNetConfig: UNet}

MODEL_SIZES: dict[str, UNetConfig] = {
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
}


def resolve_model_config(cfg: ModelConfig) -> UNetConfig:
    """The family config of `cfg.name` with the overrides applied (and re-validated)."""
    if cfg.name not in MODEL_SIZES:
        close = difflib.get_close_matches(cfg.name, MODEL_SIZES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"model.name={cfg.name!r}; expected one of {sorted(MODEL_SIZES)}{hint}")
    overrides = {
        key: getattr(cfg, key)
        for key in ("image_size", "num_classes", "dropout")
        if getattr(cfg, key) is not None
    }
    return dataclasses.replace(MODEL_SIZES[cfg.name], **overrides)


def build_model(cfg: ModelConfig) -> nn.Module:
    """A freshly initialised network for `cfg`; raises ConfigError on an unknown size name.

    Build it under `with torch.device("meta"):` to count parameters without allocating.
    """
    family_cfg = resolve_model_config(cfg)
    return MODEL_FAMILIES[type(family_cfg)](family_cfg)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not; works on meta-device models)."""
    return sum(p.numel() for p in model.parameters())
