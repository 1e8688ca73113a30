"""A training job killed with SIGKILL mid-run resumes under --rerun-incomplete, bit for bit.

The user's recovery is `--unlock`, then the same command with `--rerun-incomplete`. SIGKILL
gives the job no chance to save (unlike SLURM's SIGTERM/SIGUSR1, tests/integration/
test_preemption.py): what survives is the last periodic state in state/, which Snakemake keeps
because it is not a declared output. The resumed run must then write exactly the checkpoints
an uninterrupted run writes (CPU, one thread: the same reductions in the same order).
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import torch

from frugaldiff.train.state import load_checkpoint, load_torch

from .test_dag import REPO, SNAKEMAKE, snakemake

RUN = "speed-baseline"  # smoke: 150 iterations, state every 50, checkpoints at 60 and 150
KILL_TIMEOUT_S = 600


def _target(results: Path) -> str:
    return str(results / "smoke" / RUN / "train" / "summary.json")


def _args(results: Path) -> list[str]:
    return [
        "--cores",
        "1",
        "--configfile",
        "configs/smoke.yaml",
        "--config",
        f"results_dir={results}",
    ]


def _saved_iteration(state: Path) -> int:
    try:
        return int(load_torch(state, "training state")["iteration"])
    except Exception:  # not there yet, or a reader racing the atomic rename
        return 0


def _kill_mid_training(results: Path) -> int:
    """Start the job, SIGKILL its whole process group once a state is saved; the iteration."""
    state = results / "smoke" / RUN / "state" / "state.pt"
    env = {k: v for k, v in os.environ.items() if k != "FRUGALDIFF_CIFAR10_ARCHIVE"}
    proc = subprocess.Popen(
        [*SNAKEMAKE, _target(results), *_args(results)],
        cwd=REPO,
        env=env,
        start_new_session=True,  # its own process group: the kill reaches the training job too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + KILL_TIMEOUT_S
    try:
        while (saved := _saved_iteration(state)) == 0:
            assert proc.poll() is None, "the job ended before it saved any state"
            assert time.monotonic() < deadline, f"no state in {state} after {KILL_TIMEOUT_S} s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return saved


def test_sigkilled_training_resumes_bit_for_bit(tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    snakemake(_target(straight), *_args(straight))
    saved = _kill_mid_training(killed)
    assert 0 < saved < 150, saved
    assert not Path(_target(killed)).exists()
    # A SIGKILLed Snakemake leaves its lock behind: the user's two commands are --unlock, then
    # the same target with --rerun-incomplete (README, partial runs).
    snakemake(_target(killed), "--unlock", *_args(killed))
    rerun = snakemake(_target(killed), "--rerun-incomplete", *_args(killed))
    assert "train_model" in rerun.stdout + rerun.stderr
    events = (killed / "smoke" / RUN / "state" / "events.jsonl").read_text()
    assert '"resumed"' in events, events
    for name in ("iter60.pt", "iter150.pt"):
        a = load_checkpoint(straight / "smoke" / RUN / "ckpt" / name)
        b = load_checkpoint(killed / "smoke" / RUN / "ckpt" / name)
        for part in ("model", "ema"):
            assert a[part].keys() == b[part].keys()
            for key, tensor in a[part].items():
                assert torch.equal(tensor, b[part][key]), f"{name} {part}.{key}"
