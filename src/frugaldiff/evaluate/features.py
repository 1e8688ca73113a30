"""Inception pool3 features (2048-d) for FID/KID, through torch-fidelity and clean-fid, offline.

docs/evaluation.md (a)/(b)3/(b)4: the primary pipeline is torch-fidelity's
`inception-v3-compat` (TF1-exact bilinear resize inside the model) with the converted 2015-12-05
weights, registered under its own name so torch-fidelity's caches never mix it with the stock
download; the cross-check is clean-fid's mode "clean" (PIL bicubic on float32). Float32 only.
"""

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from frugaldiff.data.images import check_images
from frugaldiff.errors import ConfigError, DataError, NumericsError
from frugaldiff.evaluate.weights import (
    SOURCE_WEIGHTS_SHA256,
    ConvertedWeights,
    ensure_converted,
    locate_inception_weights,
)

__all__ = [
    "CLEANFID_RESIZE_MODE",
    "EXTRACTOR_NAME",
    "RESIZE_MODE",
    "SOURCE_WEIGHTS_SHA256",
    "ImageArrayDataset",
    "InceptionFeatures",
    "OfflineInceptionV3",
    "cleanfid_feature_batches",
    "cleanfid_features",
    "locate_inception_weights",
    "register_offline_extractor",
]

log = logging.getLogger(__name__)

EXTRACTOR_NAME = "inception-v3-fid2015-offline"
FEATURE_LAYER = "2048"  # torch-fidelity names each layer by its width
FEATURE_DIM = int(FEATURE_LAYER)
RESIZE_MODE = "torch-fidelity-tf1-bilinear"
CLEANFID_RESIZE_MODE = "clean-fid-pil-bicubic"
LOG_EVERY_SECONDS = 30.0


class OfflineInceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's Inception with the converted offline weights fixed and no logits.

    torch-fidelity builds extractors as `cls(name, features_list, **calculate_metrics_kwargs)`,
    hence the **kwargs. Leaving the logits out of the provided features makes `isc=True` fail
    before any image is processed (b)3.
    """

    weights_path: ClassVar[Path | None] = None  # set by register_offline_extractor

    def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
        fixed = type(self).weights_path
        if fixed is None:
            raise DataError(f"{name}: no converted weights; call register_offline_extractor first")
        given = kwargs.pop("feature_extractor_weights_path", None)
        if given is not None and Path(given) != fixed:
            raise ConfigError(
                f"{name}: feature_extractor_weights_path is fixed to {fixed}, got {given}"
            )
        super().__init__(name, features_list, feature_extractor_weights_path=str(fixed), **kwargs)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("64", "192", "768", "2048")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        if metric == "isc":
            raise ConfigError(
                f"{EXTRACTOR_NAME}: Inception Score is n/a (no logits weights); "
                "docs/evaluation.md (a)"
            )
        return FeatureExtractorInceptionV3.get_default_feature_layer_for_metric(metric)


def register_offline_extractor(weights: ConvertedWeights) -> str:
    """Register OfflineInceptionV3 with torch-fidelity (once) and point it at `weights`.

    Every cache dir holds byte-identical converted files (deterministic conversion, sha256
    checked against the sidecar), so re-pointing the class at another cache changes nothing.
    """
    OfflineInceptionV3.weights_path = weights.fidelity_path
    if EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(EXTRACTOR_NAME, OfflineInceptionV3)
    return EXTRACTOR_NAME


class ImageArrayDataset(Dataset):
    """uint8 (N, 3, H, W) numpy images as the torch Dataset torch-fidelity's `input1/2` take."""

    def __init__(self, images: np.ndarray, source: Path | str = "images") -> None:
        self.images = check_images(images, source)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.images[i].copy())  # (3, H, W) uint8


@contextlib.contextmanager
def strict_float32() -> Iterator[None]:
    """Disable TF32 in convolutions and matmuls on GPU for the block (docs/evaluation.md (e))."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _feature_batches(
    images: np.ndarray,
    batch_size: int,
    extract: Callable[[np.ndarray], torch.Tensor],
    what: str,
) -> Iterator[np.ndarray]:
    """Run `extract` (uint8 (B, 3, H, W) numpy -> (B, 2048) tensor) over batches, logging rate;
    yield float64 (B, 2048), so a 1.28M-image split needs one batch in memory, not 21 GB."""
    start_time = last_log = time.perf_counter()
    for start in range(0, len(images), batch_size):
        batch = np.array(images[start : start + batch_size])  # (B, 3, H, W), off a memory map
        features = extract(batch).double().cpu().numpy()  # (B, 2048)
        if not np.isfinite(features).all():
            raise NumericsError(f"{what}: non-finite Inception features")
        yield features
        now = time.perf_counter()
        if now - last_log >= LOG_EVERY_SECONDS:
            done, rate = start + len(batch), (start + len(batch)) / (now - start_time)
            log.info(
                "%s: %d/%d images, %.1f images/s, ETA %.0f s",
                what,
                done,
                len(images),
                rate,
                (len(images) - done) / rate,
            )
            last_log = now


def _collect(batches: Iterator[np.ndarray], count: int) -> np.ndarray:
    """Feature batches (B, 2048) as one float64 (count, 2048) array."""
    out = np.empty((count, FEATURE_DIM), dtype=np.float64)  # (N, 2048)
    start = 0
    for features in batches:
        out[start : start + len(features)] = features
        start += len(features)
    return out


class InceptionFeatures:
    """2048-d pool3 features via the registered torch-fidelity extractor (TF1 bilinear resize).

    Speed-up: the network runs channels_last (oneDNN's NHWC kernels: 11.0 vs 7.9 images/s on 2
    CPU cores at batch 16); features stay within 1e-4 max-abs of torch-fidelity's plain
    contiguous path (measured 6e-6), which a test checks.
    """

    resize_mode = RESIZE_MODE

    def __init__(
        self,
        cache_dir: Path,
        device: str = "cpu",
        batch_size: int = 16,
        weights_path: Path | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"InceptionFeatures: batch_size must be >= 1, got {batch_size}")
        self.weights = ensure_converted(Path(cache_dir), weights_path)
        self.weights_sha256 = self.weights.source_sha256
        self.device = torch.device(device)
        self.batch_size = batch_size
        name = register_offline_extractor(self.weights)
        extractor = FEATURE_EXTRACTORS_REGISTRY[name](name, [FEATURE_LAYER], verbose=False)
        self.extractor = extractor.to(self.device, memory_format=torch.channels_last).eval()

    def _extract(self, batch: np.ndarray) -> torch.Tensor:
        (features,) = self.extractor(torch.tensor(batch, device=self.device))  # (B, 2048) f32
        return features

    def features(self, images: np.ndarray, source: Path | str = "images") -> np.ndarray:
        """uint8 (N, 3, H, W) RGB in 0..255 -> float64 (N, 2048); errors name `source`."""
        return _collect(self.feature_batches(images, source), len(images))

    def feature_batches(
        self, images: np.ndarray, source: Path | str = "images"
    ) -> Iterator[np.ndarray]:
        """`features` batch by batch, float64 (B, 2048) each (inference mode and strict float32
        stay on while the caller holds the generator)."""
        check_images(images, source)
        with torch.inference_mode(), strict_float32():
            yield from _feature_batches(images, self.batch_size, self._extract, str(source))


def _cleanfid_extractor(
    cache_dir: Path, device: str, weights_path: Path | None
) -> Callable[[np.ndarray], torch.Tensor]:
    """clean-fid's mode "clean" on our saved TorchScript: uint8 (B, 3, H, W) -> (B, 2048)."""
    from cleanfid.fid import get_batch_features  # lazy: clean-fid is only the cross-check
    from cleanfid.inception_torchscript import InceptionV3W
    from cleanfid.resize import build_resizer

    weights = ensure_converted(Path(cache_dir), weights_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
        model = InceptionV3W(str(weights.cleanfid_dir), download=False).to(device).eval()
    resize = build_resizer("clean")

    def extract(batch: np.ndarray) -> torch.Tensor:
        resized = np.stack([resize(image.transpose(1, 2, 0)) for image in batch])  # (B,299,299,3)
        batch_t = torch.from_numpy(resized.transpose(0, 3, 1, 2).copy())  # (B, 3, 299, 299)
        return torch.from_numpy(get_batch_features(batch_t, model, torch.device(device)))

    return extract


def cleanfid_features(
    images: np.ndarray,
    cache_dir: Path,
    device: str = "cpu",
    batch_size: int = 16,
    weights_path: Path | None = None,
    source: Path | str = "images",
) -> np.ndarray:
    """uint8 (N, 3, H, W) -> float64 (N, 2048) through clean-fid, mode "clean" (b)4.

    Uses clean-fid's own resize (`build_resizer("clean")`: PIL bicubic per channel on float32,
    no re-quantization) and its InceptionV3W on our saved TorchScript, in memory: no temp
    folders, no download (`download=False`).
    """
    batches = cleanfid_feature_batches(images, cache_dir, device, batch_size, weights_path, source)
    return _collect(batches, len(images))


def cleanfid_feature_batches(
    images: np.ndarray,
    cache_dir: Path,
    device: str = "cpu",
    batch_size: int = 16,
    weights_path: Path | None = None,
    source: Path | str = "images",
) -> Iterator[np.ndarray]:
    """`cleanfid_features` batch by batch, float64 (B, 2048) each."""
    check_images(images, source)
    if batch_size < 1:
        raise ConfigError(f"cleanfid_features: batch_size must be >= 1, got {batch_size}")
    extract = _cleanfid_extractor(cache_dir, device, weights_path)
    with strict_float32():
        yield from _feature_batches(images, batch_size, extract, f"{source} (clean-fid)")
