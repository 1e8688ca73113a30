"""The preemption module's event log, and its promise to stay importable before torch."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from frugaldiff import preemption
from frugaldiff.preemption import EventLog


def test_events_append_across_attempts_and_count_by_kind(tmp_path: Path) -> None:
    path = tmp_path / "state" / "events.jsonl"
    assert EventLog(path).count("preempted") == 0  # no attempt has written yet
    EventLog(path).record("preempted", 7, signal=15)
    EventLog(path).record("resumed", 7)  # a later attempt appends to the same file
    EventLog(path).record("preempted", 9, signal=10)
    lines = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert [(e["event"], e["iteration"]) for e in lines] == [
        ("preempted", 7),
        ("resumed", 7),
        ("preempted", 9),
    ]
    assert list(lines[0]) == ["event", "iteration", "signal", "time"]
    assert EventLog(path).count("preempted") == 2
    assert EventLog(path).count("resumed") == 1


def test_a_log_that_does_not_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    EventLog(path, writes=False).record("resumed", 3)  # a non-main DDP rank
    assert not path.exists()


def test_importing_preemption_does_not_import_torch() -> None:
    """cli.main installs the handler before torch loads; the module must not pull it in."""
    code = "import sys, frugaldiff.preemption; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_forked_workers_die_on_sigterm_while_the_job_records_it() -> None:
    """Any worker a job forks (Pool, DataLoader) must not inherit the recording handler: a
    pool's exit SIGTERMs its workers and would wait forever for ones that only record it."""
    preemption.install()  # the conftest fixture puts the previous handlers back
    preemption._record(signal.SIGTERM, None)  # a stop already requested in the parent
    pid = os.fork()
    if pid == 0:  # child: report through the exit code, never return into pytest
        inherited = any(signal.getsignal(s) is not signal.SIG_DFL for s in preemption.SIGNALS)
        os._exit(1 if inherited else 2 if preemption.requested() else 0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # defaults restored, no stale request
    assert signal.getsignal(signal.SIGTERM) is preemption._record  # the parent keeps it
    assert preemption.requested() == signal.SIGTERM
