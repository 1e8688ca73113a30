"""Which datasets the harness can prepare, dispatched by `data.dataset`.

Every dataset ends as the same two files (train.npz, test.npz: uint8 (N, 3, H, W) + labels) and a
meta.json, so everything downstream (latents, training, reference statistics) is shared.
ImageNet-256 (docs/microdit.md (i)) is 1.28M images, 252 GB as one uint8 array: it is decoded by a
pool of `workers` processes and streamed to disk (data/imagenet256.py), never held in RAM.
"""

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from frugaldiff.config import DataConfig
from frugaldiff.data.cifar10 import prepare_cifar10
from frugaldiff.data.image_folder import FOLDER_DATASETS, prepare_image_folder
from frugaldiff.data.imagenet64 import prepare_imagenet64
from frugaldiff.data.imagenet256 import prepare_imagenet256
from frugaldiff.errors import DataError


def prepare_dataset(
    cfg: DataConfig,
    train_out: Path,
    test_out: Path,
    meta_out: Path,
    download_dir: Path,
    workers: int | None = None,
    progress: Callable[[Iterator[int]], Iterable[int]] = iter,
) -> dict[str, object]:
    """Write the dataset's train/test .npz and meta.json (last); DataError if not preparable.

    `workers` (decoding processes; None: the CPUs this process may use) and `progress` (wraps
    the chunk loop, e.g. in tqdm) matter only for ImageNet-256; the others read small archives.
    """
    if cfg.dataset == "cifar10":
        return prepare_cifar10(cfg, train_out, test_out, meta_out, download_dir)
    if cfg.dataset == "imagenet64":
        return prepare_imagenet64(cfg, train_out, test_out, meta_out)
    if cfg.dataset == "imagenet256":
        return prepare_imagenet256(
            cfg, train_out, test_out, meta_out, workers=workers, progress=progress
        )
    if cfg.dataset in FOLDER_DATASETS:
        return prepare_image_folder(cfg, train_out, test_out, meta_out)
    implemented = ["cifar10", "imagenet64", "imagenet256", *sorted(FOLDER_DATASETS)]
    raise DataError(f"data.dataset={cfg.dataset!r}; expected one of {implemented}")
