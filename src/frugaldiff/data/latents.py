"""Encode a prepared image split once into VAE latents, cache them, and serve training batches.

SpeeD's code encodes every batch on the fly and draws a fresh posterior sample per step; cached
latents must therefore keep the posterior's mean and std, and cover both horizontal flips
(docs/speed.md (b)). So each image is encoded twice, as is and mirrored ([I]: a VAE is not
flip-equivariant, so flipping a latent is not the latent of the flipped image), and the batch
schedule draws z = mean + std·ε from its per-iteration generator. File: mean and std
(N, 2, C, h, w) float32 (axis 1: image, mirror), labels (N,), and a JSON provenance string.
"""

import hashlib
import itertools
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from frugaldiff.config import LatentConfig
from frugaldiff.data.images import check_images, to_model_range
from frugaldiff.data.vae import LatentCodec, load_codec, locate_vae
from frugaldiff.errors import DataError
from frugaldiff.io import atomic_write, ensure_writable_dir, read_npz
from frugaldiff.npz_stream import NpzStream, stream_npz
from frugaldiff.provenance import sha256_file

log = logging.getLogger(__name__)

LATENT_FORMAT = 1
VIEWS = ("image", "hflip")  # axis 1 of mean and std


def _posterior_batches(
    codec: LatentCodec,
    images: np.ndarray,
    batch_size: int,
    progress: Callable[[Iterator[int]], Iterable[int]],
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Posterior mean and std (b, 2, C, h, w) float32 of each batch of images and mirrors."""
    for start in progress(iter(range(0, len(images), batch_size))):
        batch = np.array(images[start : start + batch_size])  # (b, 3, H, W): off the memory map
        x = to_model_range(batch)  # (b, 3, H, W) in [-1, 1]
        both = torch.cat([x, x.flip(-1)])  # (2b, 3, H, W): images, then their mirrors
        mean, std = codec.posterior(both)  # (2b, C, h, w) each
        b = len(x)
        yield (
            torch.stack([mean[:b], mean[b:]], dim=1).cpu().numpy(),  # (b, 2, C, h, w)
            torch.stack([std[:b], std[b:]], dim=1).cpu().numpy(),
        )


def encode_images(
    codec: LatentCodec,
    images: np.ndarray,
    batch_size: int,
    npz: NpzStream,
    progress: Callable[[Iterator[int]], Iterable[int]] = iter,
) -> tuple[int, int, int]:
    """Stream posterior mean and std (N, 2, C, h, w) float32 of uint8 images (N, 3, H, W) and
    their mirrors into `npz` (members `mean`, `std`); return (C, h, w).

    The mean goes straight into the file and the std through a spool beside it, so ImageNet's
    1.28M × 2 × 4 × 32² float32 posteriors (2 × 42 GB) never sit in RAM.
    """
    batches = _posterior_batches(codec, images, batch_size, progress)
    first = next(batches)
    shape = (len(images), *first[0].shape[1:])  # (N, 2, C, h, w)
    std = npz.spool("std", shape, np.dtype(np.float32))
    with npz.rows("mean", shape, np.dtype(np.float32)) as mean:
        for batch_mean, batch_std in itertools.chain([first], batches):
            mean.write(batch_mean)
            std.write(batch_std)
    c, h, w = shape[2:]
    return c, h, w


def cache_key(data_sha256: str, identity: dict[str, Any]) -> str:
    """What decides the cached latents: the source file, the VAE's weights and config, format."""
    fields = {
        "format": LATENT_FORMAT,
        "data_sha256": data_sha256,
        "vae_config_sha256": identity["config_sha256"],
        "vae_weights_sha256": identity["weights_sha256"],
        "views": VIEWS,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def read_provenance(path: Path) -> dict[str, Any]:
    """The provenance block stored inside a latents file."""
    return json.loads(str(read_npz(path, "provenance")["provenance"]))


def _publish(cached: Path, out: Path) -> None:
    """Hard-link the cache entry to `out` (a copy across file systems), atomically."""
    with atomic_write(out) as tmp:
        tmp.unlink()
        try:
            os.link(cached, tmp)
        except OSError:
            shutil.copyfile(cached, tmp)


def encode_latents(
    cfg: LatentConfig,
    data: Path,
    out: Path,
    cache_dir: Path,
    progress: Callable[[Iterator[int]], Iterable[int]] = iter,
) -> dict[str, Any]:
    """Latents of split file `data` at `out`, from `cache_dir` when an entry matches.

    Returns the provenance, with `reused` telling whether the VAE ran. A missing VAE or an
    unwritable output fails before the split is read.
    """
    ensure_writable_dir(out.parent)
    ensure_writable_dir(cache_dir)
    locate_vae(cfg)  # fail before any work
    arrays = read_npz(data, "images", "labels", mmap=True)
    images = check_images(arrays["images"], data)
    codec = load_codec(cfg)
    data_sha256 = sha256_file(data)
    cached = cache_dir / f"{cache_key(data_sha256, codec.identity)}.npz"
    reused = cached.is_file()
    if reused:
        prov = read_provenance(cached)
        log.info("reusing cached latents %s", cached)
    else:
        with stream_npz(cached) as npz:
            latent_shape = encode_images(codec, images, cfg.encode_batch_size, npz, progress)
            prov = {
                "format": LATENT_FORMAT,
                "views": list(VIEWS),
                **codec.identity,
                "latent_shape": list(latent_shape),
                "image_shape": list(images.shape[1:]),
                "num_images": len(images),
                "source_data": str(data),
                "source_data_sha256": data_sha256,
            }
            npz.add("labels", arrays["labels"].astype(np.int64))
            npz.add("provenance", np.array(json.dumps(prov, sort_keys=True)))
    _publish(cached, out)
    return {**prov, "reused": reused, "cache_file": str(cached)}


@dataclass(frozen=True)
class LatentDataset:
    """Cached posterior mean/std (N, 2, C, h, w) float32, memory-mapped, and labels (N,).

    A batch gathers its rows by fancy indexing, which copies them off the map (`examples`).
    """

    mean: np.ndarray
    std: np.ndarray
    labels: np.ndarray
    provenance: dict[str, Any]

    @classmethod
    def load(cls, path: Path | str) -> "LatentDataset":
        arrays = read_npz(path, "mean", "std", "labels", "provenance", mmap=True)
        mean, std = arrays["mean"], arrays["std"]
        prov = json.loads(str(arrays["provenance"]))
        if prov.get("format") != LATENT_FORMAT:
            raise DataError(
                f"{path}: latents format {prov.get('format')}, expected {LATENT_FORMAT}"
            )
        if mean.ndim != 5 or mean.shape[1] != len(VIEWS) or std.shape != mean.shape:
            raise DataError(
                f"{path}: mean/std must both be (N, {len(VIEWS)}, C, h, w), got "
                f"{mean.shape} and {std.shape}"
            )
        labels = arrays["labels"].astype(np.int64)
        if labels.shape != (len(mean),):
            raise DataError(f"{path}: labels shape {labels.shape}, expected ({len(mean)},)")
        return cls(mean=mean, std=std, labels=labels, provenance=prov)

    def __len__(self) -> int:
        return len(self.mean)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of one model input."""
        c, h, w = self.mean.shape[2:]
        return int(c), int(h), int(w)

    @property
    def codec_identity(self) -> dict[str, Any]:
        """The VAE facts a checkpoint records, so sampling decodes with the same VAE."""
        keys = ("vae", "config_sha256", "weights_sha256", "scaling_factor", "shift_factor")
        return {k: self.provenance[k] for k in keys}

    def examples(
        self, idx: np.ndarray, flip: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Scaled posterior samples (B, C, h, w) of images `idx`, mirrored where `flip` (B,)."""
        view = flip.long().numpy()  # (B,) 0 image, 1 mirror
        mean = torch.from_numpy(self.mean[idx, view])  # (B, C, h, w)
        std = torch.from_numpy(self.std[idx, view])
        noise = torch.randn(mean.shape, generator=generator)  # (B, C, h, w)
        z = mean + std * noise
        return (z - self.provenance["shift_factor"]) * self.provenance["scaling_factor"]
