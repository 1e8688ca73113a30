"""CIFAR-10 archive handling: md5 checks, truncation, splits; deterministic batches."""

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from frugaldiff.config import DataConfig
from frugaldiff.data.cifar10 import ARCHIVE_ENV, prepare_cifar10, read_archive, verify_md5
from frugaldiff.data.loader import BatchSchedule, ImageDataset
from frugaldiff.errors import DataError, FrugaldiffError

MINI_MD5 = "86f20ebe29323deaf46b1964d8ee1a97"


def prepare(cfg: DataConfig, tmp_path: Path) -> dict[str, object]:
    out = tmp_path / "out"
    return prepare_cifar10(
        cfg, out / "train.npz", out / "test.npz", out / "meta.json", tmp_path / "dl"
    )


def test_mini_archive_splits(mini_archive: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    cfg = DataConfig(archive=str(mini_archive), md5=(MINI_MD5,), download=False, train_images=100)
    meta = prepare(cfg, tmp_path)
    assert meta["archive_md5"] == MINI_MD5
    train = ImageDataset.load(tmp_path / "out" / "train.npz")
    test = ImageDataset.load(tmp_path / "out" / "test.npz")
    assert train.images.shape == (100, 3, 32, 32)
    assert test.images.shape == (1017, 3, 32, 32)
    assert train.images.dtype == np.uint8
    assert set(np.unique(test.labels)) == set(range(10))
    assert (tmp_path / "out" / "meta.json").is_file()


def test_md5_mismatch_names_file_and_checksums(mini_archive: Path) -> None:
    with pytest.raises(DataError) as err:
        verify_md5(mini_archive, ("0" * 32,))
    assert str(mini_archive) in str(err.value)
    assert "0" * 32 in str(err.value)
    assert MINI_MD5 in str(err.value)


def test_truncated_archive_fails_clearly(mini_archive: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(mini_archive.read_bytes()[:2_000_000])
    with pytest.raises(DataError, match="unreadable or truncated"):
        read_archive(cut)


def test_not_a_cifar_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar.gz"
    with gzip.open(bogus, "wb") as handle:
        handle.write(b"hello")
    with pytest.raises(DataError):
        read_archive(bogus)


def test_missing_archive_path_is_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    cfg = DataConfig(archive=str(tmp_path / "nope.tar.gz"), download=False)
    with pytest.raises(DataError, match=r"data\.archive=.*nope\.tar\.gz"):
        prepare(cfg, tmp_path)


def test_env_var_overrides_config(mini_archive: Path, tmp_path: Path, monkeypatch) -> None:
    copy = tmp_path / "elsewhere.tar.gz"
    shutil.copyfile(mini_archive, copy)
    monkeypatch.setenv(ARCHIVE_ENV, str(copy))
    cfg = DataConfig(
        archive="/nonexistent.tar.gz", md5=(MINI_MD5,), train_images=10, test_images=10
    )
    meta = prepare(cfg, tmp_path)
    assert meta["archive"] == str(copy)


def test_wrong_md5_writes_nothing(mini_archive: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    cfg = DataConfig(archive=str(mini_archive), md5=("f" * 32,))
    with pytest.raises(DataError):
        prepare(cfg, tmp_path)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_batches_are_a_function_of_seed_and_iteration(tiny_dataset: Path) -> None:
    data = ImageDataset.load(tiny_dataset)
    a = BatchSchedule(data, batch_size=24, seed=3, hflip=True)
    b = BatchSchedule(data, batch_size=24, seed=3, hflip=True)
    for it in (5, 0, 2):  # any order
        xa, ya = a.batch(it)
        xb, yb = b.batch(it)
        assert torch.equal(xa, xb)
        assert torch.equal(ya, yb)
    assert xa.min() >= -1
    assert xa.max() <= 1


def test_an_epoch_visits_every_image_once(tiny_dataset: Path) -> None:
    data = ImageDataset.load(tiny_dataset)
    sched = BatchSchedule(data, batch_size=16, seed=0, hflip=False)
    seen = torch.cat([sched.indices(i) for i in range(4)])  # 4 * 16 = 64 = one epoch
    assert sorted(seen.tolist()) == list(range(64))
    assert not torch.equal(sched.indices(4), sched.indices(0))  # next epoch reshuffled


def test_wrong_image_dtype_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((4, 3, 8, 8), np.float32), labels=np.zeros(4, np.int64))
    with pytest.raises(DataError, match="uint8"):
        ImageDataset.load(path)


def test_unwritable_results_dir_fails_before_work(mini_archive: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cfg = DataConfig(archive=str(mini_archive), md5=(MINI_MD5,), train_images=10, test_images=10)
    out = blocker / "data"  # a directory cannot be made under a file, even as root
    with pytest.raises(FrugaldiffError, match="cannot create output directory"):
        prepare_cifar10(cfg, out / "train.npz", out / "test.npz", out / "meta.json", tmp_path)


def test_resolution_area_downsamples_both_splits(
    mini_archive: Path, tmp_path: Path, monkeypatch
) -> None:
    """data.resolution 16: each pixel is the rounded mean of its 2×2 block of the 32² image."""
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    base = DataConfig(archive=str(mini_archive), md5=(MINI_MD5,), download=False, train_images=8)
    meta = prepare(DataConfig(**{**base.__dict__, "resolution": 16}), tmp_path / "r16")
    native = prepare(base, tmp_path / "r32")
    assert (meta["resolution"], native["resolution"]) == (16, 32)
    for split in ("train", "test"):
        small = ImageDataset.load(tmp_path / "r16" / "out" / f"{split}.npz").images
        full = ImageDataset.load(tmp_path / "r32" / "out" / f"{split}.npz").images
        assert small.shape == (len(full), 3, 16, 16)
        assert small.dtype == np.uint8
        i = 3  # one image by hand: block (y, x) of 2×2 pixels
        block = full[i, :, 2 * 5 : 2 * 5 + 2, 2 * 7 : 2 * 7 + 2].astype(float)
        expected = np.rint(block.mean(axis=(1, 2)))
        np.testing.assert_array_equal(small[i, :, 5, 7], expected)


def test_resolution_must_divide_the_image_side() -> None:
    from frugaldiff.data.images import area_downsample

    images = np.zeros((2, 3, 32, 32), dtype=np.uint8)
    with pytest.raises(DataError, match=r"data.resolution=12; expected a divisor"):
        area_downsample(images, 12, "x.npz")
