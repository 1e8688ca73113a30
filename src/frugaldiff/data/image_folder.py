"""Image-folder datasets of SpeeD's paper runs: FFHQ and MetFaces at 256² (docs/speed.md (b), (g)).

Every image goes through ADM's centre crop (guided-diffusion's `center_crop_arr`): halve with a
box filter while the short side is at least twice the target, resize bicubically so the short
side is the target, cut out the centre. Output: train.npz uint8 (N, 3, 256, 256) with labels 0
(the runs are unconditional). These sets have no official test split: test.npz holds the first
`data.test_images` (default 1,000 [I]) training images, and meta.json says so. No checksums are
published: the expected image count is checked and the md5 of the "path size" listing recorded.
"""

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from frugaldiff.config import DataConfig
from frugaldiff.data.images import check_image_count
from frugaldiff.errors import DataError
from frugaldiff.io import ensure_writable_dir, write_json, write_npz

log = logging.getLogger(__name__)

EXTENSIONS = (".png", ".jpg", ".jpeg")
DEFAULT_TEST_IMAGES = 1000  # [I] no official split: a prefix of train, for the DAG's test file


@dataclass(frozen=True)
class FolderSpec:
    """One image-folder dataset: where its env var points, its size and official count."""

    env: str
    side: int
    count: int
    layout: str  # what the folder must hold, for messages


FOLDER_DATASETS = {
    "ffhq256": FolderSpec(
        "FRUGALDIFF_FFHQ_DIR",
        256,
        70_000,
        "the 70,000 FFHQ PNGs (images1024x1024/ of NVlabs/ffhq-dataset, any sub-folders)",
    ),
    "metfaces256": FolderSpec(
        "FRUGALDIFF_METFACES_DIR",
        256,
        1_336,
        "the 1,336 MetFaces PNGs (images/ of NVlabs/metfaces-dataset)",
    ),
}


def centre_crop(image: Image.Image, side: int) -> np.ndarray:
    """ADM's centre crop of one image -> uint8 (3, side, side) RGB."""
    image = image.convert("RGB")
    while min(image.size) >= 2 * side:
        image = image.resize(tuple(s // 2 for s in image.size), resample=Image.Resampling.BOX)
    scale = side / min(image.size)
    size = tuple(round(s * scale) for s in image.size)
    image = image.resize(size, resample=Image.Resampling.BICUBIC)
    pixels = np.asarray(image)  # (H, W, 3)
    top, left = (pixels.shape[0] - side) // 2, (pixels.shape[1] - side) // 2
    return pixels[top : top + side, left : left + side].transpose(2, 0, 1)  # (3, side, side)


def locate_folder(cfg: DataConfig, spec: FolderSpec) -> Path:
    """The env var's folder, else data.archive's; DataError saying what to put there."""
    for origin, value in ((spec.env, os.environ.get(spec.env)), ("data.archive", cfg.archive)):
        if value:
            path = Path(value).expanduser()
            if not path.is_dir():
                raise DataError(f"{origin}={value!r}: no such folder; expected {spec.layout}")
            return path
    raise DataError(
        f"data.dataset={cfg.dataset} needs a local folder: set data.archive or {spec.env} to "
        f"a folder holding {spec.layout}"
    )


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder` (recursive), in sorted relative-path order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


def listing_md5(folder: Path, files: list[Path]) -> str:
    """md5 of the sorted 'relative-path size' lines: a cheap fingerprint of the folder."""
    lines = (f"{p.relative_to(folder).as_posix()} {p.stat().st_size}" for p in files)
    return hashlib.md5("\n".join(lines).encode()).hexdigest()


def prepare_image_folder(
    cfg: DataConfig,
    train_out: Path,
    test_out: Path,
    meta_out: Path,
    expected_count: int | None = None,
) -> dict[str, object]:
    """Centre-crop the folder into train.npz, a train prefix into test.npz, then meta.json."""
    spec = FOLDER_DATASETS[cfg.dataset]
    expected = spec.count if expected_count is None else expected_count
    for target in (train_out, test_out, meta_out):
        ensure_writable_dir(target.parent)
    folder = locate_folder(cfg, spec)
    files = list_images(folder)
    check_image_count(folder, len(files), expected, f"{', '.join(EXTENSIONS)} files", spec.layout)
    fingerprint = listing_md5(folder, files)
    if cfg.md5 and fingerprint not in cfg.md5:
        raise DataError(f"{folder}: listing md5 {fingerprint} not in data.md5 {list(cfg.md5)}")
    n_train = len(files) if cfg.train_images is None else cfg.train_images
    n_test = DEFAULT_TEST_IMAGES if cfg.test_images is None else cfg.test_images
    if n_train > len(files):
        raise DataError(f"data.train_images={n_train} but {folder} has {len(files)} images")
    images = np.empty((n_train, 3, spec.side, spec.side), dtype=np.uint8)  # (N, 3, S, S)
    for i, path in enumerate(files[:n_train]):
        try:
            with Image.open(path) as image:
                images[i] = centre_crop(image, spec.side)
        except OSError as err:
            raise DataError(f"{path}: unreadable image ({err})") from err
    labels = np.zeros(n_train, dtype=np.int64)  # unconditional: one class
    n_test = min(n_test, n_train)
    write_npz(train_out, images=images, labels=labels)
    write_npz(test_out, images=images[:n_test], labels=labels[:n_test])
    meta: dict[str, object] = {
        "dataset": cfg.dataset,
        "archive": str(folder),
        "archive_md5": fingerprint,  # of the listing, not the bytes (none are published)
        "train_images": n_train,
        "test_images": n_test,
        "test_split": f"the first {n_test} training images (no official test split)",
        "crop": f"ADM centre crop to {spec.side}",
    }
    write_json(meta_out, meta)
    log.info("%s: %d images -> %s", cfg.dataset, n_train, train_out)
    return meta
