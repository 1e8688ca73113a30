"""Reference statistics of a dataset split: one .npz with mu, sigma, features and provenance.

docs/evaluation.md (a): computed once per (dataset, split, N, weights sha256, resize mode,
library versions), cached with the archive md5; FID needs mu/sigma (float64), KID the features
themselves (float32 is exact: torch-fidelity's features are float32). The clean-fid cross-check
keeps its own arrays under `cleanfid_*`, never mixed with the primary ones. Features are
written batch by batch and read back memory-mapped: 10.5 GB a pipeline for ImageNet's train.
"""

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frugaldiff.data.images import check_images
from frugaldiff.errors import DataError
from frugaldiff.evaluate.features import (
    CLEANFID_RESIZE_MODE,
    EXTRACTOR_NAME,
    FEATURE_DIM,
    InceptionFeatures,
    cleanfid_feature_batches,
)
from frugaldiff.evaluate.metrics import feature_stats
from frugaldiff.evaluate.moments import FeatureMoments
from frugaldiff.io import read_npz
from frugaldiff.npz_stream import NpzStream, stream_npz
from frugaldiff.provenance import provenance

log = logging.getLogger(__name__)

PRIMARY_KEYS = ("mu", "sigma", "features", "provenance")
# Up to this many images, stats come from np.cov over all features at once (1 GiB of float64
# at the limit), bit-identical to earlier references; above it, from running moments.
IN_MEMORY_STATS_IMAGES = 2**16
CLEANFID_KEYS = ("cleanfid_mu", "cleanfid_sigma", "cleanfid_features")


@dataclass(frozen=True)
class Reference:
    """A loaded reference: mu (D,), sigma (D, D) float64; features (N, D) float32."""

    path: Path
    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray
    provenance: dict[str, Any]
    cleanfid_mu: np.ndarray | None = None
    cleanfid_sigma: np.ndarray | None = None
    cleanfid_features: np.ndarray | None = None

    @property
    def n_images(self) -> int:
        return len(self.features)

    @property
    def has_cleanfid(self) -> bool:
        return self.cleanfid_mu is not None


def _write_pass(npz: NpzStream, prefix: str, batches: Iterator[np.ndarray], count: int) -> None:
    """One pipeline's features (count, 2048) float32 and their mu, sigma, into `npz`.

    Up to IN_MEMORY_STATS_IMAGES the features are gathered and np.cov'd (feature_stats), as
    they always were; past it they are streamed to the file and the moments accumulated
    (FeatureMoments), so ImageNet-256's 1.28M images need one batch in RAM, not 21 GB.
    """
    if count <= IN_MEMORY_STATS_IMAGES:
        features = np.concatenate(list(batches))  # (N, 2048) float64
        mu, sigma = feature_stats(features)
        npz.add(f"{prefix}features", features.astype(np.float32))
    else:
        moments = FeatureMoments(FEATURE_DIM)
        with npz.rows(f"{prefix}features", (count, FEATURE_DIM), np.dtype(np.float32)) as rows:
            for batch in batches:
                moments.add(batch)
                rows.write(batch.astype(np.float32))
        mu, sigma = moments.mean_and_covariance()
    npz.add(f"{prefix}mu", mu)
    npz.add(f"{prefix}sigma", sigma)


def build_reference(
    images: np.ndarray,
    out: Path,
    *,
    dataset: str,
    split: str,
    archive_md5: str,
    cache_dir: Path,
    device: str,
    batch_size: int,
    with_cleanfid: bool = True,
) -> dict[str, Any]:
    """Features of uint8 (N, 3, H, W) `images` (memory-mapped is fine) -> `out` (.npz, atomic);
    returns the provenance. Per-image features are kept at any N: KID draws its subsets from
    them (kernel_inception_distance), and at N − 1 < 2048 they also make FID's ranges cheaper."""
    source = f"{dataset}/{split}"
    check_images(images, source)
    extractor = InceptionFeatures(cache_dir, device=device, batch_size=batch_size)
    with stream_npz(Path(out)) as npz:
        _write_pass(npz, "", extractor.feature_batches(images, source=source), len(images))
        if with_cleanfid:
            clean = cleanfid_feature_batches(images, cache_dir, device, batch_size, source=source)
            _write_pass(npz, "cleanfid_", clean, len(images))
        record = provenance(
            dataset=dataset,
            split=split,
            n_images=len(images),
            image_shape=list(images.shape[1:]),
            archive_md5=archive_md5,
            weights_sha256=extractor.weights_sha256,
            converted_weights_sha256=extractor.weights.fidelity_sha256,
            feature_extractor=EXTRACTOR_NAME,
            resize_mode=extractor.resize_mode,
            resize_mode_cleanfid=CLEANFID_RESIZE_MODE if with_cleanfid else None,
        )
        npz.add("provenance", np.array(json.dumps(record, sort_keys=True)))
    log.info("wrote reference %s (%s, %d images)", out, source, len(images))
    return record


def _check_stats(path: Path, prefix: str, arrays: dict[str, np.ndarray]) -> None:
    mu, sigma, features = (arrays[f"{prefix}{k}"] for k in ("mu", "sigma", "features"))
    dim = mu.shape[0] if mu.ndim == 1 else -1
    if sigma.shape != (dim, dim) or features.ndim != 2 or features.shape[1] != dim:
        raise DataError(
            f"{path}: inconsistent {prefix or 'primary '}arrays: mu {mu.shape}, "
            f"sigma {sigma.shape}, features {features.shape}"
        )


def load_reference(path: Path) -> Reference:
    """Read and check a reference .npz written by build_reference; errors name the file."""
    path = Path(path)
    # All arrays (read_npz(path, *keys) would drop the clean-fid ones), the features mapped:
    # at 1.28M images they are 10.5 GB per pipeline, and KID reads only its subsets.
    arrays = read_npz(path, mmap=True)
    missing = [k for k in PRIMARY_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing arrays {missing}; found {sorted(arrays)}")
    present = [k for k in CLEANFID_KEYS if k in arrays]
    if present and len(present) != len(CLEANFID_KEYS):
        raise DataError(f"{path}: partial clean-fid arrays {present}; expected {CLEANFID_KEYS}")
    try:
        record = json.loads(str(arrays["provenance"]))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: key 'provenance' is not JSON ({err})") from err
    _check_stats(path, "", arrays)
    if present:
        _check_stats(path, "cleanfid_", arrays)
    return Reference(
        path=path,
        mu=arrays["mu"],
        sigma=arrays["sigma"],
        features=arrays["features"],
        provenance=record,
        **{k: arrays[k] for k in present},
    )
