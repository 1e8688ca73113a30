"""Each benchmark script runs end to end at its smallest settings (numbers not checked).

The benchmarks are what issues' speed targets are measured with; they import the library's
internals, so an API change that breaks one must fail CI rather than the next GPU session.
Run in-process with runpy (torch is already imported): seconds, not a fresh interpreter each.
"""

import itertools
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from frugaldiff.models.registry import MODEL_SIZES

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


def test_device_check_script_parses_and_names_real_sizes_and_configs() -> None:
    """benchmarks/device_check.sh is run only on a lent GPU: catch its typos here."""
    script = REPO / "benchmarks" / "device_check.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    joined = script.read_text().replace("\\\n", " ")  # continuation lines joined
    lines = [shlex.split(ln, comments=True) for ln in joined.splitlines()]
    words = [w for line in lines for w in line]
    sizes = []
    for line in lines:
        for i, word in enumerate(line):
            if word in ("--size", "--sizes"):
                sizes += itertools.takewhile(lambda w: not w.startswith("-"), line[i + 1 :])
    assert sizes
    assert set(sizes) <= set(MODEL_SIZES)
    configs = re.findall(r"configs/[\w/]+\.yaml", joined)  # also inside quoted commands
    assert configs
    assert all((REPO / c).is_file() for c in configs)
    scripts = [w for w in words if re.fullmatch(r"benchmarks/\w+\.py", w)]
    assert {Path(s).stem for s in scripts} == set(CASES)  # every benchmark, each tested above
