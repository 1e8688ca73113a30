"""SIGTERM/SIGUSR1 → "save your state and stop": SLURM's preemption and time-limit warnings.

The CLI installs the handler first thing, before torch is imported, so a signal that arrives
while a job is still starting is remembered rather than killing it; long loops (training,
sampling by shard) poll `requested()` at their boundaries, write their resumable state and
raise `Preempted`, which the CLI turns into exit code 3. Snakemake then marks the job failed,
removes its declared outputs and, with `retries:`, resubmits it; the rerun resumes.

A job's attempts share only its state folder, so each stop and each resume is appended to an
`EventLog` there (state/events.jsonl): the history across attempts that a run's summary counts
preemptions from and the SLURM test checks. This module imports nothing heavy (no torch), so the
CLI can install the handler before anything slow starts.
"""

import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from frugaldiff.errors import FrugaldiffError

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_received: list[int] = []
_fork_hook_registered = False


class Preempted(FrugaldiffError):
    """A SIGTERM/SIGUSR1 arrived; state was saved and the job should exit non-zero."""


def _record(signum: int, _frame: object) -> None:
    _received.append(signum)


def install() -> None:
    """Remember SIGTERM/SIGUSR1 instead of dying on them (main thread only).

    Only the process that called `install()` keeps the handler: every process forked from it
    (a multiprocessing Pool's or a DataLoader's workers) dies on these signals again, see
    `_forked_child`.
    """
    global _fork_hook_registered
    if not _fork_hook_registered:
        os.register_at_fork(after_in_child=_forked_child)
        _fork_hook_registered = True
    for sig in SIGNALS:
        signal.signal(sig, _record)


def restore_defaults() -> None:
    """Die on SIGTERM/SIGUSR1 again, forgetting any signal already received."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    reset()


def _forked_child() -> None:
    """After a fork: the child dies on SIGTERM/SIGUSR1 (when the parent had `install()`ed).

    A forked worker would inherit the recording handler, so `Pool.terminate()` (which a pool's
    `with` block calls on exit) would SIGTERM workers that only record it, and the job would
    hang joining them. Workers hold no state worth saving: the job's main process handles
    preemption. Handlers the parent set itself (not ours) are left alone.
    """
    if any(signal.getsignal(sig) is _record for sig in SIGNALS):
        restore_defaults()


def requested() -> int | None:
    """The first stop signal received since `install()`/`reset()`, or None."""
    return _received[0] if _received else None


def reset() -> None:
    """Forget received signals (tests run several loops in one process)."""
    _received.clear()


@dataclass(frozen=True)
class EventLog:
    """Preemptions and resumptions of one job, one JSON line each, kept across its attempts.

    Lines are only ever appended: each attempt adds to what the earlier ones wrote. Under DDP
    every rank holds an EventLog but only the main rank's `writes`, so each event appears once.
    """

    path: Path
    writes: bool = True

    def record(self, event: str, iteration: int, **fields: object) -> None:
        """Append `event` at `iteration` (plus `fields`), stamped with the wall-clock time."""
        if not self.writes:
            return
        line = {"event": event, "iteration": iteration, **fields, "time": time.time()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps(line) + "\n")

    def count(self, event: str) -> int:
        """How many `event` lines the log holds (0 when no attempt has written one)."""
        if not self.path.is_file():
            return 0
        lines = self.path.read_text().splitlines()
        return sum(1 for ln in lines if ln and json.loads(ln)["event"] == event)
