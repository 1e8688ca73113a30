"""CIFAR-10 from the official python-batch archive (Krizhevsky 2009).

The archive is md5-checked before it is read; a wrong or truncated file is an error that names
the file and both checksums, never silently used. It comes from, in order: the path in the
env var FRUGALDIFF_CIFAR10_ARCHIVE, the path in the config, or a download of the official archive.
Output: one .npz per split with uint8 images (N, 3, 32, 32) and int64 labels (N,); with
`data.resolution` r (a divisor of 32), area-downsampled to (N, 3, r, r).
"""

import logging
import os
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

from frugaldiff.config import DataConfig
from frugaldiff.data.images import area_downsample, check_images
from frugaldiff.errors import DataError
from frugaldiff.io import atomic_write, ensure_writable_dir, write_json, write_npz
from frugaldiff.provenance import md5_file

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_ENV = "FRUGALDIFF_CIFAR10_ARCHIVE"
TRAIN_MEMBERS = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))
TEST_MEMBERS = ("cifar-10-batches-py/test_batch",)
NUM_CLASSES = 10


def locate_archive(cfg: DataConfig, download_dir: Path) -> Path:
    """The archive to read: env var, else the config's path, else a (cached) official download.

    The env var wins so one machine's local copy can serve every tier config unchanged.
    """
    for origin, value in (
        (ARCHIVE_ENV, os.environ.get(ARCHIVE_ENV)),
        ("data.archive", cfg.archive),
    ):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise DataError(
                    f"{origin}={value!r}: CIFAR-10 archive not found at {path.resolve()}"
                )
            return path
    target = download_dir / "cifar-10-python.tar.gz"
    if target.is_file():
        return target
    if not cfg.download:
        raise DataError(
            f"no CIFAR-10 archive: set data.archive in the config or {ARCHIVE_ENV}, "
            "or allow data.download"
        )
    log.info("downloading %s -> %s", OFFICIAL_URL, target)
    with atomic_write(target, suffix=".part") as tmp:
        urllib.request.urlretrieve(OFFICIAL_URL, tmp)
    return target


def verify_md5(path: Path, accepted: tuple[str, ...]) -> str:
    """Return the archive's md5 if it is one of `accepted`; else raise naming both."""
    actual = md5_file(path)
    if actual not in accepted:
        raise DataError(
            f"{path}: md5 mismatch; expected {' or '.join(accepted)}, got {actual} "
            "(a truncated download or a different file)"
        )
    return actual


def _read_members(
    archive: tarfile.TarFile, members: tuple[str, ...], path: Path
) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in members:
        try:
            handle = archive.extractfile(name)
        except KeyError as err:
            raise DataError(
                f"{path}: member {name!r} missing; not a CIFAR-10 python archive"
            ) from err
        if handle is None:
            raise DataError(f"{path}: member {name!r} is not a file")
        batch = pickle.load(handle, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)  # (n, 3072), channel-planar RGB
        images.append(data.reshape(-1, 3, 32, 32))  # (n, 3, 32, 32)
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def read_archive(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Both splits, train = batches 1..5 concatenated in file order."""
    try:
        with tarfile.open(path, "r:gz") as archive:
            splits = {
                "train": _read_members(archive, TRAIN_MEMBERS, path),
                "test": _read_members(archive, TEST_MEMBERS, path),
            }
    except (tarfile.TarError, EOFError, OSError, pickle.UnpicklingError) as err:
        raise DataError(f"{path}: unreadable or truncated archive ({err})") from err
    for split, (images, labels) in splits.items():
        check_images(images, f"{path}:{split}")
        if labels.shape != (len(images),) or labels.min() < 0 or labels.max() >= NUM_CLASSES:
            raise DataError(f"{path}:{split}: labels must be {len(images)} ints in 0..9")
    return splits


def prepare_cifar10(
    cfg: DataConfig, train_out: Path, test_out: Path, meta_out: Path, download_dir: Path
) -> dict[str, object]:
    """Write the train and test .npz files (then meta.json, last) and return the metadata."""
    for target in (train_out, test_out, meta_out):
        ensure_writable_dir(target.parent)  # fail before the archive is read
    archive = locate_archive(cfg, download_dir)
    md5 = verify_md5(archive, cfg.md5)
    splits = read_archive(archive)
    limits = {"train": cfg.train_images, "test": cfg.test_images}
    meta: dict[str, object] = {
        "dataset": "cifar10",
        "archive": str(archive),
        "archive_md5": md5,
        "resolution": cfg.resolution or 32,
        "resize": "area (block mean)" if cfg.resolution not in (None, 32) else "none",
    }
    for split, (images, labels) in splits.items():
        limit = limits[split]
        if limit is not None and limit > len(images):
            raise DataError(
                f"data.{split}_images={limit} but {archive} has {len(images)} {split} images"
            )
        images, labels = images[:limit], labels[:limit]
        if cfg.resolution is not None:
            images = area_downsample(images, cfg.resolution, f"{archive}:{split}")
        write_npz(train_out if split == "train" else test_out, images=images, labels=labels)
        meta[f"{split}_images"] = len(images)
    write_json(meta_out, meta)
    return meta
