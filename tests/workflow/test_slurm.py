"""The DAG on a real one-node SLURM cluster (../shared/slurm/local-cluster): every rule kind goes
through sbatch with the project's slurm profile, the training job is cut by its time limit
(SIGTERM 60 s before a 1-minute limit), the retry resumes it, and the report equals a local run's.

Needs root on a Debian machine (local-cluster installs and starts slurmctld/slurmd/munge). CI is
such a machine, so there a missing prerequisite fails the test; elsewhere it is skipped.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from .test_dag import REPO, SNAKEMAKE, snakemake

LOCAL_CLUSTER = REPO.parent / "shared" / "slurm" / "local-cluster"
TIER = "tests/workflow/slurm_tier.yaml"
RUN = "slurm-test/base"
SAMPLE_SET = "iter120/ddim-s4-w0"


def missing_prerequisite() -> str | None:
    if not LOCAL_CLUSTER.is_file():
        return f"{LOCAL_CLUSTER} not found"
    if os.geteuid() != 0:
        return "local-cluster needs root"
    return None


@pytest.fixture(scope="module")
def cluster() -> object:
    """`local-cluster up`, and `down` whatever happens (.ci/run also traps it)."""
    reason = missing_prerequisite()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the SLURM test: {reason}")
        pytest.skip(reason)
    subprocess.run([str(LOCAL_CLUSTER), "up"], check=True, timeout=900)
    try:
        yield
    finally:
        subprocess.run([str(LOCAL_CLUSTER), "down"], timeout=300, check=False)


def slurm_jobs() -> dict[str, tuple[str, str]]:
    """jobid -> (state, comment) of every job slurmctld still remembers (MinJobAge=600 s)."""
    listing = subprocess.run(
        ["squeue", "-t", "all", "-h", "-o", "%i|%T|%k"], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split("|") for line in listing.splitlines() if line]
    return {jobid: (state, comment) for jobid, state, comment in rows}


def report_files(results: Path) -> list[str]:
    report = results / "slurm-test" / "report"
    return sorted(str(p.relative_to(report)) for p in report.rglob("*") if p.is_file())


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_run_resumes_after_its_time_limit_and_matches_local(
    cluster: object, tmp_path: Path
) -> None:
    import torch

    local, remote = tmp_path / "local", tmp_path / "slurm"
    snakemake("all", "--cores", "2", "--configfile", TIER, "--config", f"results_dir={local}")

    env = {k: v for k, v in os.environ.items() if not k.startswith("FRUGALDIFF_")}
    command = [
        *SNAKEMAKE, "all", "--profile", "slurm", "--configfile", TIER,
        "--config", f"results_dir={remote}",
        # the local cluster: 2 CPUs, no accounting daemon (status from squeue, polled early)
        "--jobs", "4", "--retries", "4",
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
    ]  # fmt: skip
    result = subprocess.run(
        ["timeout", "-k", "30", "1200", *command],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=1300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output

    # Every job went through sbatch: Snakemake's submission lines, their logs, SLURM's records.
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.?$", output, re.M)
    assert submitted, output
    jobs = slurm_jobs()
    by_rule: dict[str, list[str]] = {}
    for jobid, log in submitted:
        assert Path(log).is_file(), f"SLURM log {log} of job {jobid} missing"
        state, comment = jobs[jobid]
        by_rule.setdefault(comment.split("_wildcards")[0], []).append(state)
    assert set(by_rule) >= {
        "rule_prepare_data",
        "rule_train_model",
        "rule_reference_stats",
        "rule_sample_eval_compute_metrics_generate_samples",  # a group job: sample + FID
    }, by_rule
    train_states = by_rule["rule_train_model"]
    assert train_states[-1] == "COMPLETED"
    assert "FAILED" in train_states, "the 1-minute limit should have cut the first attempt"

    # The cut attempt saved its state and the retry resumed from it (not from scratch).
    events_file = remote / RUN / "state" / "events.jsonl"
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    preempted = [e for e in events if e["event"] == "preempted"]
    assert preempted, events
    assert all(e["signal"] == 15 for e in preempted)
    assert any(e["event"] == "resumed" and e["iteration"] > 0 for e in events), events
    summary = json.loads((remote / RUN / "train" / "summary.json").read_text())
    assert summary["preemptions"] == len(preempted)

    # Same files and the same numbers as the uninterrupted local run (CPU: bit-identical).
    assert report_files(remote) == report_files(local)
    assert "baseline/metrics_tidy.csv" in report_files(local)
    ckpts = [
        torch.load(r / RUN / "ckpt" / "iter120.pt", weights_only=True) for r in (local, remote)
    ]
    for name, weight in ckpts[0]["ema"].items():
        assert torch.equal(weight, ckpts[1]["ema"][name]), name
    fids = [
        json.loads((r / RUN / "metrics" / f"{SAMPLE_SET}.json").read_text())["metrics"]["fid"]
        for r in (local, remote)
    ]
    assert fids[0] == pytest.approx(fids[1], rel=1e-9)
