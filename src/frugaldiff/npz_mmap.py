"""Read-only memory maps of the arrays in an uncompressed .npz, for splits larger than RAM.

np.savez (and npz_stream.py) store each array as an uncompressed (ZIP_STORED) `<key>.npy`
member, so its bytes lie contiguously in the file: ZIP local header, .npy header, raw array.
np.memmap maps them at that offset; the page cache, not the process, then holds what a job
touches. ImageNet-256's train split is 252 GB as uint8 (N, 3, 256, 256): it can only be read so.
Members that cannot be mapped (compressed, object dtype, empty, 0-d) are loaded normally.
"""

import struct
import zipfile
from pathlib import Path

import numpy as np

from frugaldiff.errors import DataError

# ZIP local file header (APPNOTE 4.3.7): signature, versions, flags, sizes, then the lengths of
# the file name and the extra field, which precede the member's data.
LOCAL_HEADER = struct.Struct("<4s5H3I2H")
LOCAL_SIGNATURE = b"PK\x03\x04"
HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _data_start(path: Path, info: zipfile.ZipInfo) -> int:
    """File offset of a member's first data byte, from its local header (not the central one:
    the two extra fields may differ, e.g. zip64 sizes written only locally)."""
    with path.open("rb") as fp:
        fp.seek(info.header_offset)
        fields = LOCAL_HEADER.unpack(fp.read(LOCAL_HEADER.size))
    if fields[0] != LOCAL_SIGNATURE:
        raise DataError(f"{path}: member {info.filename}: bad local header at {info.header_offset}")
    name_length, extra_length = fields[-2:]
    return info.header_offset + LOCAL_HEADER.size + name_length + extra_length


def member_view(path: Path | str, zf: zipfile.ZipFile, name: str) -> np.ndarray | None:
    """A read-only np.memmap of member `name` (a .npy), or None where it cannot be mapped."""
    path = Path(path)
    info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:  # compressed, encrypted
        return None
    with zf.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in HEADER_READERS:
            return None
        shape, fortran_order, dtype = HEADER_READERS[version](member)
        npy_header_bytes = member.tell()
    if dtype.hasobject or len(shape) == 0 or 0 in shape:
        return None  # pickles, scalars (e.g. a provenance string) and empty arrays: tiny anyway
    offset = _data_start(path, info) + npy_header_bytes
    size = int(np.prod(shape)) * dtype.itemsize
    if offset + size > path.stat().st_size:
        raise DataError(f"{path}: member {name} needs {size} bytes at {offset}; file truncated")
    order = "F" if fortran_order else "C"
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)


def mapped_arrays(path: Path | str, keys: list[str]) -> dict[str, np.ndarray]:
    """Arrays `keys` of an .npz: memory maps where possible, else loaded (np.load semantics)."""
    path = Path(path)
    arrays = {}
    with zipfile.ZipFile(path) as zf, np.load(path, allow_pickle=False) as data:
        for key in keys:
            view = member_view(path, zf, f"{key}.npy")
            arrays[key] = view if view is not None else data[key]
    return arrays
