"""Provenance recorded beside every metric and artifact: what code, config and packages made it.

A number without its commit, config hash and package versions cannot be compared with another;
every metrics file carries this block (issue 3, item 8).
"""

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("frugaldiff", "torch", "torch-fidelity", "clean-fid", "numpy", "scipy", "snakemake")


def sha256_file(path: Path | str, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def md5_file(path: Path | str, chunk_bytes: int = 1 << 20) -> str:
    """Hex md5 of a file (the checksum CIFAR-10's publishers give)."""
    digest = hashlib.md5()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def config_hash(config: Any) -> str:
    """Short sha256 of a JSON-serialisable config, independent of key order."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_commit(cwd: Path | None = None) -> str:
    """The current commit (with '-dirty' if the tree has changes), or 'unknown' outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a number."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(**extra: Any) -> dict[str, Any]:
    """The common provenance block, plus caller-specific fields (seeds, NFE, wall time...)."""
    return {"git_commit": git_commit(), "packages": package_versions(), **extra}
