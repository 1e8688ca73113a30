"""Training loop: exact resume on CPU, NaN stops with the last good state, declared outputs."""

import dataclasses
from pathlib import Path

import pytest
import torch

from frugaldiff.config import (
    DataConfig,
    DiffusionConfig,
    EvaluationConfig,
    ModelConfig,
    RunConfig,
    SampleSetConfig,
    TrainConfig,
)
from frugaldiff.errors import CheckpointError, NumericsError
from frugaldiff.io import read_json
from frugaldiff.train.loop import Trainer
from frugaldiff.train.state import load_checkpoint, load_torch


def tiny_run(**train: object) -> RunConfig:
    train_cfg = TrainConfig(
        iterations=12,
        batch_size=8,
        lr=1e-3,
        warmup_iters=3,
        ema_decay=0.9,
        ckpt_iters=(6, 12),
        state_every_iters=4,
        log_every_iters=2,
        seed=5,
        device="cpu",
    )
    return RunConfig(
        name="tiny",
        tier="test",
        study="baseline",
        method="baseline",
        data=DataConfig(),
        model=ModelConfig(name="unet-tiny", dropout=0.1),  # dropout: its draws must resume too
        diffusion=DiffusionConfig(),
        train=dataclasses.replace(train_cfg, **train),
        evaluation=EvaluationConfig(),
        sample_sets=(SampleSetConfig(),),
    )


def run_to_end(cfg: RunConfig, data: Path, state: Path, stop_at: int | None = None) -> Trainer:
    trainer = Trainer.for_run(cfg, data, state)
    trainer.try_resume()
    for record in trainer.steps():
        if stop_at is not None and record.iteration == stop_at:
            break  # like a kill: whatever happened after the last state write is lost
    return trainer


def test_killed_and_resumed_run_is_bit_identical(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = tiny_run()
    straight = run_to_end(cfg, tiny_dataset, tmp_path / "a")
    run_to_end(cfg, tiny_dataset, tmp_path / "b", stop_at=10)  # last state at 8
    resumed = run_to_end(cfg, tiny_dataset, tmp_path / "b")
    assert resumed.iteration == straight.iteration == 12
    for (name, p1), p2 in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p1, p2), name
    for p1, p2 in zip(
        straight.ema.state_dict().values(), resumed.ema.state_dict().values(), strict=True
    ):
        assert torch.equal(p1, p2)
    lines_a = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    lines_b = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [ln.split('"lr"')[0] for ln in lines_a] == [ln.split('"lr"')[0] for ln in lines_b]


def test_training_reduces_loss_and_publishes(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = tiny_run(iterations=40, ckpt_iters=(20, 40), lr=3e-3)
    trainer = run_to_end(cfg, tiny_dataset, tmp_path / "state")
    ckpts = {k: tmp_path / "ckpt" / f"iter{k}.pt" for k in (20, 40)}
    trainer.publish(ckpts, tmp_path / "metrics.jsonl", tmp_path / "summary.json")
    summary = read_json(tmp_path / "summary.json")
    assert summary["images_per_second"] > 0
    assert summary["forward_flops_per_image"] > 0
    assert summary["parameters"] == sum(p.numel() for p in trainer.model.parameters())
    payload = load_checkpoint(ckpts[40])
    assert payload["iteration"] == 40
    assert payload["run_config"]["name"] == "tiny"
    ema_weights = payload["ema"]
    assert any(not torch.equal(ema_weights[k], payload["model"][k]) for k in ema_weights)
    losses = [
        float(ln.split('"loss": ')[1].split(",")[0])
        for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    assert sum(losses[-5:]) < sum(losses[:5])


def test_nan_loss_stops_and_keeps_last_good_state(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = tiny_run(iterations=8)
    trainer = Trainer.for_run(cfg, tiny_dataset, tmp_path / "state")
    steps = trainer.steps()
    for _ in range(4):
        next(steps)  # state written at iteration 4
    good = load_torch(trainer.state_path)
    with torch.no_grad():
        next(iter(trainer.model.parameters())).fill_(float("nan"))
    with pytest.raises(NumericsError, match="loss is nan at iteration 4"):
        next(steps)
    after = load_torch(trainer.state_path)
    assert after["iteration"] == good["iteration"] == 4
    assert all(torch.isfinite(v).all() for v in after["model"].values() if v.is_floating_point())


def test_state_from_another_config_is_not_resumed(tiny_dataset: Path, tmp_path: Path) -> None:
    run_to_end(tiny_run(), tiny_dataset, tmp_path / "s", stop_at=5)
    other = Trainer.for_run(tiny_run(lr=5e-4), tiny_dataset, tmp_path / "s")
    assert other.try_resume() is False
    assert other.iteration == 0


def test_missing_or_corrupt_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "iter5.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(bad)


def test_init_from_starts_at_the_earlier_runs_ema(tiny_dataset: Path, tmp_path: Path) -> None:
    first = run_to_end(tiny_run(iterations=6, ckpt_iters=(6,)), tiny_dataset, tmp_path / "a")
    first.publish({6: tmp_path / "iter6.pt"}, tmp_path / "m.jsonl", tmp_path / "s.json")
    follow = dataclasses.replace(tiny_run(seed=9), init_checkpoint=str(tmp_path / "iter6.pt"))
    trainer = Trainer.for_run(follow, tiny_dataset, tmp_path / "b")
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, first.ema.module.state_dict()[name]), name


def test_init_weights_resume_continues_weights_optimiser_and_ema(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    """MicroDiT fine-tuning: raw weights, AdamW moments and EMA go on; the lr schedule restarts."""
    first = run_to_end(tiny_run(iterations=6, ckpt_iters=(3, 6)), tiny_dataset, tmp_path / "a")
    ckpts = {3: tmp_path / "iter3.pt", 6: tmp_path / "iter6.pt"}
    first.publish(ckpts, tmp_path / "m.jsonl", tmp_path / "s.json")
    assert "optimizer" not in load_checkpoint(ckpts[3])  # only the last one carries it
    follow = dataclasses.replace(
        tiny_run(seed=9, lr=5e-4, warmup_iters=0, init_weights="resume"),
        init_from="tiny",
        init_checkpoint=str(ckpts[6]),
    )
    trainer = Trainer.for_run(follow, tiny_dataset, tmp_path / "b")
    raw, ema = first.model.state_dict(), first.ema.module.state_dict()
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, raw[name]), name
    for name, value in trainer.ema.module.state_dict().items():
        assert torch.equal(value, ema[name]), name
    assert int(trainer.ema.n_averaged) == int(first.ema.n_averaged) == 6
    saved = first.optimizer.state_dict()["state"]
    resumed = trainer.optimizer.state_dict()["state"]
    assert resumed.keys() == saved.keys()
    for key, moments in saved.items():
        assert torch.equal(resumed[key]["exp_avg_sq"], moments["exp_avg_sq"])
        assert float(resumed[key]["step"]) == 6
    (group,) = trainer.optimizer.param_groups
    assert group["lr"] == 5e-4  # this run's lr, at the first step of its own schedule
    record = next(iter(trainer.steps()))
    assert record.lr == 5e-4
    ema_only = dataclasses.replace(
        follow, train=dataclasses.replace(follow.train, init_weights="ema")
    )
    fresh = Trainer.for_run(ema_only, tiny_dataset, tmp_path / "c")
    assert fresh.optimizer.state_dict()["state"] == {}
    assert torch.equal(
        next(iter(fresh.model.parameters())), next(iter(first.ema.module.parameters()))
    )
    old = tmp_path / "old.pt"  # a checkpoint without optimiser state (earlier versions)
    payload = load_checkpoint(ckpts[6])
    del payload["optimizer"]
    torch.save(payload, old)
    with pytest.raises(CheckpointError, match="holds no optimiser state"):
        Trainer.for_run(
            dataclasses.replace(follow, init_checkpoint=str(old)), tiny_dataset, tmp_path / "d"
        )
