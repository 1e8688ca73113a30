"""DDP through the real CLI: `frugaldiff train --nproc 2` on two CPU processes (gloo) equals one.

The two-process runs go through the launcher (torchrun --standalone, a free port, a timeout on
every subprocess); the one-process reference runs in-process. Dropout is 0: the network's own
draws are sized per rank and cannot match (train/distributed.py).

Tolerance: per-example draws are identical, so the runs differ only by float32 summation order
(the loss mean and the gradient of 8 rows as one sum vs two sums of 4 and an all-reduce), about
1e-7 relative per step. AdamW divides by sqrt(v) and so can amplify that for gradients near 0,
each update moving a weight by at most about lr = 1e-3; after a few steps the weights agree to
ATOL below.
"""

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import frugaldiff
from frugaldiff.cli import main
from frugaldiff.config import DiffusionConfig, ModelConfig, RunConfig, TimestepConfig, to_dict
from frugaldiff.train.distributed import torchrun_command, without_nproc
from frugaldiff.train.state import load_checkpoint, load_torch

from .test_train import tiny_run

ITERATIONS = 16
ATOL = 1e-5  # weights, raw and EMA
LOG_RTOL = 1e-5  # logged loss and gradient norm
LAUNCH_TIMEOUT_S = 120  # a hung process group fails the test instead of the suite
SRC = Path(frugaldiff.__file__).resolve().parents[1]


def ddp_run(**train: object) -> RunConfig:
    """tiny_run without dropout; SpeeD timesteps (dual half) and label dropout draw per batch."""
    schedule = {"iterations": ITERATIONS, "ckpt_iters": (ITERATIONS,), "log_every_iters": 1}
    base = tiny_run(**{**schedule, **train})
    return dataclasses.replace(
        base,
        model=ModelConfig(name="unet-tiny", dropout=0.0),
        diffusion=DiffusionConfig(timesteps=TimestepConfig(name="speed"), p_uncond=0.25),
    )


def write_config(cfg: RunConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    return path


def train_args(config: Path, data: Path, out: Path) -> list[str]:
    return [
        "train",
        "--config",
        str(config),
        "--data",
        str(data),
        "--state-dir",
        str(out / "state"),
        "--ckpt-dir",
        str(out / "ckpt"),
        "--metrics-out",
        str(out / "metrics.jsonl"),
        "--summary-out",
        str(out / "summary.json"),
    ]


@contextlib.contextmanager
def launched(args: list[str]) -> Iterator[subprocess.Popen]:
    """`python -m frugaldiff ARGS` as a child process that sees this checkout's package.

    Whatever happens in the block, nothing of it is left running afterwards.
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("LOCAL_RANK", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "frugaldiff", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            kill_all(process)
            process.communicate()


def workers(launcher: subprocess.Popen) -> dict[int, int]:
    """RANK → PID of torchrun's workers (torchrun kept the launcher's PID: exec).

    torchrun starts each worker in a session of its own, so killing torchrun would orphan them.
    """
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"PPid:\t{launcher.pid}\n" in status:
            ranks = [int(e.removeprefix(b"RANK=")) for e in environ if e.startswith(b"RANK=")]
            found.update({rank: int(proc.name) for rank in ranks})
    return found


def kill_all(launcher: subprocess.Popen) -> None:
    for pid in workers(launcher).values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    launcher.kill()


def finish(process: subprocess.Popen) -> tuple[int, str]:
    """Exit code and output of a launched run, which must end within LAUNCH_TIMEOUT_S."""
    try:
        output, _ = process.communicate(timeout=LAUNCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_all(process)
        output, _ = process.communicate()
        pytest.fail(f"frugaldiff --nproc 2 hung for {LAUNCH_TIMEOUT_S} s:\n{output}")
    return process.returncode, output


def events(out: Path) -> list[str]:
    """The kinds in the job's state/events.jsonl, in order (preemption.EventLog)."""
    lines = (out / "state" / "events.jsonl").read_text().splitlines()
    return [json.loads(ln)["event"] for ln in lines]


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One config, its one-process reference (in-process) and a straight two-process run."""
    tmp = tmp_path_factory.mktemp("ddp")
    data = tmp / "train.npz"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 3, 8, 8), dtype=np.uint8)
    np.savez(data, images=images, labels=np.arange(64) % 10)
    config = write_config(ddp_run(), tmp / "config.yaml")
    threads = torch.get_num_threads()
    try:  # one thread, as torchrun gives each worker (OMP_NUM_THREADS=1); 2 would fight on 2 cores
        assert main(["--threads", "1", *train_args(config, data, tmp / "one"), "--nproc", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    with launched([*train_args(config, data, tmp / "two"), "--nproc", "2"]) as two:
        code, output = finish(two)
    assert code == 0, output
    return {"data": data, "config": config, "one": tmp / "one", "two": tmp / "two"}


def test_two_gloo_processes_equal_one(runs: dict[str, Path]) -> None:
    one, two = metrics(runs["one"]), metrics(runs["two"])
    assert [m["iteration"] for m in two] == list(range(1, ITERATIONS + 1))  # rank 0 alone logs
    assert [m["images_seen"] for m in two] == [m["images_seen"] for m in one]
    for key in ("loss", "grad_norm"):  # AdamW is blind to a gradient's scale, the norm is not
        logged = torch.tensor([[m[key] for m in one], [m[key] for m in two]])
        torch.testing.assert_close(logged[1], logged[0], rtol=LOG_RTOL, atol=0.0, msg=key)
    a, b = (load_checkpoint(runs[run] / "ckpt" / f"iter{ITERATIONS}.pt") for run in ("one", "two"))
    model_diff, ema_diff = max_abs_diff(a["model"], b["model"]), max_abs_diff(a["ema"], b["ema"])
    where = f"after {ITERATIONS} steps: weights {model_diff:.2e}, EMA {ema_diff:.2e}"
    assert model_diff < ATOL, where
    assert ema_diff < ATOL, where
    summary = json.loads((runs["two"] / "summary.json").read_text())
    assert (summary["world_size"], summary["batch_size"]) == (2, 8)


def test_a_signal_on_one_rank_stops_both_and_the_rerun_resumes(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    args = [*train_args(runs["config"], runs["data"], tmp_path), "--nproc", "2"]
    log = tmp_path / "state" / "metrics.jsonl"
    with launched(args) as first:
        # Rank 0 logs iteration 1 only after rank 1 joined its all-reduces, i.e. after rank 1
        # installed its signal handlers. Then rank 0 is frozen, so the run cannot end before
        # the signal lands, and only rank 1 is signalled.
        deadline = time.monotonic() + LAUNCH_TIMEOUT_S
        while not (log.is_file() and log.read_text()):
            assert first.poll() is None, finish(first)[1]
            assert time.monotonic() < deadline, "no iteration logged"
            time.sleep(0.01)
        ranks = workers(first)
        os.kill(ranks[0], signal.SIGSTOP)
        try:
            os.kill(ranks[1], signal.SIGUSR1)
            time.sleep(0.2)
        finally:
            os.kill(ranks[0], signal.SIGCONT)
        code, output = finish(first)
    assert code != 0, output  # torchrun's code: a worker failed
    assert f"preempted: signal {int(signal.SIGUSR1)}: state saved" in output  # rank 1
    assert "preempted: signal on another rank: state saved" in output  # rank 0
    stopped_at = load_torch(tmp_path / "state" / "state.pt")["iteration"]
    assert 1 <= stopped_at < ITERATIONS
    assert not (tmp_path / "ckpt").exists()  # declared outputs only at the end
    assert events(tmp_path) == ["preempted"]  # one line for the job: rank 0 alone writes

    with launched(args) as second:
        code, output = finish(second)
    assert code == 0, output
    assert events(tmp_path) == ["preempted", "resumed"]
    assert [m["iteration"] for m in metrics(tmp_path)] == list(range(1, ITERATIONS + 1))
    resumed = load_checkpoint(tmp_path / "ckpt" / f"iter{ITERATIONS}.pt")
    straight = load_checkpoint(runs["two"] / "ckpt" / f"iter{ITERATIONS}.pt")
    for key in ("model", "ema"):  # gloo on the CPU is deterministic: resume is exact
        for name, value in straight[key].items():
            assert torch.equal(resumed[key][name], value), (key, name, stopped_at)


def test_a_batch_that_does_not_split_fails_before_launching(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail(f"launched {a}"))
    config = write_config(ddp_run(), tmp_path / "config.yaml")  # train.batch_size = 8
    assert main([*train_args(config, tiny_dataset, tmp_path), "--nproc", "3"]) == 2
    message = capsys.readouterr().err
    assert "train.batch_size=8" in message
    assert "3 processes (world size 3)" in message
    assert not tmp_path.joinpath("state").exists()


def test_too_few_gpus_fail_before_launching(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail(f"launched {a}"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    config = write_config(ddp_run(device="cuda"), tmp_path / "config.yaml")
    assert main([*train_args(config, tiny_dataset, tmp_path), "--nproc", "2"]) == 2
    message = capsys.readouterr().err
    assert "--nproc 2 with train.device='cuda' needs 2 GPUs" in message
    assert "but 1 CUDA devices are visible" in message


def test_the_relaunch_drops_only_nproc() -> None:
    argv = ["--threads", "4", "train", "--config", "c.yaml", "--nproc", "2", "--data", "d"]
    command = torchrun_command(2, argv)
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in command
    assert "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1" in command
    assert command[-9:] == [
        "-m",
        "frugaldiff",
        "--threads",
        "4",
        "train",
        "--config",
        "c.yaml",
        "--data",
        "d",
    ]
    assert without_nproc(["train", "--nproc=4", "--x"]) == ["train", "--x"]
