"""Shared fixtures: the CIFAR-10 mini archive read in place from ../shared, tiny datasets."""

import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from frugaldiff import preemption

REPO = Path(__file__).resolve().parents[1]
MINI_ARCHIVE = REPO.parent / "shared" / "data" / "cifar-10-mini-python.tar.gz"
MINI_MD5 = "86f20ebe29323deaf46b1964d8ee1a97"


@pytest.fixture(autouse=True)
def _own_stop_signals() -> Iterator[None]:
    """Each test leaves SIGTERM/SIGUSR1 as it found them and no stop request pending.

    Tests that run `cli.main` in process get the CLI's preemption handler installed; without
    this the rest of the session would only record a SIGTERM (pytest could not be stopped) and
    a later test could see an earlier test's signal as its own.
    """
    previous = {sig: signal.getsignal(sig) for sig in preemption.SIGNALS}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    preemption.reset()


@pytest.fixture
def mini_archive() -> Path:
    """The CIFAR-10 mini subset (5,170 train / 1,017 test), never copied into the repo."""
    assert MINI_ARCHIVE.is_file(), f"expected the mini archive at {MINI_ARCHIVE}"
    return MINI_ARCHIVE


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """64 random 8x8 RGB images with labels 0..9 as a train.npz."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 3, 8, 8), dtype=np.uint8)
    labels = np.arange(64, dtype=np.int64) % 10
    path = tmp_path / "train.npz"
    np.savez(path, images=images, labels=labels)
    return path
