"""The preemption module's event log, and its promise to stay importable before torch."""

import json
import subprocess
import sys
from pathlib import Path

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
