"""Resumable sample sets: every batch is a shard on disk, so a preempted job redoes one batch.

Shards live in an undeclared folder beside the declared images.npz (Snakemake deletes a failed
job's declared outputs, not this). A manifest holds the request's fingerprint (checkpoint
identity, sample set, seed, batch size); shards made by another request are discarded, never
mixed in. Because image i depends only on (seed, i), a resumed set equals an uninterrupted one.
"""

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from frugaldiff.io import atomic_write, read_npz, write_npz

log = logging.getLogger(__name__)


class ShardStore:
    """Batches of one sample set, keyed by their image index range."""

    def __init__(self, directory: Path, fingerprint: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        manifest = self.directory / "manifest.json"
        if manifest.is_file() and json.loads(manifest.read_text()) != fingerprint:
            log.warning("%s: shards of another request; discarding them", self.directory)
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if not manifest.is_file():
            with atomic_write(manifest) as tmp:
                tmp.write_text(json.dumps(fingerprint, indent=1, sort_keys=True))

    def path(self, index: range) -> Path:
        return self.directory / f"shard-{index.start:07d}-{index.stop:07d}.npz"

    def load(self, index: range) -> tuple[np.ndarray, np.ndarray, int, float] | None:
        """(images, labels, network rows, seconds) of a finished shard, or None."""
        path = self.path(index)
        if not path.is_file():
            return None
        arrays = read_npz(path, "images", "labels", "rows", "seconds")
        return arrays["images"], arrays["labels"], int(arrays["rows"]), float(arrays["seconds"])

    def save(
        self, index: range, images: np.ndarray, labels: np.ndarray, rows: int, seconds: float
    ) -> None:
        write_npz(
            self.path(index),
            images=images,
            labels=labels,
            rows=np.asarray(rows),
            seconds=np.asarray(seconds),
        )

    def remove(self) -> None:
        """Drop the shards once the assembled set is published (they duplicate it)."""
        shutil.rmtree(self.directory, ignore_errors=True)
