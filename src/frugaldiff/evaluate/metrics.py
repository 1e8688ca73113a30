"""FID, KID and the IS placeholder on Inception pool3 features; one sample set vs a reference.

docs/evaluation.md (a): FID = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}) (Heusel et al.
2017, eq. 6) in float64; KID = torch-fidelity's unbiased MMD^2 with the cubic polynomial kernel
(Bińkowski et al. 2018), its defaults, its draws, its kernel code; IS is "n/a (no logits
weights)". Samples and reference must share weights and resize mode; N of both and the KID
subset size are recorded. A reference's features may be a memory map (1.28M × 2048 float32):
only the rows a KID subset draws are read.
"""

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch_fidelity.defaults import DEFAULTS
from torch_fidelity.metric_kid import kernel_mmd

from frugaldiff.data.images import check_images
from frugaldiff.errors import ConfigError, DataError, NumericsError
from frugaldiff.evaluate.features import (
    CLEANFID_RESIZE_MODE,
    SOURCE_WEIGHTS_SHA256,
    InceptionFeatures,
    cleanfid_features,
)

if TYPE_CHECKING:
    from frugaldiff.evaluate.reference import Reference

log = logging.getLogger(__name__)

KID_SUBSETS: int = DEFAULTS["kid_subsets"]  # 100
KID_SUBSET_SIZE: int = DEFAULTS["kid_subset_size"]  # 1000
KID_SEED: int = DEFAULTS["rng_seed"]  # 2020
INCEPTION_SCORE_NOTE = "n/a (no logits weights)"
# A covariance eigenvalue below -tol * largest is not round-off but a broken matrix.
NEGATIVE_EIGENVALUE_TOL = 1e-8


def _check_features(features: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(features, np.ndarray) or features.ndim != 2 or len(features) < 2:
        shape = getattr(features, "shape", type(features).__name__)
        raise DataError(f"{what}: expected features of shape (N >= 2, D), got {shape}")
    if not np.isfinite(features).all():
        raise NumericsError(f"{what}: features contain NaN or inf")
    return features.astype(np.float64)


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and unbiased covariance (D, D), float64, as torch-fidelity."""
    features = _check_features(features, "feature_stats")
    return features.mean(axis=0), np.cov(features, rowvar=False)  # (D,), (D, D)


def _covariance_range(sigma: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (r,) and vectors (D, r) of a covariance on its numerical range.

    Eigenvalues at or below largest * D * eps (np.linalg.matrix_rank's threshold) are round-off
    of exact zeros (N samples give rank <= N - 1), so they are dropped, not square-rooted.
    """
    eigenvalues, vectors = np.linalg.eigh(sigma)  # (D,), (D, D), ascending
    largest = max(eigenvalues[-1], 0.0)
    if eigenvalues[0] < -NEGATIVE_EIGENVALUE_TOL * largest:
        raise NumericsError(
            f"{what}: not a covariance (eigenvalue {eigenvalues[0]:.3g}, largest {largest:.3g})"
        )
    keep = eigenvalues > largest * len(eigenvalues) * np.finfo(np.float64).eps
    return eigenvalues[keep], vectors[:, keep]  # (r,), (D, r)


def _features_range(features: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The same eigenpairs as `_covariance_range(np.cov(features))`, from the centred features'
    SVD (X_c = U S Vᵀ ⇒ Σ = V S² Vᵀ / (N − 1)) when N − 1 < D: O(N²D) instead of the O(D³)
    2048² eigendecomposition, which dominated a small sample set's evaluation on 2 CPU cores.
    None when N − 1 >= D (then the covariance's own eigh is no dearer), decided before the
    features are read: a 1.28M-image reference's are a 10 GB memory map."""
    if getattr(features, "ndim", 0) == 2 and len(features) - 1 >= features.shape[1]:
        return None
    features = _check_features(features, what)
    n, dim = features.shape
    centred = features - features.mean(axis=0)  # (N, D)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)  # (N,), (N, D)
    eigenvalues = singular**2 / (n - 1)  # descending
    largest = eigenvalues[0] if len(eigenvalues) else 0.0
    keep = eigenvalues > largest * dim * np.finfo(np.float64).eps
    return eigenvalues[keep], vt[keep].T  # (r,), (D, r)


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    features1: np.ndarray | None = None,
    features2: np.ndarray | None = None,
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), float64.

    tr (S1 S2)^{1/2} is the nuclear norm of S2^{1/2} S1^{1/2} (S1 S2 is similar to its Gram
    matrix), i.e. of diag(√w2) V2ᵀ V1 diag(√w1) on the covariances' ranges. Singular values
    carry absolute round-off eps·|S|, whereas torch-fidelity's sqrt(eigvals(S1 S2)) turns each
    ~1e-14 eigenvalue of a rank-deficient (N < 2048) product into ~1e-7: FID(x, x) is 0 to
    ~1e-11 here, ~-7e-5 there on 80 images. Same value otherwise (tested against it).
    `features1`/`features2`, the (N, D) features behind a covariance, only make its range
    cheaper to find when N − 1 < D (`_features_range`); the value is the same.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    dim = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise DataError(
            f"frechet_distance: shapes mu1 {mu1.shape}, sigma1 {sigma1.shape}, "
            f"mu2 {mu2.shape}, sigma2 {sigma2.shape} do not agree"
        )
    range1 = _features_range(features1, "features1") if features1 is not None else None
    range2 = _features_range(features2, "features2") if features2 is not None else None
    w1, v1 = range1 or _covariance_range(sigma1, "sigma1")  # (r1,), (D, r1)
    w2, v2 = range2 or _covariance_range(sigma2, "sigma2")  # (r2,), (D, r2)
    core = np.sqrt(w2)[:, None] * (v2.T @ v1) * np.sqrt(w1)[None, :]  # (r2, r1)
    tr_covmean = np.linalg.svd(core, compute_uv=False).sum() if core.size else 0.0
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def kernel_inception_distance(
    features1: np.ndarray,
    features2: np.ndarray,
    subset_size: int = KID_SUBSET_SIZE,
    subsets: int = KID_SUBSETS,
    seed: int = KID_SEED,
) -> tuple[float, float, int]:
    """KID mean and std over `subsets` random subsets, and the subset size actually used.

    torch-fidelity's kid_features_to_metric, step for step: its seeded RandomState draws a
    subset of each set in turn and its own kernel_mmd (cubic kernel, gamma 1/D, coef0 1) scores
    them; a test checks the values are equal. Written out so that only the drawn rows are read
    and cast: a 1.28M-image reference's features are a 10 GB memory map (21 GB as float64).
    The subset size is lowered to min(n1, n2, subset_size), which torch-fidelity refuses to do
    itself; callers record the returned size (docs/evaluation.md (a)).
    """
    if subset_size < 2 or subsets < 1:
        raise ConfigError(
            f"kernel_inception_distance: need subset_size >= 2 and subsets >= 1, "
            f"got {subset_size} and {subsets}"
        )
    for name, features in (("features1", features1), ("features2", features2)):
        if not isinstance(features, np.ndarray) or features.ndim != 2 or len(features) < 2:
            shape = getattr(features, "shape", type(features).__name__)
            raise DataError(
                f"kernel_inception_distance {name}: expected features of shape (N >= 2, D), "
                f"got {shape}"
            )
    if features1.shape[1] != features2.shape[1]:
        raise DataError(
            f"kernel_inception_distance: feature widths differ, "
            f"{features1.shape[1]} vs {features2.shape[1]}"
        )
    used = min(len(features1), len(features2), subset_size)
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        rows1 = rng.choice(len(features1), used, replace=False)
        rows2 = rng.choice(len(features2), used, replace=False)
        # Deviation: torch-fidelity passes float32 features; float64 keeps the kernel sums
        # exact to ~1e-12 instead of ~1e-7 (same features, same subsets, same formula).
        subset1 = _check_features(features1[rows1], "kernel_inception_distance features1")
        subset2 = _check_features(features2[rows2], "kernel_inception_distance features2")
        mmds[i] = kernel_mmd(subset1, subset2)
    return float(np.mean(mmds)), float(np.std(mmds)), used


def inception_score() -> tuple[None, str]:
    """IS needs the graph's 1008-way logits, which the offline weights lack: no value, a note."""
    return None, INCEPTION_SCORE_NOTE


def _require(ref: "Reference", key: str, expected: str | None) -> None:
    found = ref.provenance.get(key)
    if found != expected:
        raise DataError(
            f"{ref.path}: provenance {key}={found!r} but the current extractor has {expected!r}; "
            "recompute the reference statistics"
        )


def evaluate_samples(
    samples: np.ndarray,
    reference_path: Path,
    *,
    cache_dir: Path,
    device: str = "cpu",
    batch_size: int = 16,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int = KID_SUBSET_SIZE,
    with_cleanfid: bool = True,
    source: Path | str = "samples",
) -> dict[str, Any]:
    """uint8 (N, 3, H, W) samples -> a flat metrics dict; errors name `source` or the reference."""
    from frugaldiff.evaluate.reference import load_reference  # it imports feature_stats from here

    check_images(samples, source)
    if len(samples) < 2:
        raise DataError(f"{source}: a covariance needs at least 2 images, got {len(samples)}")
    ref = load_reference(Path(reference_path))
    if with_cleanfid and not ref.has_cleanfid:
        raise DataError(f"{ref.path}: no clean-fid arrays; rebuild it with with_cleanfid=True")
    # Refuse before any work: locate_inception_weights only ever accepts SOURCE_WEIGHTS_SHA256.
    _require(ref, "weights_sha256", SOURCE_WEIGHTS_SHA256)
    _require(ref, "resize_mode", InceptionFeatures.resize_mode)
    if with_cleanfid:
        _require(ref, "resize_mode_cleanfid", CLEANFID_RESIZE_MODE)
    extractor = InceptionFeatures(cache_dir, device=device, batch_size=batch_size)

    features = extractor.features(samples, source=source)  # (N, 2048) float64
    mu, sigma = feature_stats(features)
    fid = frechet_distance(mu, sigma, ref.mu, ref.sigma, features, ref.features)
    kid_mean, kid_std, kid_used = kernel_inception_distance(
        features, ref.features, subset_size=kid_subset_size, subsets=kid_subsets
    )
    fid_clean = None
    if with_cleanfid and ref.cleanfid_mu is not None and ref.cleanfid_sigma is not None:
        clean = cleanfid_features(samples, cache_dir, device, batch_size, source=source)
        clean_mu, clean_sigma = feature_stats(clean)
        fid_clean = frechet_distance(
            clean_mu, clean_sigma, ref.cleanfid_mu, ref.cleanfid_sigma, clean, ref.cleanfid_features
        )
    isc, isc_note = inception_score()
    log.info("%s vs %s: FID %.4f, KID %.3g ± %.2g", source, ref.path, fid, kid_mean, kid_std)
    return {
        "fid": fid,
        "fid_cleanfid": fid_clean,
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_subset_size": kid_used,
        "kid_subsets": kid_subsets,
        "inception_score": isc,
        "inception_score_note": isc_note,
        "n_images": len(samples),
        "n_reference": ref.n_images,
        "weights_sha256": extractor.weights_sha256,
        "resize_mode": extractor.resize_mode,
        "resize_mode_cleanfid": CLEANFID_RESIZE_MODE if with_cleanfid else None,
        "reference": str(ref.path),
        "reference_provenance": ref.provenance,
    }
