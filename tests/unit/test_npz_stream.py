"""Streamed .npz files equal np.savez's, memory maps equal np.load, short writes leave nothing."""

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from frugaldiff.errors import DataError
from frugaldiff.io import read_npz
from frugaldiff.npz_mmap import LOCAL_HEADER, member_view
from frugaldiff.npz_stream import stream_npz

ZIP64_EXTRA_ID = 0x0001


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "images": rng.integers(0, 256, size=(11, 3, 4, 5), dtype=np.uint8),  # (N, 3, H, W)
        "mean": rng.standard_normal((11, 2, 3)).astype(np.float32),
        "labels": rng.integers(0, 1000, size=11),
        "provenance": np.array('{"format": 1}'),
    }


def write_chunked(path: Path, arrays: dict[str, np.ndarray], chunk: int) -> None:
    """images streamed and mean spooled, interleaved chunk by chunk; the rest whole."""
    images, mean = arrays["images"], arrays["mean"]
    with stream_npz(path) as npz:
        spooled = npz.spool("mean", mean.shape, mean.dtype)
        with npz.rows("images", images.shape, images.dtype) as rows:
            for start in range(0, len(images), chunk):
                rows.write(images[start : start + chunk])
                spooled.write(mean[start : start + chunk])
        npz.add("labels", arrays["labels"])
        npz.add("provenance", arrays["provenance"])


def local_extra(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as zf, path.open("rb") as fp:
        fp.seek(zf.getinfo(name).header_offset)
        *_, name_length, extra_length = LOCAL_HEADER.unpack(fp.read(LOCAL_HEADER.size))
        return fp.read(name_length + extra_length)[name_length:]


@pytest.mark.parametrize("chunk", [1, 4, 11])
def test_chunked_writes_equal_savez_member_by_member(tmp_path: Path, arrays, chunk: int) -> None:
    write_chunked(tmp_path / "streamed.npz", arrays, chunk)
    np.savez(tmp_path / "savez.npz", **arrays)
    with np.load(tmp_path / "streamed.npz") as streamed:
        assert sorted(streamed.files) == sorted(arrays)
        for key, value in arrays.items():
            assert streamed[key].dtype == value.dtype
            np.testing.assert_array_equal(streamed[key], value)
    with (
        zipfile.ZipFile(tmp_path / "streamed.npz") as a,
        zipfile.ZipFile(tmp_path / "savez.npz") as b,
    ):
        for key in arrays:  # the same .npy bytes (header padding included) as numpy writes
            assert a.read(f"{key}.npy") == b.read(f"{key}.npy")
            assert a.getinfo(f"{key}.npy").compress_type == zipfile.ZIP_STORED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["savez.npz", "streamed.npz"]


def test_members_carry_zip64_local_headers_and_map_at_the_right_offset(tmp_path: Path, arrays):
    path = tmp_path / "streamed.npz"
    write_chunked(path, arrays, 3)
    extra = local_extra(path, "images.npy")
    header_id, _ = struct.unpack("<2H", extra[:4])
    assert header_id == ZIP64_EXTRA_ID  # forced even for a small file, as np.savez does
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("images.npy").extra != extra  # central != local: offsets use local
        view = member_view(path, zf, "images.npy")
    assert isinstance(view, np.memmap)
    np.testing.assert_array_equal(view, arrays["images"])


@pytest.mark.parametrize("writer", ["streamed", "savez", "savez_fortran"])
def test_mmap_views_equal_np_load_and_are_read_only(tmp_path: Path, arrays, writer: str) -> None:
    path = tmp_path / "data.npz"
    if writer == "streamed":
        write_chunked(path, arrays, 5)
    else:
        order = "F" if writer == "savez_fortran" else "C"
        np.savez(path, **{k: np.asarray(v, order=order) for k, v in arrays.items()})
    mapped, loaded = read_npz(path, mmap=True), read_npz(path)
    assert sorted(mapped) == sorted(loaded) == sorted(arrays)
    for key in ("images", "mean", "labels"):
        assert isinstance(mapped[key], np.memmap)
        assert not mapped[key].flags.writeable
        assert mapped[key].dtype == loaded[key].dtype
        np.testing.assert_array_equal(mapped[key], loaded[key])
        index = np.array([3, 0, 3])
        assert type(mapped[key][index]) is np.ndarray  # fancy indexing copies into memory
        np.testing.assert_array_equal(mapped[key][index], loaded[key][index])
    assert str(mapped["provenance"]) == '{"format": 1}'  # 0-d: loaded, not mapped


def test_compressed_and_empty_members_fall_back_to_a_normal_load(tmp_path: Path, arrays) -> None:
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, images=arrays["images"], empty=np.zeros((0, 3), np.float32))
    mapped = read_npz(path, "images", "empty", mmap=True)
    assert not isinstance(mapped["images"], np.memmap)
    np.testing.assert_array_equal(mapped["images"], arrays["images"])
    assert mapped["empty"].shape == (0, 3)


def test_read_npz_mmap_names_the_missing_key(tmp_path: Path, arrays) -> None:
    path = tmp_path / "data.npz"
    write_chunked(path, arrays, 4)
    with pytest.raises(DataError, match=r"data\.npz: missing arrays \['std'\]"):
        read_npz(path, "mean", "std", mmap=True)


def write_short(target: Path, images: np.ndarray, spooled: bool) -> None:
    """Declare len(images) rows, write one fewer."""
    with stream_npz(target) as npz:
        if spooled:
            npz.spool("images", images.shape, images.dtype).write(images[:-1])
        else:
            with npz.rows("images", images.shape, images.dtype) as rows:
                rows.write(images[:-1])


@pytest.mark.parametrize("spooled", [False, True])
def test_short_write_is_an_error_and_leaves_no_file(tmp_path: Path, arrays, spooled: bool) -> None:
    target = tmp_path / "train.npz"
    with pytest.raises(
        DataError, match=r"train\.npz: array 'images': 10 rows written, declared 11"
    ):
        write_short(target, arrays["images"], spooled)
    assert list(tmp_path.iterdir()) == []  # no target, no temp file, no spool


def test_bad_chunks_and_repeated_keys_are_errors(tmp_path: Path, arrays) -> None:
    images = arrays["images"]
    with stream_npz(tmp_path / "a.npz") as npz, npz.rows("images", images.shape, np.uint8) as rows:
        with pytest.raises(DataError, match=r"chunk float32 .* expected uint8 \(n, 3, 4, 5\)"):
            rows.write(images.astype(np.float32))
        with pytest.raises(DataError, match="12 rows written, more than the declared 11"):
            rows.write(np.concatenate([images, images[:1]]))
        rows.write(images)
    with stream_npz(tmp_path / "b.npz") as npz:
        npz.add("labels", arrays["labels"])
        with pytest.raises(DataError, match=r"b\.npz: array 'labels' written twice"):
            npz.spool("labels", (11,), np.int64)
        with pytest.raises(DataError, match="array 'labels' written twice"):
            npz.add("labels", arrays["labels"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz"]
    np.testing.assert_array_equal(np.load(tmp_path / "b.npz")["labels"], arrays["labels"])
