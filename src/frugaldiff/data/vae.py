"""A diffusers `AutoencoderKL` as the latent codec of the paper tiers (Rombach et al. 2022).

SpeeD trains DiT-XL/2 on `sd-vae-ft-ema` latents (docs/speed.md (b)) and MicroDiT on SDXL-VAE
latents (docs/microdit.md (i)): 256² RGB -> 32×32×4. The weights come from a local folder or, when a
tier allows it, the hub; a missing or malformed folder is a DataError naming the config key and what
to put there, raised before any image is read. The model sees z' = (z - shift)·scale with both
numbers read from the VAE's own config (0.18215 for the SD VAEs), never from a literal here.
"""

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from frugaldiff.config import LatentConfig
from frugaldiff.devices import resolve_device
from frugaldiff.errors import DataError

log = logging.getLogger(__name__)

VAE_ROOT_ENV = "FRUGALDIFF_VAE_ROOT"
VAE_CLASS = "AutoencoderKL"
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


@dataclass(frozen=True)
class VAESource:
    """Where a VAE's weights are: a checked local folder, or a hub id to download."""

    location: str  # folder path or hub id
    local: bool
    revision: str | None
    origin: str  # the config key or env var that named it, for messages


def _how_to_provide(cfg: LatentConfig, target: str) -> str:
    hub_id = cfg.vae_hub_id or "<org>/<vae>"
    return (
        f"a diffusers {VAE_CLASS} folder (config.json + {WEIGHT_FILES[0]}); make one with "
        f"`hf download {hub_id} config.json {WEIGHT_FILES[0]} --local-dir {target}` "
        f"on a machine with internet, or `AutoencoderKL.from_pretrained(...).save_pretrained("
        f"'{target}')`"
    )


def check_vae_dir(path: Path, origin: str, cfg: LatentConfig) -> Path:
    """Return `path` if it holds an AutoencoderKL config and weights; else DataError."""
    fix = _how_to_provide(cfg, str(path))
    if not path.is_dir():
        raise DataError(f"{origin}={str(path)!r}: no such folder; expected {fix}")
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except FileNotFoundError as err:
        raise DataError(f"{origin}={str(path)!r}: no config.json; expected {fix}") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{config_file}: not valid JSON ({err}); expected {fix}") from err
    if not isinstance(config, dict) or config.get("_class_name") != VAE_CLASS:
        found = config.get("_class_name") if isinstance(config, dict) else type(config).__name__
        raise DataError(
            f"{config_file}: _class_name is {found!r}, expected {VAE_CLASS!r} (a diffusers VAE "
            "folder, e.g. the vae/ subfolder of a pipeline)"
        )
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise DataError(
            f"{origin}={str(path)!r}: no weights file (one of {list(WEIGHT_FILES)}); expected {fix}"
        )
    return path


def locate_vae(cfg: LatentConfig) -> VAESource:
    """data.latent.vae_path, else $FRUGALDIFF_VAE_ROOT/<vae_hub_id>, else the hub if allowed."""
    if cfg.vae_path:
        path = check_vae_dir(Path(cfg.vae_path).expanduser(), "data.latent.vae_path", cfg)
        return VAESource(str(path), True, None, "data.latent.vae_path")
    root = os.environ.get(VAE_ROOT_ENV)
    if root and cfg.vae_hub_id:
        origin = f"{VAE_ROOT_ENV}/data.latent.vae_hub_id"
        path = check_vae_dir(Path(root).expanduser() / cfg.vae_hub_id, origin, cfg)
        return VAESource(str(path), True, None, origin)
    if cfg.download and cfg.vae_hub_id:
        return VAESource(cfg.vae_hub_id, False, cfg.vae_revision, "data.latent.vae_hub_id")
    where = f"{VAE_ROOT_ENV}/{cfg.vae_hub_id}" if cfg.vae_hub_id else f"{VAE_ROOT_ENV}/<hub id>"
    raise DataError(
        "no VAE weights: set data.latent.vae_path to "
        f"{_how_to_provide(cfg, '<folder>')}, or put that folder at {where}, or set "
        "data.latent.download: true (with data.latent.vae_hub_id) where the machine has internet"
    )


def _config_sha256(config: dict[str, Any]) -> str:
    """sha256 of the architecture config; private keys (_name_or_path, versions) left out."""
    public = {k: v for k, v in config.items() if not str(k).startswith("_")}
    text = json.dumps(public, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _weights_sha256(module: torch.nn.Module) -> str:
    """sha256 over the state dict's names and float32 bytes: the same for .bin and .safetensors."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


class LatentCodec:
    """Images in [-1, 1] (B, 3, H, W) <-> the model's latents (B, C, H/f, W/f), f = 2^(levels-1)."""

    def __init__(self, vae: torch.nn.Module, source: VAESource, device: torch.device) -> None:
        self.vae = vae.eval().requires_grad_(False).to(device)
        self.device = device
        config = dict(vae.config)
        self.scaling_factor = float(config["scaling_factor"])
        self.shift_factor = float(config.get("shift_factor") or 0.0)  # None in the SD/SDXL VAEs
        self.identity = {
            "vae": source.location if not source.local else Path(source.location).name,
            "vae_location": source.location,
            "vae_revision": source.revision,
            "config_sha256": _config_sha256(config),
            "weights_sha256": _weights_sha256(vae),
            "scaling_factor": self.scaling_factor,
            "shift_factor": self.shift_factor,
        }

    @torch.no_grad()
    def posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unscaled posterior mean and std, each (B, C, h, w) float32, of images in [-1, 1]."""
        dist = self.vae.encode(images.to(self.device, torch.float32)).latent_dist
        return dist.mean.float(), dist.std.float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Model-space latents (B, C, h, w) -> images (B, 3, H, W) float32, nominally [-1, 1]."""
        z = latents.to(self.device, torch.float32) / self.scaling_factor + self.shift_factor
        return self.vae.decode(z).sample.float()


def load_codec(cfg: LatentConfig) -> LatentCodec:
    """Locate (failing before any work), load and wrap the VAE named by `cfg`."""
    source = locate_vae(cfg)
    device = resolve_device(cfg.device)
    from diffusers import AutoencoderKL  # slow import (seconds): only jobs that need a VAE pay

    try:
        vae = AutoencoderKL.from_pretrained(source.location, revision=source.revision)
    except (OSError, ValueError, RuntimeError) as err:
        raise DataError(
            f"{source.origin}={source.location!r}: could not load an {VAE_CLASS} ({err})"
        ) from err
    log.info(
        "loaded %s from %s (scaling %s)", VAE_CLASS, source.location, vae.config.scaling_factor
    )
    return LatentCodec(vae, source, device)


def pixel_decoder(
    latent: LatentConfig | None, recorded: dict[str, Any] | None, checkpoint: Path | str
) -> Callable[[torch.Tensor], torch.Tensor]:
    """What turns a sampler's x̂ (B, C, h, w) into images in [-1, 1] for this checkpoint.

    Pixel runs: the identity. Latent runs: the VAE of data.latent, which must be the one whose
    latents the checkpoint was trained on (same weights and config hashes), else DataError.
    """
    if latent is None and recorded is None:
        return _identity
    if latent is None or recorded is None:
        trained_on = "VAE latents" if recorded is not None else "pixels"
        config_says = "latents" if latent is not None else "pixels (no data.latent)"
        raise DataError(
            f"{checkpoint}: trained on {trained_on}, but its run config says {config_says}"
        )
    codec = load_codec(latent)
    for key in ("weights_sha256", "config_sha256"):
        if codec.identity[key] != recorded[key]:
            raise DataError(
                f"{checkpoint}: trained on latents of VAE {recorded['vae']!r} ({key} "
                f"{recorded[key][:12]}), but data.latent loads {codec.identity['vae']!r} "
                f"({codec.identity[key][:12]}); point data.latent at the training VAE"
            )
    return codec.decode


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x
