"""ImageNet 64×64 from the official downsampled npz batches (Chrabaszcz et al., arXiv 1707.08819).

Guided distillation's second dataset (docs/guided_distillation.md (g)). ImageNet needs a login, so
there is no download: `data.archive` (or FRUGALDIFF_IMAGENET64_DIR) names a local folder holding
the extracted `Imagenet64_train_part{1,2}_npz/train_data_batch_{1..10}.npz` and
`Imagenet64_val_npz/val_data.npz`. Each batch holds `data` (n, 12288) uint8, channel-planar RGB
like CIFAR-10, and `labels` 1..1000. Output: train.npz and test.npz (= val) as in cifar10.py,
uint8 (N, 3, 64, 64) and int64 labels 0..999. No checksums are published: each file's md5 is
recorded, and checked against `data.md5` when that lists any.
"""

import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np

from frugaldiff.config import DataConfig
from frugaldiff.data.images import check_image_count, check_images
from frugaldiff.errors import DataError
from frugaldiff.io import ensure_writable_dir, write_json, write_npz
from frugaldiff.provenance import md5_file

log = logging.getLogger(__name__)

DIR_ENV = "FRUGALDIFF_IMAGENET64_DIR"
NUM_CLASSES = 1000
SIDE = 64
TRAIN_BATCHES = 10
# The official split sizes; a folder with fewer images is a partial download.
OFFICIAL_COUNTS = {"train": 1_281_167, "test": 50_000}
EXPECTED_LAYOUT = (
    "the extracted official 'Downsampled ImageNet 64x64' npz archives "
    "(https://image-net.org/download-images): Imagenet64_train_part1_npz/ and "
    "Imagenet64_train_part2_npz/ with train_data_batch_1.npz .. train_data_batch_10.npz, and "
    "Imagenet64_val_npz/val_data.npz"
)


def locate_folder(cfg: DataConfig) -> Path:
    """The env var's folder, else data.archive's; DataError saying what to put there."""
    for origin, value in ((DIR_ENV, os.environ.get(DIR_ENV)), ("data.archive", cfg.archive)):
        if value:
            path = Path(value).expanduser()
            if not path.is_dir():
                raise DataError(f"{origin}={value!r}: no such folder; expected {EXPECTED_LAYOUT}")
            return path
    raise DataError(
        f"data.dataset=imagenet64 needs a local copy (ImageNet cannot be downloaded without a "
        f"login): set data.archive or {DIR_ENV} to a folder holding {EXPECTED_LAYOUT}"
    )


def find_batches(folder: Path) -> dict[str, list[Path]]:
    """The split files under `folder`, train batches in numeric order; DataError if incomplete."""
    numbered = {}
    for path in folder.rglob("train_data_batch_*.npz"):
        match = re.fullmatch(r"train_data_batch_(\d+)\.npz", path.name)
        if match:
            numbered.setdefault(int(match.group(1)), []).append(path)
    val = sorted(folder.rglob("val_data.npz"))
    wanted = list(range(1, TRAIN_BATCHES + 1))
    found = sorted(k for k, paths in numbered.items() for _ in paths)  # duplicates repeat
    if found != wanted or len(val) != 1:
        raise DataError(
            f"{folder}: found train batches {found} and {len(val)} val_data.npz; expected "
            f"batches {wanted} once each and one val_data.npz, i.e. {EXPECTED_LAYOUT}"
        )
    return {"train": [numbered[k][0] for k in wanted], "test": val}


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 3, 64, 64) and int64 labels 0..999 of one official batch file."""
    try:
        with np.load(path, allow_pickle=False) as batch:
            data, labels = batch["data"], batch["labels"]
    except KeyError as err:
        raise DataError(f"{path}: missing array {err}; expected 'data' and 'labels'") from err
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable or truncated npz ({err})") from err
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        raise DataError(
            f"{path}: data must be uint8 (n, {3 * SIDE * SIDE}), got {data.dtype} {data.shape}"
        )
    labels = np.asarray(labels).astype(np.int64).reshape(-1) - 1  # official labels are 1..1000
    if labels.shape != (len(data),) or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise DataError(f"{path}: labels must be {len(data)} ints in 1..{NUM_CLASSES}")
    return data.reshape(-1, 3, SIDE, SIDE), labels  # channel-planar rows -> (n, 3, 64, 64)


def read_split(
    paths: list[Path], limit: int | None, expected: int, key: str
) -> tuple[np.ndarray, np.ndarray]:
    """A split's batches concatenated in order, the count checked; the first `limit` kept."""
    images, labels = [], []
    for path in paths:
        batch_images, batch_labels = read_batch(path)
        images.append(batch_images)
        labels.append(batch_labels)
    count = sum(len(x) for x in images)
    files = str([p.name for p in paths])
    check_image_count(paths[0].parent, count, expected, files, "a partial or different download")
    if limit is not None and limit > count:
        raise DataError(f"{key}={limit} exceeds the split's {count} images")
    all_images = np.concatenate(images)[:limit]
    return check_images(all_images, paths[0]), np.concatenate(labels)[:limit]


def prepare_imagenet64(
    cfg: DataConfig,
    train_out: Path,
    test_out: Path,
    meta_out: Path,
    expected_counts: dict[str, int] = OFFICIAL_COUNTS,
) -> dict[str, object]:
    """Write train.npz, test.npz (the val split) and then meta.json; return the metadata."""
    for target in (train_out, test_out, meta_out):
        ensure_writable_dir(target.parent)  # fail before 16 GB are read
    folder = locate_folder(cfg)
    files = find_batches(folder)
    md5s = {p.name: md5_file(p) for paths in files.values() for p in paths}
    if cfg.md5:
        bad = {name: m for name, m in md5s.items() if m not in cfg.md5}
        if bad:
            raise DataError(f"{folder}: md5 of {sorted(bad)} not in data.md5 ({bad})")
    combined = md5_file_list(md5s)
    meta: dict[str, object] = {
        "dataset": "imagenet64",
        "archive": str(folder),
        "archive_md5": combined,
        "file_md5": md5s,
    }
    limits = {"train": cfg.train_images, "test": cfg.test_images}
    for split, out in (("train", train_out), ("test", test_out)):
        images, labels = read_split(
            files[split], limits[split], expected_counts[split], f"data.{split}_images"
        )
        write_npz(out, images=images, labels=labels)
        meta[f"{split}_images"] = len(images)
        log.info("imagenet64 %s: %d images -> %s", split, len(images), out)
    write_json(meta_out, meta)
    return meta


def md5_file_list(md5s: dict[str, str]) -> str:
    """One checksum for a folder: the md5 of its sorted 'name md5' lines."""
    text = "\n".join(f"{name} {md5}" for name, md5 in sorted(md5s.items()))
    return hashlib.md5(text.encode()).hexdigest()
