"""Atomic file writes and small readers.

Every artifact is written to a temporary file beside its target and renamed into place, so a
killed job never leaves a half-written file under a final name (DESIGN.md, reliability rules).
"""

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from frugaldiff.errors import DataError, FrugaldiffError
from frugaldiff.npz_mmap import mapped_arrays


def ensure_writable_dir(directory: Path) -> None:
    """Create `directory` (and parents) or fail naming it, before any work is done."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FrugaldiffError(f"cannot create output directory {directory}: {err}") from err
    if not os.access(directory, os.W_OK):
        raise FrugaldiffError(f"output directory {directory} is not writable")


@contextlib.contextmanager
def atomic_write(target: Path | str, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside `target`; rename it onto `target` only if the block succeeds.

    `suffix` defaults to the target's own suffix, because some writers (np.savez, PIL, torch)
    pick their format or append an extension from the file name.
    """
    target = Path(target)
    ensure_writable_dir(target.parent)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.",
        suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.replace(target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(target: Path | str, payload: Any) -> None:
    """Write `payload` as indented, key-sorted JSON, atomically."""
    with atomic_write(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path | str) -> Any:
    """Read a JSON file, failing with the path if it is missing or malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err


def write_yaml(target: Path | str, payload: Any) -> None:
    """Write `payload` as block-style YAML, atomically."""
    with atomic_write(target) as tmp:
        tmp.write_text(yaml.safe_dump(payload, sort_keys=False))


def write_npz(target: Path | str, **arrays: np.ndarray) -> None:
    """Write arrays into an uncompressed .npz, atomically."""
    with atomic_write(target, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def read_npz(path: Path | str, *keys: str, mmap: bool = False) -> dict[str, np.ndarray]:
    """Read named arrays (all if none named) from an .npz, failing with the path and the key.

    `mmap=True` returns read-only memory maps of uncompressed members (npz_mmap.py), so a split
    larger than RAM can be indexed batch by batch; other members are loaded as usual.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}; found {sorted(data.files)}")
            wanted = list(keys or data.files)
            if not mmap:
                return {k: data[k] for k in wanted}
        return mapped_arrays(path, wanted)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: unreadable .npz ({err})") from err


def npz_keys(path: Path | str) -> list[str]:
    """Names of the arrays in an .npz, without reading them (to tell file kinds apart)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            return list(data.files)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable .npz ({err})") from err
