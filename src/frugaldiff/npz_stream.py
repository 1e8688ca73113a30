"""Write an .npz array by array, each in row chunks, so no split ever has to sit in RAM.

The file is what np.savez writes (uncompressed `<key>.npy` members, zip64 forced as numpy does),
so plain np.load reads it and npz_mmap.py maps it. A zip holds one open member at a time, so an
array whose rows arrive interleaved with another's (a VAE's posterior mean and std) is spooled
to a temporary .npy beside the target and copied in at the end. Each array's declared row count
is checked; the file appears under its name only once complete (io.atomic_write).
"""

import contextlib
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from frugaldiff.errors import DataError
from frugaldiff.io import atomic_write

COPY_CHUNK_BYTES = 64 * 2**20  # spool -> zip copy granularity


class ArrayRows:
    """One declared array (N, ...) of a fixed dtype, filled by `write` in row chunks."""

    def __init__(self, target: Path, key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        if len(shape) == 0:
            raise DataError(f"{target}: array {key!r} has no rows to stream; use NpzStream.add")
        self.target, self.key, self.shape, self.dtype = target, key, tuple(shape), np.dtype(dtype)
        self.rows = 0

    def write(self, chunk: np.ndarray) -> None:
        """Append rows (n, *shape[1:]) of exactly the declared dtype (no silent casts)."""
        chunk = np.asarray(chunk)
        if chunk.dtype != self.dtype or chunk.shape[1:] != self.shape[1:] or chunk.ndim == 0:
            raise DataError(
                f"{self.target}: array {self.key!r}: chunk {chunk.dtype} {chunk.shape}; "
                f"expected {self.dtype} (n, {', '.join(map(str, self.shape[1:]))})"
            )
        if self.rows + len(chunk) > self.shape[0]:
            raise DataError(
                f"{self.target}: array {self.key!r}: {self.rows + len(chunk)} rows written, "
                f"more than the declared {self.shape[0]}"
            )
        if len(chunk):
            self._put(np.ascontiguousarray(chunk))
        self.rows += len(chunk)

    def check_complete(self) -> None:
        if self.rows != self.shape[0]:
            raise DataError(
                f"{self.target}: array {self.key!r}: {self.rows} rows written, declared "
                f"{self.shape[0]}; the file is not written"
            )

    def _put(self, chunk: np.ndarray) -> None:
        raise NotImplementedError


class StreamedRows(ArrayRows):
    """Rows written straight into the open zip member, after its .npy header."""

    def __init__(self, target: Path, key: str, shape: tuple[int, ...], dtype: np.dtype, fp: IO):
        super().__init__(target, key, shape, dtype)
        self.fp = fp
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False}
        np.lib.format.write_array_header_1_0(fp, {**header, "shape": self.shape})

    def _put(self, chunk: np.ndarray) -> None:
        self.fp.write(memoryview(chunk).cast("B"))  # (n, ...) as raw C-order bytes


class SpooledRows(ArrayRows):
    """Rows written into a temporary .npy memory map, copied into the zip by NpzStream."""

    def __init__(self, target: Path, key: str, shape: tuple[int, ...], dtype: np.dtype):
        super().__init__(target, key, shape, dtype)
        fd, name = tempfile.mkstemp(
            prefix=f".{target.name}.{key}.", suffix=".npy", dir=target.parent
        )
        os.close(fd)  # open_memmap reopens it at the first write
        self.path = Path(name)
        self._map: np.memmap | None = None

    def _put(self, chunk: np.ndarray) -> None:
        if self._map is None:
            self._map = np.lib.format.open_memmap(self.path, "w+", self.dtype, self.shape)
        self._map[self.rows : self.rows + len(chunk)] = chunk

    def copy_into(self, stream: "NpzStream") -> None:
        """Check the row count, copy the spool into `stream` as member `key`, delete it."""
        try:
            self.check_complete()
            with stream.rows(self.key, self.shape, self.dtype) as out:
                if self._map is not None:  # None: zero rows
                    self._map.flush()
                    row_bytes = max(1, self.dtype.itemsize * int(np.prod(self.shape[1:])))
                    step = max(1, COPY_CHUNK_BYTES // row_bytes)
                    for start in range(0, self.shape[0], step):
                        out.write(self._map[start : start + step])
        finally:
            self.discard()

    def discard(self) -> None:
        self._map = None
        self.path.unlink(missing_ok=True)


class NpzStream:
    """The members of one .npz being written: streamed, spooled, or small whole arrays."""

    def __init__(self, zf: zipfile.ZipFile, target: Path) -> None:
        self.zf, self.target = zf, target
        self.spools: list[SpooledRows] = []
        self.keys: list[str] = []

    def _check_new(self, key: str) -> None:
        if key in self.keys or key in (s.key for s in self.spools):
            raise DataError(f"{self.target}: array {key!r} written twice")

    def _claim(self, key: str) -> str:
        self._check_new(key)
        self.keys.append(key)
        return f"{key}.npy"

    @contextlib.contextmanager
    def rows(self, key: str, shape: tuple[int, ...], dtype: np.dtype) -> Iterator[ArrayRows]:
        """Stream array `key` (shape, dtype) through `.write(chunk)`; complete at block end."""
        with self.zf.open(self._claim(key), "w", force_zip64=True) as fp:
            rows = StreamedRows(self.target, key, shape, dtype, fp)
            yield rows
            rows.check_complete()

    def spool(self, key: str, shape: tuple[int, ...], dtype: np.dtype) -> ArrayRows:
        """Like `rows`, but filled while another member is open; copied in when the file ends."""
        self._check_new(key)
        spooled = SpooledRows(self.target, key, shape, dtype)
        self.spools.append(spooled)
        return spooled

    def add(self, key: str, array: np.ndarray) -> None:
        """A small array written whole, exactly as np.savez writes it."""
        with self.zf.open(self._claim(key), "w", force_zip64=True) as fp:
            np.lib.format.write_array(fp, np.asanyarray(array), allow_pickle=False)


@contextlib.contextmanager
def stream_npz(target: Path | str) -> Iterator[NpzStream]:
    """Write the .npz `target` member by member; it exists only if the block completes."""
    target = Path(target)
    with atomic_write(target, suffix=".npz") as tmp:
        stream = None
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
                stream = NpzStream(zf, target)
                yield stream
                while stream.spools:
                    stream.spools.pop(0).copy_into(stream)
        finally:
            for spooled in stream.spools if stream else []:
                spooled.discard()
