"""Statistics that never hold a whole reference: running moments = np.cov, KID = torch-fidelity."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_fidelity.metric_kid import (
    KEY_METRIC_KID_MEAN,
    KEY_METRIC_KID_STD,
    kid_features_to_metric,
)

from frugaldiff.errors import DataError, NumericsError
from frugaldiff.evaluate.metrics import feature_stats, frechet_distance, kernel_inception_distance
from frugaldiff.evaluate.moments import FeatureMoments
from frugaldiff.io import read_npz, write_npz


def features(rng: np.random.Generator, n: int, dim: int, offset: float = 0.0) -> np.ndarray:
    mixing = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    return np.abs(rng.standard_normal((n, dim)) @ mixing) + offset  # (N, D), Inception-like >= 0


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_running_moments_equal_np_cov_in_any_batching(offset: float) -> None:
    # A large common offset is where the raw Σxxᵀ − nμμᵀ formula loses every digit.
    x = features(np.random.default_rng(0), 301, 32, offset)
    mu, sigma = feature_stats(x)
    for batch in (1, 7, 301):
        moments = FeatureMoments(32)
        for start in range(0, len(x), batch):
            moments.add(x[start : start + batch])
        run_mu, run_sigma = moments.mean_and_covariance()
        assert moments.count == 301
        np.testing.assert_allclose(run_mu, mu, rtol=1e-13)
        np.testing.assert_allclose(run_sigma, sigma, rtol=1e-9, atol=1e-12 * np.abs(sigma).max())
        assert np.array_equal(run_sigma, run_sigma.T)


def test_running_moments_reject_bad_batches_and_too_few_rows() -> None:
    moments = FeatureMoments(4)
    with pytest.raises(DataError, match=r"batch of shape \(3, 5\), expected \(B, 4\)"):
        moments.add(np.zeros((3, 5)))
    moments.add(np.zeros((1, 4)))
    with pytest.raises(DataError, match="a covariance needs 2 features, got 1"):
        moments.mean_and_covariance()


@pytest.mark.parametrize(("n1", "n2", "subset"), [(120, 90, 40), (50, 300, 1000)])
def test_kid_equals_torch_fidelity_on_float64_features(n1: int, n2: int, subset: int) -> None:
    rng = np.random.default_rng(1)
    x, y = features(rng, n1, 24), features(rng, n2, 24, 0.05)
    mean, std, used = kernel_inception_distance(x, y, subset_size=subset, subsets=7, seed=11)
    ref = kid_features_to_metric(
        torch.from_numpy(x),
        torch.from_numpy(y),
        kid_subsets=7,
        kid_subset_size=used,
        rng_seed=11,
        verbose=False,
    )
    assert used == min(n1, n2, subset)
    assert mean == ref[KEY_METRIC_KID_MEAN]  # same draws, same kernel, same order: equal
    assert std == ref[KEY_METRIC_KID_STD]


def test_memory_mapped_float32_reference_gives_the_same_kid_and_fid(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    samples = features(rng, 40, 16)
    reference = features(rng, 60, 16, 0.1).astype(np.float32)  # stored as build_reference does
    write_npz(tmp_path / "ref.npz", features=reference)
    mapped = read_npz(tmp_path / "ref.npz", mmap=True)["features"]
    assert isinstance(mapped, np.memmap)
    in_memory = reference.astype(np.float64)
    assert kernel_inception_distance(samples, mapped, 20, 5) == kernel_inception_distance(
        samples, in_memory, 20, 5
    )
    (mu1, s1), (mu2, s2) = feature_stats(samples), feature_stats(in_memory)
    # N − 1 >= D: the mapped features are not read, the covariance route is taken.
    assert frechet_distance(mu1, s1, mu2, s2, samples, mapped) == frechet_distance(mu1, s1, mu2, s2)


def test_kid_checks_the_rows_it_draws() -> None:
    rng = np.random.default_rng(3)
    x, y = features(rng, 10, 8), features(rng, 10, 8)
    y[:, 0] = np.nan
    with pytest.raises(NumericsError, match="features2: features contain NaN"):
        kernel_inception_distance(x, y, subset_size=5, subsets=1)
    with pytest.raises(DataError, match=r"features1: expected features of shape \(N >= 2, D\)"):
        kernel_inception_distance(x[:1], y)
