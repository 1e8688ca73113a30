"""ImageNet-256 from the ILSVRC2012 JPEG class folders: MicroDiT's paper tier (docs/microdit.md
(i)).

`data.archive` (or FRUGALDIFF_IMAGENET_DIR) names a folder holding `train/<wnid>/*.JPEG` and
`val/<wnid>/*.JPEG` (val sorted into class folders, as the usual valprep.sh does). A label is
the index of its wnid among the sorted train class folders: torchvision ImageFolder's and ADM's
convention. Each image gets ADM's centre crop to 256 (image_folder.centre_crop), decoded by a
process pool and streamed to disk in chunks (npz_stream.py), so neither train.npz (1,281,167
images, 252 GB) nor test.npz (the 50,000 val images, 9.8 GB) is ever held in RAM.
"""

import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from frugaldiff.config import DataConfig
from frugaldiff.data.image_folder import (
    EXTENSIONS,
    FolderSpec,
    centre_crop,
    list_images,
    listing_md5,
    locate_folder,
)
from frugaldiff.data.images import check_image_count
from frugaldiff.errors import DataError
from frugaldiff.io import ensure_writable_dir, write_json
from frugaldiff.npz_stream import stream_npz

log = logging.getLogger(__name__)

SIDE = 256
LAYOUT = (
    "the ILSVRC2012 images as train/<wnid>/*.JPEG (1,000 class folders, 1,281,167 images) and "
    "val/<wnid>/*.JPEG (the 50,000 validation images sorted into the same class folders, e.g. "
    "by valprep.sh)"
)
IMAGENET = FolderSpec("FRUGALDIFF_IMAGENET_DIR", SIDE, 1_281_167, LAYOUT)
SPLIT_FOLDERS = {"train": "train", "test": "val"}  # test.npz is the official validation set
OFFICIAL_COUNTS = {"train": 1_281_167, "test": 50_000}
CHUNK_IMAGES = 1024  # 192 MiB of crops per write; a few chunks are in flight at once
CHUNKS_AHEAD = 2  # decoded ahead of the writer, so the pool rarely waits for the disk
LOG_EVERY_SECONDS = 60.0
ORDER = (
    "class-interleaved: the k-th image (sorted file names) of every class, in label order, "
    "before any class's (k+1)-th; a prefix (data.*_images, evaluation.reference_images) is "
    "class-balanced to within one image while every class still has images"
)


def class_folders(root: Path, split: str) -> dict[str, list[Path]]:
    """wnid -> its sorted image files under root/<split folder>; DataError if anything is off."""
    folder = root / SPLIT_FOLDERS[split]
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; {root} must hold {LAYOUT}")
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if not classes:
        loose = [p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS]
        sort_hint = "; sort them into <wnid> class folders (valprep.sh)" if loose else ""
        raise DataError(
            f"{folder}: no class folders ({len(loose)} images directly inside{sort_hint}); "
            f"expected {LAYOUT}"
        )
    files = {}
    for path in classes:
        files[path.name] = list_images(path)
        if not files[path.name]:
            raise DataError(f"{path}: no {'/'.join(EXTENSIONS)} files; a class needs its images")
    return files


def interleave(per_class: list[list[Path]]) -> list[tuple[Path, int]]:
    """(file, label) in class-interleaved order (ORDER); label = index in `per_class`."""
    depth = max(len(files) for files in per_class)
    return [
        (files[k], label)
        for k in range(depth)
        for label, files in enumerate(per_class)
        if k < len(files)
    ]


def decode(path: Path) -> np.ndarray:
    """One image file -> uint8 (3, 256, 256) RGB (CMYK, grey and palette images converted)."""
    try:
        with Image.open(path) as image:
            return centre_crop(image, SIDE)
    except OSError as err:
        raise DataError(f"{path}: unreadable image ({err})") from err


def decoded_chunks(paths: list[Path], workers: int) -> Iterator[np.ndarray]:
    """Crops uint8 (n <= CHUNK_IMAGES, 3, 256, 256) of `paths`, in order, `workers` at a time."""
    starts = range(0, len(paths), CHUNK_IMAGES)
    if workers == 1:
        for start in starts:
            yield np.stack([decode(p) for p in paths[start : start + CHUNK_IMAGES]])
        return
    per_task = max(1, CHUNK_IMAGES // (4 * workers))
    with multiprocessing.get_context().Pool(workers) as pool:
        pending: deque = deque()
        for start in starts:
            chunk = paths[start : start + CHUNK_IMAGES]
            pending.append(pool.map_async(decode, chunk, chunksize=per_task))
            if len(pending) > CHUNKS_AHEAD:
                yield np.stack(pending.popleft().get())
        while pending:
            yield np.stack(pending.popleft().get())


def write_split(
    items: list[tuple[Path, int]],
    out: Path,
    workers: int,
    progress: Callable[[Iterator[int]], Iterable[int]],
) -> None:
    """Crops and labels of `items` -> `out` (images uint8 (N, 3, 256, 256), labels int64 (N,))."""
    paths = [path for path, _ in items]
    labels = np.array([label for _, label in items], dtype=np.int64)  # (N,)
    chunks = decoded_chunks(paths, workers)
    starts = progress(iter(range(0, len(paths), CHUNK_IMAGES)))
    start_time = last_log = time.perf_counter()
    with stream_npz(out) as npz:
        with npz.rows("images", (len(paths), 3, SIDE, SIDE), np.dtype(np.uint8)) as rows:
            for _, chunk in zip(starts, chunks, strict=True):  # strict: runs the pool to its end
                rows.write(chunk)
                now = time.perf_counter()
                if now - last_log >= LOG_EVERY_SECONDS or rows.rows == len(paths):
                    rate = rows.rows / max(now - start_time, 1e-9)
                    eta = (len(paths) - rows.rows) / rate
                    log.info(
                        "%s: %d/%d images, %.0f images/s, ETA %.0f s",
                        out.name,
                        rows.rows,
                        len(paths),
                        rate,
                        eta,
                    )
                    last_log = now
        npz.add("labels", labels)


def default_workers() -> int:
    """The CPUs this process may use (a SLURM allocation, not the whole node)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def prepare_imagenet256(
    cfg: DataConfig,
    train_out: Path,
    test_out: Path,
    meta_out: Path,
    workers: int | None = None,
    expected_counts: dict[str, int] = OFFICIAL_COUNTS,
    progress: Callable[[Iterator[int]], Iterable[int]] = iter,
) -> dict[str, object]:
    """Write train.npz, test.npz (val) and then meta.json; return the metadata.

    The counts are checked against `expected_counts` even when data.train_images /
    data.test_images ask for a prefix: a prefix of a partial copy would be another subset.
    Every val class must be a train class, and every train class must have val images.
    """
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise DataError(f"prepare imagenet256: workers={workers}; expected at least 1")
    for target in (train_out, test_out, meta_out):
        ensure_writable_dir(target.parent)  # fail before 1.3M files are listed
    root = locate_folder(cfg, IMAGENET)
    splits = {split: class_folders(root, split) for split in SPLIT_FOLDERS}
    wnids = sorted(splits["train"])
    if sorted(splits["test"]) != wnids:
        extra, missing = (
            sorted(set(splits["test"]) - set(wnids)),
            sorted(set(wnids) - set(splits["test"])),
        )
        raise DataError(
            f"{root / 'val'}: class folders differ from train's: {len(extra)} not in train "
            f"{extra[:5]}, {len(missing)} train classes missing {missing[:5]}; expected {LAYOUT}"
        )
    files = sorted(p for per_class in splits.values() for v in per_class.values() for p in v)
    for split, per_class in splits.items():
        found = sum(len(v) for v in per_class.values())
        folder = root / SPLIT_FOLDERS[split]
        counted = f"{'/'.join(EXTENSIONS)} files of {len(per_class)} class folders"
        check_image_count(folder, found, expected_counts[split], counted, LAYOUT)
    fingerprint = listing_md5(root, files)
    if cfg.md5 and fingerprint not in cfg.md5:
        raise DataError(f"{root}: listing md5 {fingerprint} not in data.md5 {list(cfg.md5)}")
    meta: dict[str, object] = {
        "dataset": "imagenet256",
        "archive": str(root),
        "archive_md5": fingerprint,  # of the 'relative-path size' listing (no bytes published)
        "num_classes": len(wnids),
        "classes": wnids,  # label i = classes[i]
        "test_split": "the official ILSVRC2012 validation images",
        "order": ORDER,
        "crop": f"ADM centre crop to {SIDE}",
    }
    limits = {"train": cfg.train_images, "test": cfg.test_images}
    for split, out in (("train", train_out), ("test", test_out)):
        items = interleave([splits[split][wnid] for wnid in wnids])
        limit = limits[split]
        if limit is not None and limit > len(items):
            raise DataError(f"data.{split}_images={limit} exceeds the split's {len(items)} images")
        write_split(items[:limit], out, workers, progress)
        meta[f"{split}_images"] = len(items[:limit])
    write_json(meta_out, meta)
    return meta
