"""Integration fixtures: the CIFAR-10 mini archive read in place, one Inception cache, a checkpoint.

The archive sits in ../shared beside the repository (docs/evaluation.md (c)); train is
data_batch_1..5 concatenated in file order, test is test_batch; rows are channel-planar.
"""

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from frugaldiff.config import to_dict
from frugaldiff.evaluate.features import InceptionFeatures
from frugaldiff.provenance import md5_file
from frugaldiff.train.loop import Trainer

MINI_ARCHIVE = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar-10-mini-python.tar.gz"
)
MINI_ARCHIVE_MD5 = "86f20ebe29323deaf46b1964d8ee1a97"  # docs/evaluation.md (c)
TRAIN_MEMBERS = [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
TEST_MEMBERS = ["cifar-10-batches-py/test_batch"]


def read_mini_archive(path: Path) -> dict[str, np.ndarray]:
    """The mini archive's splits as uint8 (N, 3, 32, 32) RGB arrays."""
    splits: dict[str, np.ndarray] = {}
    with tarfile.open(path, "r:gz") as archive:
        for split, members in (("train", TRAIN_MEMBERS), ("test", TEST_MEMBERS)):
            rows = []
            for member in members:
                handle = archive.extractfile(member)
                assert handle is not None, f"{path}: {member} is not a file"
                batch = pickle.load(handle, encoding="bytes")
                rows.append(np.asarray(batch[b"data"], dtype=np.uint8))  # (n, 3072)
            splits[split] = np.concatenate(rows).reshape(-1, 3, 32, 32)  # (N, 3, 32, 32)
    return splits


@pytest.fixture(scope="session")
def mini_splits() -> dict[str, np.ndarray]:
    assert md5_file(MINI_ARCHIVE) == MINI_ARCHIVE_MD5, f"{MINI_ARCHIVE}: md5 mismatch"
    return read_mini_archive(MINI_ARCHIVE)


@pytest.fixture(scope="session")
def inception_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One converted-weights cache for the whole session (conversion takes a few seconds)."""
    return tmp_path_factory.mktemp("inception-cache")


@pytest.fixture(scope="session")
def inception(inception_cache: Path) -> InceptionFeatures:
    return InceptionFeatures(inception_cache, device="cpu", batch_size=16)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-iteration unet-tiny checkpoint with non-trivial EMA weights, and its config.yaml."""
    from .test_train import tiny_run

    tmp = tmp_path_factory.mktemp("ckpt")
    rng = np.random.default_rng(0)
    data = tmp / "train.npz"
    np.savez(
        data, images=rng.integers(0, 256, (32, 3, 8, 8), dtype=np.uint8), labels=np.arange(32) % 10
    )
    cfg = tiny_run(iterations=4, ckpt_iters=(4,))
    trainer = Trainer.for_run(cfg, data, tmp / "state")
    for _ in trainer.steps():
        pass
    with torch.no_grad():  # make the zero-initialised output layer non-trivial
        for p in trainer.ema.module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    trainer.publish({4: tmp / "iter4.pt"}, tmp / "metrics.jsonl", tmp / "summary.json")
    (tmp / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    return tmp / "iter4.pt"
