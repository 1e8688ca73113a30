"""Training data read memory-mapped gives the batches the in-memory arrays give, bit for bit."""

from pathlib import Path

import numpy as np
import torch

from frugaldiff.data.loader import BatchSchedule, ImageDataset
from frugaldiff.npz_stream import stream_npz


def test_mapped_images_give_the_in_memory_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 3, 8, 8), dtype=np.uint8)  # (N, 3, 8, 8)
    labels = rng.integers(0, 10, size=10)
    with stream_npz(tmp_path / "train.npz") as npz:
        with npz.rows("images", images.shape, images.dtype) as rows:
            for start in range(0, 10, 3):
                rows.write(images[start : start + 3])
        npz.add("labels", labels)
    mapped = ImageDataset.load(tmp_path / "train.npz")
    assert isinstance(mapped.images, np.memmap)
    assert not mapped.images.flags.writeable
    in_memory = ImageDataset(images=images, labels=labels.astype(np.int64))
    schedules = [BatchSchedule(d, 4, seed=7, hflip=True) for d in (mapped, in_memory)]
    for iteration in range(6):  # crosses epochs (10 images, batches of 4)
        (x_map, y_map), (x_mem, y_mem) = (s.batch(iteration) for s in schedules)
        assert torch.equal(x_map, x_mem)
        assert torch.equal(y_map, y_mem)
