"""The Snakemake DAG: lint, dry-runs of every tier, bad config, and the smoke tier end to end."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("FRUGALDIFF_CIFAR10_ARCHIVE", None)
    result = subprocess.run(
        [*SNAKEMAKE, *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=1500
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        )
    return result


def test_lint_is_clean(tmp_path: Path) -> None:
    result = snakemake("--lint", "--config", f"results_dir={tmp_path}", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout, result.stdout


@pytest.mark.parametrize("tier", ["smoke", "cifar10"])
def test_tier_dry_runs(tier: str, tmp_path: Path) -> None:
    result = snakemake(
        "-n",
        "--cores",
        "1",
        "--configfile",
        f"configs/{tier}.yaml",
        "--config",
        f"results_dir={tmp_path}",
    )
    for rule in (
        "prepare_data",
        "train_model",
        "generate_samples",
        "compute_metrics",
        "reference_stats",
        "make_report",
    ):
        assert rule in result.stdout, f"{rule} missing from the {tier} plan"


def test_misspelled_key_fails_before_any_job(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (REPO / "configs" / "smoke.yaml").read_text().replace("sample_images:", "sample_imags:")
    bad.write_text(text)
    result = snakemake(
        "-n",
        "--cores",
        "1",
        "--configfile",
        str(bad),
        "--config",
        f"results_dir={tmp_path}",
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "evaluation.sample_imags" in output
    assert "'sample_images'" in output
    assert str(bad) in output
    assert not (tmp_path / "smoke").exists()


@pytest.mark.slow
def test_smoke_dag_end_to_end_then_nothing_to_do(tmp_path: Path) -> None:
    results = tmp_path / "results"
    snakemake("--cores", "2", "--config", f"results_dir={results}")
    report = results / "smoke" / "report" / "baseline"
    for name in (
        "tables/fid_over_training.csv",
        "tables/fid_over_training.md",
        "tables/fid_over_training.tex",
        "tables/summary.csv",
        "figures/fid_vs_iteration.png",
        "figures/fid_vs_iteration.pdf",
        "metrics_tidy.csv",
    ):
        assert (report / name).stat().st_size > 0, name
    import pandas as pd

    table = pd.read_csv(report / "tables" / "fid_over_training.csv")
    assert sorted(table["iteration"]) == [50, 100, 150]
    assert table["fid"].notna().all()
    assert (table["fid"] > 0).all()
    assert (table["nfe_per_image"] == 16).all()
    assert (table["inception_score"] == "n/a (no logits weights)").all()
    speed = pd.read_csv(results / "smoke" / "report" / "speed" / "tables" / "summary.csv")
    assert speed["variant"].tolist() == ["baseline", "speed-sampler", "speed-weighting", "speed"]
    assert speed.set_index("variant").loc["baseline", "speed-up (measured)"] == "1"
    assert (results / "smoke" / "report" / "speed" / "figures" / "fid_vs_iteration.png").is_file()
    again = snakemake("-n", "--cores", "2", "--config", f"results_dir={results}")
    assert "Nothing to be done" in again.stdout + again.stderr
