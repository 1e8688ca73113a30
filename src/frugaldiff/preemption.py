"""SIGTERM/SIGUSR1 → "save your state and stop": SLURM's preemption and time-limit warnings.

The CLI installs the handler first thing, before torch is imported, so a signal that arrives
while a job is still starting is remembered rather than killing it; long loops (training,
sampling by shard) poll `requested()` at their boundaries, write their resumable state and
raise `Preempted`, which the CLI turns into exit code 3. Snakemake then marks the job failed,
removes its declared outputs and, with `retries:`, resubmits it; the rerun resumes.
"""

import signal

from frugaldiff.errors import FrugaldiffError

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_received: list[int] = []


class Preempted(FrugaldiffError):
    """A SIGTERM/SIGUSR1 arrived; state was saved and the job should exit non-zero."""


def _record(signum: int, _frame: object) -> None:
    _received.append(signum)


def install() -> None:
    """Remember SIGTERM/SIGUSR1 instead of dying on them (main thread only)."""
    for sig in SIGNALS:
        signal.signal(sig, _record)


def requested() -> int | None:
    """The first stop signal received since `install()`/`reset()`, or None."""
    return _received[0] if _received else None


def reset() -> None:
    """Forget received signals (tests run several loops in one process)."""
    _received.clear()
