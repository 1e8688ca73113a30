"""Reference statistics of a dataset split: one .npz with mu, sigma, features and provenance.

papers/evaluation.md (a): computed once per (dataset, split, N, weights sha256, resize mode,
library versions), cached with the archive md5; FID needs mu/sigma (float64), KID the features
themselves (float32 is exact: torch-fidelity's features are float32). The clean-fid cross-check
keeps its own arrays under `cleanfid_*`, never mixed with the primary ones.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frugaldiff.data.images import check_images
from frugaldiff.errors import DataError
from frugaldiff.evaluate.features import (
    CLEANFID_RESIZE_MODE,
    EXTRACTOR_NAME,
    InceptionFeatures,
    cleanfid_features,
)
from frugaldiff.evaluate.metrics import feature_stats
from frugaldiff.io import read_npz, write_npz
from frugaldiff.provenance import provenance

log = logging.getLogger(__name__)

PRIMARY_KEYS = ("mu", "sigma", "features", "provenance")
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
    """Features of uint8 (N, 3, H, W) `images` -> `out` (.npz, atomic); returns the provenance."""
    source = f"{dataset}/{split}"
    check_images(images, source)
    extractor = InceptionFeatures(cache_dir, device=device, batch_size=batch_size)
    features = extractor.features(images, source=source)  # (N, 2048) float64
    mu, sigma = feature_stats(features)
    arrays = {"mu": mu, "sigma": sigma, "features": features.astype(np.float32)}
    if with_cleanfid:
        clean = cleanfid_features(images, cache_dir, device, batch_size, source=source)
        clean_mu, clean_sigma = feature_stats(clean)
        arrays |= {
            "cleanfid_mu": clean_mu,
            "cleanfid_sigma": clean_sigma,
            "cleanfid_features": clean.astype(np.float32),
        }
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
    write_npz(Path(out), **arrays, provenance=np.array(json.dumps(record, sort_keys=True)))
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
    arrays = read_npz(path)  # all arrays: read_npz(path, *keys) would drop the clean-fid ones
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
