"""Mean and covariance of features that arrive in batches, for references too large for np.cov.

np.cov needs every feature at once: ImageNet-256's 1.28M train images give 1.28M × 2048 float64
= 21 GB. Summing x − K and (x − K)(x − K)ᵀ in float64 about a shift K near the mean (the first
batch's mean) gives the same unbiased covariance in one pass without the cancellation of the
raw Σxxᵀ − n·μμᵀ formula (Chan, Golub & LeVeque 1983, "shifted data").
"""

import numpy as np

from frugaldiff.errors import DataError


class FeatureMoments:
    """Running count, mean and unbiased covariance of (B, D) batches, in float64."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.count = 0
        self.shift: np.ndarray | None = None  # (D,) K
        self.total = np.zeros(dim)  # (D,) Σ (x − K)
        self.outer = np.zeros((dim, dim))  # (D, D) Σ (x − K)(x − K)ᵀ

    def add(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, dtype=np.float64)
        if batch.ndim != 2 or batch.shape[1] != self.dim:
            raise DataError(
                f"FeatureMoments: batch of shape {batch.shape}, expected (B, {self.dim})"
            )
        if len(batch) == 0:
            return
        if self.shift is None:
            self.shift = batch.mean(axis=0)
        centred = batch - self.shift  # (B, D)
        self.total += centred.sum(axis=0)
        self.outer += centred.T @ centred
        self.count += len(batch)

    def mean_and_covariance(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (D,) and unbiased covariance (D, D), as feature_stats (np.cov) defines them."""
        if self.count < 2 or self.shift is None:
            raise DataError(f"FeatureMoments: a covariance needs 2 features, got {self.count}")
        offset = self.total / self.count  # (D,) mean − K
        covariance = (self.outer - self.count * np.outer(offset, offset)) / (self.count - 1)
        return self.shift + offset, (covariance + covariance.T) / 2  # exactly symmetric
