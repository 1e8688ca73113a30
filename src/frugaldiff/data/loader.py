"""Deterministic, resumable batches: batch k is a pure function of (seed, k).

Epoch e visits the images in a permutation drawn from a generator seeded by (seed, "epoch", e);
batch k takes positions [k·B, (k+1)·B) of the concatenated epochs. Resuming at iteration k
therefore needs no loader state, and every variant of a study sees the same data order.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from frugaldiff.data.images import check_images, to_model_range
from frugaldiff.errors import DataError
from frugaldiff.io import read_npz
from frugaldiff.rng import derive_seed, make_generator


@dataclass(frozen=True)
class ImageDataset:
    """uint8 images (N, 3, H, W) and int64 labels (N,) held in memory (CIFAR-sized data)."""

    images: np.ndarray
    labels: np.ndarray

    @classmethod
    def load(cls, path: Path | str) -> "ImageDataset":
        arrays = read_npz(path, "images", "labels")
        images = check_images(arrays["images"], path)
        labels = arrays["labels"].astype(np.int64)
        if labels.shape != (len(images),):
            raise DataError(f"{path}: labels shape {labels.shape}, expected ({len(images)},)")
        return cls(images=images, labels=labels)

    def __len__(self) -> int:
        return len(self.images)


class BatchSchedule:
    """Maps an iteration index to a batch of images in [-1, 1] and their labels."""

    def __init__(self, dataset: ImageDataset, batch_size: int, seed: int, hflip: bool) -> None:
        if batch_size > len(dataset):
            raise DataError(f"batch_size={batch_size} exceeds the {len(dataset)} training images")
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.hflip = hflip
        self._perm_cache: dict[int, torch.Tensor] = {}

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perm_cache:
            if len(self._perm_cache) > 2:
                self._perm_cache.clear()
            gen = make_generator(derive_seed(self.seed, "epoch", epoch))
            self._perm_cache[epoch] = torch.randperm(len(self.dataset), generator=gen)
        return self._perm_cache[epoch]

    def indices(self, iteration: int) -> torch.Tensor:
        """Dataset indices of batch `iteration` (B,)."""
        n = len(self.dataset)
        positions = torch.arange(iteration * self.batch_size, (iteration + 1) * self.batch_size)
        epochs, offsets = positions // n, positions % n
        return torch.stack(
            [self._permutation(int(e))[int(o)] for e, o in zip(epochs, offsets, strict=True)]
        )

    def batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) float32 in [-1, 1] and labels (B,) for `iteration`."""
        idx = self.indices(iteration).numpy()
        images = to_model_range(self.dataset.images[idx])  # (B, 3, H, W)
        labels = torch.from_numpy(self.dataset.labels[idx])  # (B,)
        if self.hflip:
            gen = make_generator(derive_seed(self.seed, "hflip", iteration))
            flip = torch.rand(len(idx), generator=gen) < 0.5  # (B,)
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        return images, labels
