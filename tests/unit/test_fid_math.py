"""FID/KID math against closed forms and torch-fidelity's own formulas (no Inception needed)."""

import numpy as np
import pytest
import scipy.linalg
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

from frugaldiff.errors import ConfigError, DataError, NumericsError
from frugaldiff.evaluate.metrics import (
    INCEPTION_SCORE_NOTE,
    feature_stats,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
)


def _features(rng: np.random.Generator, n: int, dim: int, shift: float = 0.0) -> np.ndarray:
    """Non-negative, correlated features like pool3 activations (ReLU then average pool)."""
    mixing = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    return np.abs(rng.standard_normal((n, dim)) @ mixing + shift)  # (n, D)


def test_fid_of_identical_rank_deficient_stats_is_zero() -> None:
    # N < D: the covariance is singular, the case where sqrt(eigvals) round-off bites.
    rng = np.random.default_rng(0)
    mu, sigma = feature_stats(_features(rng, 40, 256))
    assert np.linalg.matrix_rank(sigma) < 256
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_fid_of_diagonal_gaussians_matches_closed_form() -> None:
    # Diagonal covariances commute: FID = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(16), rng.standard_normal(16)
    a, b = rng.uniform(0.1, 4.0, 16), rng.uniform(0.1, 4.0, 16)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_fid_of_point_masses_is_squared_mean_distance() -> None:
    # Zero covariances (every image identical): nothing is left of the trace terms.
    mu1, mu2, zeros = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0]), np.zeros((3, 3))
    assert frechet_distance(mu1, zeros, mu2, zeros) == pytest.approx(5.0, abs=1e-12)


def test_fid_matches_torch_fidelity_and_scipy_sqrtm() -> None:
    rng = np.random.default_rng(2)
    mu1, sigma1 = feature_stats(_features(rng, 300, 32))
    mu2, sigma2 = feature_stats(_features(rng, 200, 32, shift=0.3))
    ours = frechet_distance(mu1, sigma1, mu2, sigma2)
    fidelity = fid_statistics_to_metric(
        {"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2}, verbose=False
    )[KEY_METRIC_FID]
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    diff = mu1 - mu2
    direct = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean).real
    assert ours > 0.1  # a real distance, so the relative checks below mean something
    assert ours == pytest.approx(fidelity, rel=1e-9)
    assert ours == pytest.approx(direct, rel=1e-9)


@pytest.mark.parametrize(("n1", "n2"), [(12, 20), (12, 80), (80, 90)])
def test_fid_from_features_equals_fid_from_covariances(n1: int, n2: int) -> None:
    """The SVD shortcut for N - 1 < D gives the eigh route's value (and N >= D falls back)."""
    rng = np.random.default_rng(3)
    f1, f2 = _features(rng, n1, 64), _features(rng, n2, 64, shift=0.3)
    (mu1, s1), (mu2, s2) = feature_stats(f1), feature_stats(f2)
    direct = frechet_distance(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2, f1, f2) == pytest.approx(direct, rel=1e-10)
    assert frechet_distance(mu1, s1, mu1, s1, f1, f1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_rejects_bad_inputs() -> None:
    mu, sigma = np.zeros(4), np.eye(4)
    with pytest.raises(DataError, match="do not agree"):
        frechet_distance(mu, sigma, np.zeros(3), np.eye(3))
    with pytest.raises(NumericsError, match="not a covariance"):
        frechet_distance(mu, sigma, mu, np.diag([1.0, 1.0, 1.0, -1.0]))
    with pytest.raises(NumericsError, match="NaN"):
        feature_stats(np.array([[0.0, np.nan], [1.0, 2.0]]))


def _mmd2_unbiased_cubic(x: np.ndarray, y: np.ndarray) -> float:
    """Bińkowski et al. 2018, eq. 2 with k(a, b) = (a.b / d + 1)^3, written out independently."""
    m, dim = x.shape
    kxx, kyy, kxy = ((p @ q.T / dim + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
    off_diagonal = kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)
    return float(off_diagonal / (m * (m - 1)) - 2 * kxy.sum() / m**2)


def test_kid_with_one_full_subset_matches_closed_form() -> None:
    # A subset as large as both sets is a permutation of each, so KID is the full-set MMD^2.
    rng = np.random.default_rng(3)
    x, y = _features(rng, 50, 64), _features(rng, 50, 64, shift=0.2)
    mean, std, used = kernel_inception_distance(x, y, subset_size=50, subsets=1)
    assert used == 50
    assert std == 0.0
    assert mean == pytest.approx(_mmd2_unbiased_cubic(x, y), rel=1e-10)


def test_kid_of_same_distribution_is_near_zero() -> None:
    # Two draws of one law: the unbiased MMD^2 is 0 up to sampling noise. (Passing one array
    # twice is not this case: its subsets overlap, and shared points bias KID negative.)
    rng = np.random.default_rng(4)
    mixing = rng.standard_normal((64, 64)) / 8.0
    x, y = (np.abs(rng.standard_normal((200, 64)) @ mixing) for _ in range(2))
    same, same_std, _ = kernel_inception_distance(x, y, subset_size=100, subsets=50)
    shifted, _, _ = kernel_inception_distance(x, y + 0.5, subset_size=100, subsets=50)
    assert abs(same) < 3 * same_std
    assert shifted > 100 * abs(same)


def test_kid_subset_size_is_lowered_for_small_sets() -> None:
    rng = np.random.default_rng(5)
    x, y = _features(rng, 30, 16), _features(rng, 45, 16)
    assert kernel_inception_distance(x, y, subsets=2)[2] == 30  # default 1000 > both sets
    assert kernel_inception_distance(x, y, subset_size=20, subsets=2)[2] == 20
    with pytest.raises(DataError, match="widths differ"):
        kernel_inception_distance(x, _features(rng, 30, 8), subsets=2)
    with pytest.raises(ConfigError, match="subset_size >= 2"):
        kernel_inception_distance(x, y, subset_size=1)


def test_inception_score_is_not_available() -> None:
    assert inception_score() == (None, INCEPTION_SCORE_NOTE)
    assert INCEPTION_SCORE_NOTE == "n/a (no logits weights)"
