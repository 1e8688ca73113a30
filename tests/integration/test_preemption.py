"""Preemption safety on the CPU: a SIGTERM to a running job saves state, exits 3, and the rerun
resumes to exactly the result of an uninterrupted run (training by state/, sampling by shard)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from frugaldiff import preemption
from frugaldiff.cli import main
from frugaldiff.config import to_dict
from frugaldiff.io import read_npz
from frugaldiff.preemption import Preempted
from frugaldiff.sampling.generate import generate_samples
from frugaldiff.train.state import load_checkpoint, load_torch

from .test_sampling import request
from .test_train import run_to_end, tiny_run

EXIT_PREEMPTED = 3


def cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "frugaldiff.cli", *map(str, args)]


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll until `path` exists (the job is past its start-up) or fail with the job's output."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, _ = process.communicate()
            raise AssertionError(f"{path} never appeared; job output:\n{out}")
        time.sleep(0.02)


def train_command(config: Path, data: Path, out: Path) -> list[str]:
    return cli(
        "train",
        "--config", config,
        "--data", data,
        "--state-dir", out / "state",
        "--ckpt-dir", out / "ckpt",
        "--metrics-out", out / "metrics.jsonl",
        "--summary-out", out / "summary.json",
    )  # fmt: skip


def test_sigterm_mid_training_resumes_to_the_uninterrupted_result(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    # Long enough that the signal lands mid-run; small enough for seconds on 2 shared cores.
    cfg = tiny_run(iterations=100, ckpt_iters=(100,), state_every_iters=1000, log_every_iters=1)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(to_dict(cfg)))
    out = tmp_path / "job"
    command = train_command(config, tiny_dataset, out)

    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(out / "state" / "metrics.jsonl", job)  # the loop is running
    job.send_signal(signal.SIGTERM)
    output, _ = job.communicate(timeout=120)
    assert job.returncode == EXIT_PREEMPTED, output
    assert "preempted" in output
    events = [json.loads(ln) for ln in (out / "state" / "events.jsonl").read_text().splitlines()]
    stopped_at = events[-1]["iteration"]
    assert events[-1]["event"] == "preempted"
    assert 0 < stopped_at < 100, "the signal should land mid-run; make the run longer"
    assert not (out / "ckpt").exists(), "a preempted job must not leave declared outputs"

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed tiny at iteration" in resumed.stderr
    assert json.loads((out / "summary.json").read_text())["preemptions"] == 1

    straight = run_to_end(cfg, tiny_dataset, tmp_path / "straight")
    finished = load_checkpoint(out / "ckpt" / "iter100.pt")
    for name, weight in straight.ema.module.state_dict().items():
        assert torch.equal(finished["ema"][name], weight), name
    logged = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["iteration"] for ln in logged] == list(range(1, 101))


def test_signal_before_the_loop_starts_is_honoured(tiny_dataset: Path, tmp_path: Path) -> None:
    """SLURM's warning can come while the job still imports torch: the CLI's handler, installed
    before those imports, remembers it and the loop stops at its first boundary with state."""
    cfg = tiny_run(iterations=50, ckpt_iters=(50,))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(to_dict(cfg)))
    out = tmp_path / "job"
    preemption.install()  # the conftest fixture puts the previous handlers back
    os.kill(os.getpid(), signal.SIGTERM)  # arrives "during start-up", before Trainer exists
    code = main([str(a) for a in train_command(config, tiny_dataset, out)[3:]])
    assert code == EXIT_PREEMPTED
    assert load_torch(out / "state" / "state.pt", "state")["iteration"] == 0


def test_preempted_sample_set_resumes_by_shard(checkpoint: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight.npz"
    generate_samples(request(checkpoint, 4), straight, tmp_path / "straight.png")

    shards = tmp_path / "shards"
    calls = 0

    def preempt_after_two(ranges):  # the progress hook sees each batch before it is drawn
        nonlocal calls
        for index in ranges:
            calls += 1
            if calls == 3:
                preemption._record(signal.SIGTERM, None)
            yield index

    out = tmp_path / "images.npz"
    try:
        with pytest.raises(Preempted, match="2 batches"):
            generate_samples(
                request(checkpoint, 4), out, tmp_path / "g.png", preempt_after_two, shards
            )
    finally:
        preemption.reset()
    assert not out.exists()
    assert len(list(shards.glob("shard-*.npz"))) == 2

    meta = generate_samples(request(checkpoint, 4), out, tmp_path / "g.png", shard_dir=shards)
    assert meta["resumed_batches"] == 2
    assert not shards.exists(), "shards are dropped once the set is published"
    np.testing.assert_array_equal(
        read_npz(out, "images")["images"], read_npz(straight, "images")["images"]
    )


def test_shards_of_another_request_are_discarded(checkpoint: Path, tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    generate_samples(
        request(checkpoint, 4), tmp_path / "a.npz", tmp_path / "a.png", shard_dir=shards
    )
    shards.mkdir()
    (shards / "manifest.json").write_text(json.dumps({"other": "request"}))
    (shards / "shard-0000000-0000004.npz").write_bytes(b"stale")
    meta = generate_samples(
        request(checkpoint, 4), tmp_path / "b.npz", tmp_path / "b.png", shard_dir=shards
    )
    assert meta["resumed_batches"] == 0
