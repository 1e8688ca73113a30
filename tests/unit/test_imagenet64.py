"""ImageNet 64×64 loader on a tiny synthetic copy of the official npz layout."""

from pathlib import Path

import numpy as np
import pytest

from frugaldiff.config import DataConfig
from frugaldiff.data.imagenet64 import DIR_ENV, prepare_imagenet64
from frugaldiff.data.prepare import prepare_dataset
from frugaldiff.errors import DataError

PER_BATCH = 3


def official_rows(images: np.ndarray) -> np.ndarray:
    """(n, 3, 64, 64) -> (n, 12288) channel-planar rows, as the official files store them."""
    return images.reshape(len(images), -1)


def fake_archive(root: Path) -> dict[str, np.ndarray]:
    """10 train batches split over the two part folders, one val file; returns the truth."""
    rng = np.random.default_rng(0)
    truth = {"train": [], "train_labels": [], "test": None, "test_labels": None}
    for k in range(1, 11):
        part = root / ("Imagenet64_train_part1_npz" if k <= 5 else "Imagenet64_train_part2_npz")
        part.mkdir(parents=True, exist_ok=True)
        images = rng.integers(0, 256, size=(PER_BATCH, 3, 64, 64), dtype=np.uint8)
        labels = rng.integers(1, 1001, size=PER_BATCH)  # 1-based, as published
        np.savez(part / f"train_data_batch_{k}.npz", data=official_rows(images), labels=labels)
        truth["train"].append(images)
        truth["train_labels"].append(labels - 1)
    val = root / "Imagenet64_val_npz"
    val.mkdir()
    images = rng.integers(0, 256, size=(4, 3, 64, 64), dtype=np.uint8)
    labels = np.array([1, 1000, 5, 7])
    np.savez(val / "val_data.npz", data=official_rows(images), labels=labels)
    return {
        "train": np.concatenate(truth["train"]),
        "train_labels": np.concatenate(truth["train_labels"]),
        "test": images,
        "test_labels": labels - 1,
    }


COUNTS = {"train": 10 * PER_BATCH, "test": 4}


def prepare(cfg: DataConfig, out: Path) -> dict[str, object]:
    return prepare_imagenet64(
        cfg, out / "train.npz", out / "test.npz", out / "meta.json", expected_counts=COUNTS
    )


def test_batches_read_in_numeric_order_with_zero_based_labels(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(DIR_ENV, raising=False)
    truth = fake_archive(tmp_path / "in64")
    out = tmp_path / "out"
    meta = prepare(DataConfig(dataset="imagenet64", archive=str(tmp_path / "in64"), md5=()), out)
    train, test = np.load(out / "train.npz"), np.load(out / "test.npz")
    # Batch 10 after batch 9 (not after batch 1, as a text sort would put it).
    assert np.array_equal(train["images"], truth["train"])
    assert np.array_equal(train["labels"], truth["train_labels"])
    assert np.array_equal(test["images"], truth["test"])
    assert test["labels"].tolist() == [0, 999, 4, 6]
    assert meta["train_images"] == 30
    assert len(meta["file_md5"]) == 11
    assert (out / "meta.json").is_file()


def test_missing_batch_and_wrong_count_are_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(DIR_ENV, raising=False)
    fake_archive(tmp_path / "in64")
    cfg = DataConfig(dataset="imagenet64", archive=str(tmp_path / "in64"), md5=())
    with pytest.raises(DataError, match="expected 33"):
        prepare_imagenet64(
            cfg,
            tmp_path / "a.npz",
            tmp_path / "b.npz",
            tmp_path / "m.json",
            expected_counts={"train": 33, "test": 4},
        )
    (tmp_path / "in64" / "Imagenet64_train_part2_npz" / "train_data_batch_7.npz").unlink()
    with pytest.raises(DataError, match=r"found train batches \[1, 2, 3, 4, 5, 6, 8, 9, 10\]"):
        prepare(cfg, tmp_path / "out")
    assert not (tmp_path / "out" / "train.npz").exists()


def test_md5_listed_in_config_is_checked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(DIR_ENV, raising=False)
    fake_archive(tmp_path / "in64")
    cfg = DataConfig(dataset="imagenet64", archive=str(tmp_path / "in64"), md5=("0" * 32,))
    with pytest.raises(DataError, match=r"not in data\.md5"):
        prepare(cfg, tmp_path / "out")


def test_no_folder_names_the_key_and_the_layout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(DIR_ENV, raising=False)
    with pytest.raises(DataError, match=r"set data\.archive or FRUGALDIFF_IMAGENET64_DIR") as err:
        prepare(DataConfig(dataset="imagenet64", archive=None, md5=()), tmp_path)
    assert "Imagenet64_val_npz/val_data.npz" in str(err.value)


def test_unknown_datasets_fail_naming_the_key_and_the_choices(tmp_path: Path) -> None:
    cfg = DataConfig(dataset="imagenet21k", archive="/data/ilsvrc")
    with pytest.raises(DataError, match=r"dataset='imagenet21k'; expected one of .*'imagenet256'"):
        prepare_dataset(cfg, tmp_path / "a", tmp_path / "b", tmp_path / "c", tmp_path)
