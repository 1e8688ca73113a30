"""Reference statistics round trip and evaluate_samples on real CIFAR-10 mini images.

Recorded subset: test[:10] of the mini archive is the reference and, evaluated against
itself, the sample set (so FID is 0 for both pipelines); 40 Inception passes in all.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from frugaldiff.errors import DataError
from frugaldiff.evaluate.features import CLEANFID_RESIZE_MODE, EXTRACTOR_NAME, RESIZE_MODE
from frugaldiff.evaluate.metrics import INCEPTION_SCORE_NOTE, evaluate_samples, feature_stats
from frugaldiff.evaluate.reference import build_reference, load_reference
from frugaldiff.evaluate.weights import SOURCE_WEIGHTS_SHA256
from frugaldiff.io import read_npz, write_npz

from .conftest import MINI_ARCHIVE_MD5

REFERENCE_SUBSET = slice(0, 10)


@pytest.fixture(scope="module")
def reference(
    mini_splits: dict[str, np.ndarray],
    inception_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("reference") / "cifar10-mini-test10.npz"
    record = build_reference(
        mini_splits["test"][REFERENCE_SUBSET],
        out,
        dataset="cifar10-mini",
        split="test",
        archive_md5=MINI_ARCHIVE_MD5,
        cache_dir=inception_cache,
        device="cpu",
        batch_size=16,
    )
    return out, record


def test_build_reference_round_trip(reference: tuple[Path, dict]) -> None:
    path, record = reference
    ref = load_reference(path)
    assert ref.provenance == record
    assert record["dataset"] == "cifar10-mini"
    assert record["split"] == "test"
    assert record["n_images"] == ref.n_images == 10
    assert record["archive_md5"] == MINI_ARCHIVE_MD5
    assert record["weights_sha256"] == SOURCE_WEIGHTS_SHA256
    assert record["resize_mode"] == RESIZE_MODE
    assert record["resize_mode_cleanfid"] == CLEANFID_RESIZE_MODE
    assert record["feature_extractor"] == EXTRACTOR_NAME
    assert record["packages"]["torch-fidelity"] == "0.4.0"
    assert ref.mu.dtype == ref.sigma.dtype == np.float64
    assert ref.features.dtype == np.float32
    assert ref.features.shape == (10, 2048)
    mu, sigma = feature_stats(ref.features)  # float32 features are exact: stats reproduce
    np.testing.assert_array_equal(mu, ref.mu)
    np.testing.assert_array_equal(sigma, ref.sigma)
    assert ref.has_cleanfid
    assert ref.cleanfid_features is not None
    assert ref.cleanfid_features.shape == (10, 2048)
    assert np.abs(ref.cleanfid_features - ref.features).max() > 0.1  # different resizes


def test_evaluate_samples_against_own_reference(
    mini_splits: dict[str, np.ndarray], reference: tuple[Path, dict], inception_cache: Path
) -> None:
    path, record = reference
    result = evaluate_samples(
        mini_splits["test"][REFERENCE_SUBSET], path, cache_dir=inception_cache, kid_subsets=5
    )
    assert abs(result["fid"]) < 1e-6
    assert abs(result["fid_cleanfid"]) < 1e-6
    assert result["kid_subset_size"] == 10  # lowered from 1000 to the smaller set
    assert np.isfinite(result["kid_mean"])
    assert result["kid_std"] >= 0
    assert result["inception_score"] is None
    assert result["inception_score_note"] == INCEPTION_SCORE_NOTE
    assert result["n_images"] == result["n_reference"] == 10
    assert result["weights_sha256"] == SOURCE_WEIGHTS_SHA256
    assert result["resize_mode"] == RESIZE_MODE
    assert result["resize_mode_cleanfid"] == CLEANFID_RESIZE_MODE
    assert result["reference"] == str(path)
    assert result["reference_provenance"] == record
    json.dumps(result)  # the CLI writes it as JSON


@pytest.mark.parametrize(
    ("samples", "problem"),
    [
        (np.zeros((4, 3, 32, 32), dtype=np.float32), "images must be uint8"),
        (np.zeros((4, 32, 32, 3), dtype=np.uint8), r"images must have shape \(N, 3, H, W\)"),
        (np.zeros((0, 3, 32, 32), dtype=np.uint8), "images must have shape"),
        (np.zeros((1, 3, 32, 32), dtype=np.uint8), "needs at least 2 images"),
    ],
)
def test_evaluate_samples_rejects_bad_samples(
    samples: np.ndarray, problem: str, tmp_path: Path
) -> None:
    # The reference does not exist: the samples must be refused first, naming their file.
    with pytest.raises(DataError, match=rf"samples-w1\.npz: .*{problem}"):
        evaluate_samples(
            samples, tmp_path / "missing.npz", cache_dir=tmp_path, source="samples-w1.npz"
        )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("weights_sha256", "0" * 64),
        ("resize_mode", "clean-fid-pil-bicubic"),
        ("resize_mode_cleanfid", None),
    ],
)
def test_evaluate_samples_refuses_mismatched_reference(
    mini_splits: dict[str, np.ndarray],
    reference: tuple[Path, dict],
    inception_cache: Path,
    tmp_path: Path,
    key: str,
    value: str | None,
) -> None:
    path, record = reference
    arrays = read_npz(path)
    arrays["provenance"] = np.array(json.dumps(record | {key: value}))
    write_npz(tmp_path / "other.npz", **arrays)
    with pytest.raises(DataError, match=rf"other\.npz: provenance {key}="):
        evaluate_samples(mini_splits["test"][:2], tmp_path / "other.npz", cache_dir=inception_cache)


def test_load_reference_names_file_and_key(tmp_path: Path) -> None:
    write_npz(tmp_path / "ref.npz", mu=np.zeros(4), sigma=np.eye(4))
    with pytest.raises(DataError, match=r"ref\.npz: missing arrays \['features', 'provenance'\]"):
        load_reference(tmp_path / "ref.npz")
    write_npz(
        tmp_path / "bad.npz",
        mu=np.zeros(4),
        sigma=np.eye(3),
        features=np.zeros((2, 4)),
        provenance=np.array("{}"),
    )
    with pytest.raises(DataError, match=r"bad\.npz: inconsistent primary arrays"):
        load_reference(tmp_path / "bad.npz")


def test_data_floor_measures_the_first_n_real_images(
    mini_splits: dict[str, np.ndarray],
    reference: tuple[Path, dict],
    inception_cache: Path,
    tmp_path: Path,
) -> None:
    """The floor of test[:10] against the statistics of test[:10] itself is FID 0; N is checked."""
    from frugaldiff.config import EvaluationConfig
    from frugaldiff.evaluate.pipeline import data_floor

    path, _ = reference
    split = tmp_path / "test.npz"
    write_npz(split, images=mini_splits["test"][:12], labels=np.zeros(12, dtype=np.int64))
    cfg = EvaluationConfig(sample_images=10, kid_subsets=5, cleanfid=False, device="cpu")
    record = data_floor(cfg, split, path, tmp_path / "floor.json", inception_cache)
    assert json.loads((tmp_path / "floor.json").read_text()) == record
    assert (record["split"], record["n_images"], record["n_reference"]) == ("test", 10, 10)
    assert abs(record["metrics"]["fid"]) < 1e-6
    with pytest.raises(DataError, match=r"sample_images=13 but the floor's split .*holds 12"):
        data_floor(
            EvaluationConfig(sample_images=13), split, path, tmp_path / "x.json", inception_cache
        )
