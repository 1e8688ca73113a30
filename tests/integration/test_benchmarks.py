"""Each benchmark script runs end to end at its smallest settings (numbers not checked).

The benchmarks are what issues' speed targets are measured with; they import the library's
internals, so an API change that breaks one must fail CI rather than the next GPU session.
Run in-process with runpy (torch is already imported): seconds, not a fresh interpreter each.
"""

import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CASES = {
    "speed_overhead": "--size dit-smoke --batch 2 --steps 1 --repeats 1 --warmup 0 --lookup-reps 1",
    "train_step": "--sizes unet-smoke dit-smoke microdit-smoke --batch 2 --steps 1 --warmup 0",
    "masked_step": "--size microdit-smoke --batch 2 --steps 1 --blocks 1",
    "distill_speed": "--batch 2 --repeats 1 --teacher-steps 4 --end-steps 2",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs(name: str, monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)  # distill_speed reads configs/smoke.yaml relative to the root
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # as `python benchmarks/x.py` does
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *CASES[name].split(), "--device", "cpu"])
    runpy.run_path(str(REPO / "benchmarks" / f"{name}.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "cpu" in out  # each prints the device it measured on
    assert len(out.strip().splitlines()) >= 2  # a header and at least one measured line
