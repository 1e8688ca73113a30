"""Deterministic, resumable batches: batch k is a pure function of (seed, k).

Epoch e visits the images in a permutation drawn from a generator seeded by (seed, "epoch", e);
batch k takes positions [k·B, (k+1)·B) of the concatenated epochs. Resuming at iteration k
therefore needs no loader state, and every variant of a study sees the same data order. The
data are uint8 images (pixel tiers) or cached VAE latents (data/latents.py, paper tiers); both
turn indices, flips and a generator into model inputs.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from frugaldiff.data.images import check_images, to_model_range
from frugaldiff.data.latents import LatentDataset
from frugaldiff.errors import DataError
from frugaldiff.io import npz_keys, read_npz
from frugaldiff.rng import derive_seed, make_generator


class TrainingData(Protocol):
    """What a BatchSchedule draws from: N examples with labels and one input shape."""

    labels: np.ndarray

    def __len__(self) -> int: ...

    @property
    def sample_shape(self) -> tuple[int, int, int]: ...

    def examples(
        self, idx: np.ndarray, flip: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class ImageDataset:
    """uint8 images (N, 3, H, W), memory-mapped, and int64 labels (N,) in memory.

    Mapped so that a 252 GB split (ImageNet-256) trains without being loaded: a batch gathers
    its rows by fancy indexing, which copies just them into memory (`examples`).
    """

    images: np.ndarray
    labels: np.ndarray

    @classmethod
    def load(cls, path: Path | str) -> "ImageDataset":
        arrays = read_npz(path, "images", "labels", mmap=True)
        images = check_images(arrays["images"], path)
        labels = arrays["labels"].astype(np.int64)
        if labels.shape != (len(images),):
            raise DataError(f"{path}: labels shape {labels.shape}, expected ({len(images)},)")
        return cls(images=images, labels=labels)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one model input."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def examples(
        self, idx: np.ndarray, flip: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Images `idx` as float32 (B, 3, H, W) in [-1, 1], mirrored where `flip` (B,)."""
        del generator  # pixels need no draw of their own
        images = to_model_range(self.images[idx])  # (B, 3, H, W)
        return torch.where(flip[:, None, None, None], images.flip(-1), images)


def load_training_data(path: Path | str) -> TrainingData:
    """Images (prepare_data's .npz) or cached latents (encode_latents' .npz), by content."""
    return LatentDataset.load(path) if "mean" in npz_keys(path) else ImageDataset.load(path)


class BatchSchedule:
    """Maps an iteration index to a batch of model inputs and their labels."""

    def __init__(self, dataset: TrainingData, batch_size: int, seed: int, hflip: bool) -> None:
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
        """Inputs (B, C, H, W) float32 (images in [-1, 1] or scaled latents), labels (B,)."""
        idx = self.indices(iteration).numpy()
        labels = torch.from_numpy(self.dataset.labels[idx])  # (B,)
        flip = torch.zeros(len(idx), dtype=torch.bool)  # (B,)
        if self.hflip:
            gen = make_generator(derive_seed(self.seed, "hflip", iteration))
            flip = torch.rand(len(idx), generator=gen) < 0.5  # (B,)
        posterior = make_generator(derive_seed(self.seed, "posterior", iteration))
        return self.dataset.examples(idx, flip, posterior), labels
