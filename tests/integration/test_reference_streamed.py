"""A reference too large for np.cov: streamed features and running moments, read memory-mapped.

IN_MEMORY_STATS_IMAGES is lowered to 4, so 6 CIFAR-10 mini test images (batches of 4) take
the path ImageNet-256's 1.28M train images take; 12 Inception passes in all.
"""

from pathlib import Path

import numpy as np
import pytest

from frugaldiff.config import EvaluationConfig
from frugaldiff.evaluate import reference as reference_module
from frugaldiff.evaluate.pipeline import reference_from_dataset
from frugaldiff.evaluate.reference import build_reference, load_reference
from frugaldiff.io import write_json, write_npz

from .conftest import MINI_ARCHIVE_MD5


def build(images: np.ndarray, out: Path, cache: Path) -> dict:
    return build_reference(
        images,
        out,
        dataset="cifar10-mini",
        split="test",
        archive_md5=MINI_ARCHIVE_MD5,
        cache_dir=cache,
        device="cpu",
        batch_size=4,
        with_cleanfid=False,
    )


def test_streamed_reference_equals_the_in_memory_one(
    mini_splits: dict[str, np.ndarray],
    inception_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    images = mini_splits["test"][:6]
    build(images, tmp_path / "in_memory.npz", inception_cache)
    monkeypatch.setattr(reference_module, "IN_MEMORY_STATS_IMAGES", 4)
    data, meta = tmp_path / "test.npz", tmp_path / "meta.json"
    write_npz(data, images=images, labels=np.zeros(6, dtype=np.int64))
    write_json(meta, {"dataset": "cifar10-mini", "archive_md5": MINI_ARCHIVE_MD5})
    cfg = EvaluationConfig(feature_batch_size=4, cleanfid=False, device="cpu")
    record = reference_from_dataset(cfg, data, meta, tmp_path / "streamed.npz", inception_cache)
    full, streamed = (load_reference(tmp_path / f"{k}.npz") for k in ("in_memory", "streamed"))
    assert record["n_images"] == streamed.n_images == 6
    assert isinstance(streamed.features, np.memmap)  # loaded mapped, not read
    np.testing.assert_array_equal(streamed.features, full.features)  # same float32 rows
    np.testing.assert_allclose(streamed.mu, full.mu, rtol=1e-12)
    np.testing.assert_allclose(streamed.sigma, full.sigma, atol=1e-12 * np.abs(full.sigma).max())
    assert not streamed.has_cleanfid
