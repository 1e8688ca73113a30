"""Image-folder datasets (FFHQ, MetFaces): ADM centre crop, expected counts, clear errors."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from frugaldiff.config import DataConfig
from frugaldiff.data.image_folder import FOLDER_DATASETS, centre_crop, prepare_image_folder
from frugaldiff.errors import DataError

RED, BLUE = (255, 0, 0), (0, 0, 255)


def halves(width: int, height: int) -> Image.Image:
    """Left half red, right half blue."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2], pixels[:, width // 2 :] = RED, BLUE
    return Image.fromarray(pixels)


def test_centre_crop_keeps_the_middle_of_a_wide_image() -> None:
    crop = centre_crop(halves(512, 256), 256)  # short side already 256: no resize
    assert crop.shape == (3, 256, 256)
    assert crop.dtype == np.uint8
    assert tuple(crop[:, 10, 0]) == RED  # columns 128..383 of the original
    assert tuple(crop[:, 10, 255]) == BLUE
    assert tuple(crop[:, 10, 127]) == RED
    assert tuple(crop[:, 10, 128]) == BLUE


def test_centre_crop_halves_large_images_then_resizes() -> None:
    flat = Image.new("RGB", (1024, 1024), (10, 200, 30))
    assert np.all(centre_crop(flat, 256) == np.array([10, 200, 30])[:, None, None])
    assert centre_crop(Image.new("L", (300, 200), 7), 256).shape == (3, 256, 256)


def folder(root: Path, count: int) -> Path:
    (root / "00000").mkdir(parents=True)
    for i in range(count):
        Image.new("RGB", (512, 512), (i, 0, 0)).save(root / "00000" / f"{i:05d}.png")
    (root / "LICENSE.txt").write_text("not an image")
    return root


def test_prepare_writes_sorted_crops_and_a_train_prefix_as_test(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(FOLDER_DATASETS["ffhq256"].env, raising=False)
    root = folder(tmp_path / "ffhq", 3)
    cfg = DataConfig(dataset="ffhq256", archive=str(root), md5=(), test_images=2)
    out = tmp_path / "out"
    meta = prepare_image_folder(
        cfg, out / "train.npz", out / "test.npz", out / "meta.json", expected_count=3
    )
    train, test = np.load(out / "train.npz"), np.load(out / "test.npz")
    assert train["images"].shape == (3, 3, 256, 256)
    assert train["images"][:, 0, 0, 0].tolist() == [0, 1, 2]
    assert train["labels"].tolist() == [0, 0, 0]
    assert np.array_equal(test["images"], train["images"][:2])
    assert "no official test split" in str(meta["test_split"])


def test_wrong_count_and_missing_folder_are_clear_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(FOLDER_DATASETS["metfaces256"].env, raising=False)
    root = folder(tmp_path / "metfaces", 2)
    cfg = DataConfig(dataset="metfaces256", archive=str(root), md5=())
    with pytest.raises(DataError, match=r"2 images .* expected 1336"):
        prepare_image_folder(cfg, tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "m.json")
    with pytest.raises(DataError, match=r"set data\.archive or FRUGALDIFF_METFACES_DIR"):
        prepare_image_folder(
            DataConfig(dataset="metfaces256", archive=None, md5=()),
            tmp_path / "a.npz",
            tmp_path / "b.npz",
            tmp_path / "m.json",
        )
    assert not (tmp_path / "a.npz").exists()
