"""A learned-variance DiT end to end: a few training steps, then ancestral `learned` samples."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from frugaldiff.config import (
    DiffusionConfig,
    ModelConfig,
    SampleSetConfig,
    TimestepConfig,
    WeightingConfig,
)
from frugaldiff.errors import ConfigError
from frugaldiff.sampling.generate import SampleRequest, SampleSetDrawer, generate_samples
from frugaldiff.train.loop import Trainer

from .test_train import tiny_run

SPEED = DiffusionConfig(
    "linear_beta", "eps", TimestepConfig("speed"), WeightingConfig("change_aware"), 0.1
)


def test_learned_sigma_trains_and_samples(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = dataclasses.replace(
        tiny_run(iterations=3, ckpt_iters=(3,)),
        model=ModelConfig("dit-tiny"),
        diffusion=dataclasses.replace(SPEED, learn_sigma=True),
    )
    trainer = Trainer.for_run(cfg, tiny_dataset, tmp_path / "state")
    assert trainer.model.cfg.out_channels == 6  # ε and v channels (DiTConfig.learn_sigma)
    losses = [record.loss for record in trainer.steps()]
    assert len(losses) == 3
    assert all(np.isfinite(losses))
    ckpt = tmp_path / "iter3.pt"
    trainer.publish({3: ckpt}, tmp_path / "m.jsonl", tmp_path / "s.json")

    metas = {}
    for solver, variance, w in (("ancestral", "learned", 1.0), ("ddim", None, 0.0)):
        sample_set = SampleSetConfig(solver, 4, w, variance=variance)
        request = SampleRequest(ckpt, sample_set, 6, 0, 6, "cpu")
        metas[solver] = generate_samples(request, tmp_path / f"{solver}.npz", tmp_path / "g.png")
        images = np.load(tmp_path / f"{solver}.npz")["images"]
        assert images.shape == (6, 3, 8, 8)
        assert images.dtype == np.uint8
    assert metas["ancestral"]["nfe_per_image"] == 8  # guided: 2 passes a step, v included
    assert metas["ancestral"]["variance"] == "learned"
    assert metas["ddim"]["nfe_per_image"] == 4  # DDIM ignores the v channels


def test_learned_variance_of_a_fixed_variance_checkpoint_is_an_error(checkpoint: Path) -> None:
    sample_set = SampleSetConfig("ancestral", 4, 0.0, variance="learned")
    with pytest.raises(ConfigError, match=r"iter4\.pt: .*learned.*diffusion\.learn_sigma"):
        SampleSetDrawer(SampleRequest(checkpoint, sample_set, 2, 0, 2, "cpu"))
