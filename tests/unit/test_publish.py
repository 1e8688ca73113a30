"""frugaldiff publish: a tier's report, configs and provenance copied, never silently replaced."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from frugaldiff.cli import main
from frugaldiff.errors import FrugaldiffError
from frugaldiff.report.publish import publish

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _tier(
    root: Path,
    commits: tuple[str, ...] = (COMMIT, COMMIT),
    study: str = "speed",
    tier_name: str = "t",
) -> Path:
    """results/<tier> with one study of two runs, as the DAG lays it out."""
    tier = root / "results" / tier_name
    report = tier / "report" / study
    (report / "tables").mkdir(parents=True)
    (report / "figures").mkdir()
    table = "| variant | FID |\n|---|---|\n| speed | 12.5 |\n"
    (report / "tables" / "speedup.md").write_text(table)
    (report / "tables" / "speedup.csv").write_text("variant,FID\nspeed,12.5\n")
    (report / "figures" / "fid_vs_iteration.png").write_bytes(b"\x89PNG fake")
    metrics = tier / "a" / "metrics" / "iter2" / "ddim-s4-w0.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"provenance": {"packages": {"torch": "2.14.1"}}}))
    rows = [
        {"tier": tier_name, "run": run, "git_commit": commit, "source": str(metrics)}
        for run, commit in zip(("a", "b"), commits, strict=True)
    ]
    pd.DataFrame(rows).assign(metric="fid").to_csv(report / "metrics_tidy.csv", index=False)
    for run, ips in (("a", 100.0), ("b", 50.0)):
        (tier / run / "train").mkdir(parents=True, exist_ok=True)
        if (tier / run / "benchmarks").exists():
            continue
        (tier / run / "config.yaml").write_text(f"run: {run}\n")
        summary = {"device": "cuda:0", "world_size": 1, "images_per_second": ips, "iterations": 2}
        (tier / run / "train" / "summary.json").write_text(json.dumps(summary))
        bench = tier / run / "benchmarks" / "compute_metrics" / "iter2"
        bench.mkdir(parents=True)
        (bench / "ddim-s4-w0.tsv").write_text("s\th:m:s\n7.5\t0:00:07\n")
        (tier / run / "benchmarks" / "train_model.tsv").write_text("s\th:m:s\n30.25\t0:00:30\n")
    (tier / "benchmarks" / "reference_stats").mkdir(parents=True, exist_ok=True)
    (tier / "benchmarks" / "reference_stats" / "cifar10-train.tsv").write_text("s\n87.0\n")
    (tier / "config").mkdir(exist_ok=True)
    (tier / "config" / "data.yaml").write_text("dataset: cifar10\n")
    return tier


def test_publication_holds_tables_figures_configs_and_provenance(tmp_path: Path) -> None:
    tier = _tier(tmp_path)
    out = tmp_path / "docs" / "results" / "t"
    readme = publish(tier, out).read_text()
    assert (out / "speed" / "tables" / "speedup.csv").read_text() == "variant,FID\nspeed,12.5\n"
    assert (out / "speed" / "figures" / "fid_vs_iteration.png").read_bytes() == b"\x89PNG fake"
    assert (out / "speed" / "configs" / "a.yaml").read_text() == "run: a\n"
    assert (out / "speed" / "config" / "data.yaml").is_file()
    assert "| speed | 12.5 |" in readme  # the table inlined
    assert "![fid_vs_iteration](speed/figures/fid_vs_iteration.png)" in readme
    assert COMMIT in readme
    assert "torch 2.14.1" in readme
    assert "| a | cuda:0 | 1 | 100.0 | compute_metrics 8, train_model 30 |" in readme
    assert "(data, reference statistics): reference_stats 87 s." in readme
    record = json.loads((out / "speed" / "provenance.json").read_text())
    assert record["commits"] == [COMMIT]
    assert record["dirty"] is False
    assert record["runs"]["b"]["job_seconds"] == {
        "compute_metrics": 7.5,
        "train_model": 30.25,
    }
    assert not list(out.parent.glob(".t.*"))  # no staging left behind


def test_a_published_study_is_replaced_only_with_force(tmp_path: Path) -> None:
    tier = _tier(tmp_path)
    out = tmp_path / "pub"
    publish(tier, out)
    (out / "speed" / "old.md").write_text("earlier result")
    with pytest.raises(FrugaldiffError, match=r"already holds a publication of \['speed'\]"):
        publish(tier, out)
    assert (out / "speed" / "old.md").read_text() == "earlier result"
    publish(tier, out, force=True)
    assert not (out / "speed" / "old.md").exists()
    assert (out / "README.md").is_file()


def test_studies_published_one_at_a_time_share_the_tier_readme(tmp_path: Path) -> None:
    """A second session's study joins the first's; each section keeps its own commit."""
    out = tmp_path / "pub"
    publish(_tier(tmp_path / "one"), out)
    later = "fedcba9876543210fedcba9876543210fedcba98"
    readme = publish(_tier(tmp_path / "two", (later, later), study="masked"), out).read_text()
    assert (out / "speed" / "tables" / "speedup.csv").is_file()  # kept
    assert (out / "masked" / "tables" / "speedup.csv").is_file()
    assert readme.index("## Study `masked`") < readme.index("## Study `speed`")
    speed_section = readme.split("## Study `speed`")[1]
    assert COMMIT in speed_section
    assert later not in speed_section
    assert json.loads((out / "masked" / "provenance.json").read_text())["commits"] == [later]
    other_tier = _tier(tmp_path / "three", study="distill", tier_name="u")
    with pytest.raises(FrugaldiffError, match=r"studies of tiers \['t', 'u'\]"):
        publish(other_tier, out)
    assert not (out / "distill").exists()


def test_a_folder_that_is_not_a_publication_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "pub"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    with pytest.raises(FrugaldiffError, match="holds files but no published study"):
        publish(_tier(tmp_path), out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.md"]


def test_mixed_or_dirty_commits_are_refused_unless_allowed(tmp_path: Path) -> None:
    tier = _tier(tmp_path, commits=(COMMIT, COMMIT + "-dirty"))
    out = tmp_path / "pub"
    with pytest.raises(FrugaldiffError, match="needs one clean commit"):
        publish(tier, out)
    assert not out.exists()
    assert not list(tmp_path.glob(".pub.*"))
    readme = publish(tier, out, allow_dirty=True).read_text()
    assert "published with --allow-dirty" in readme


def test_missing_study_or_run_config_is_a_clear_error(tmp_path: Path) -> None:
    tier = _tier(tmp_path)
    with pytest.raises(FrugaldiffError, match=r"study 'masked': .*report/masked/metrics_tidy"):
        publish(tier, tmp_path / "pub", studies=["masked"])
    (tier / "b" / "config.yaml").unlink()
    with pytest.raises(FrugaldiffError, match=r"run 'b' of study 'speed': .*config.yaml"):
        publish(tier, tmp_path / "pub")
    assert not (tmp_path / "pub").exists()
    with pytest.raises(FrugaldiffError, match="no study report"):
        publish(tmp_path / "nothing", tmp_path / "pub")


def test_cli_publish_reports_bad_input_with_exit_code_2(tmp_path: Path, capsys) -> None:
    tier = _tier(tmp_path)
    out = tmp_path / "pub"
    assert main(["publish", "--results", str(tier), "--out", str(out)]) == 0
    assert main(["publish", "--results", str(tier), "--out", str(out)]) == 2
    assert "pass --force" in capsys.readouterr().err


def _frontier_tier(root: Path) -> tuple[Path, list[Path], list[Path]]:
    """results/t with three studies' runs (test_frontier's records), each study's report tidy."""
    from frugaldiff.report.collect import collect_metrics

    from .test_frontier import write

    tier = root / "results" / "t"
    metrics, summaries = write(tier)
    for path in metrics:  # as `frugaldiff evaluate` records them
        record = json.loads(path.read_text())
        record["provenance"]["packages"] = {"torch": "2.14.1"}
        path.write_text(json.dumps(record))
    tidy = collect_metrics(metrics)
    for study, rows in tidy.groupby("study"):
        report = tier / "report" / str(study)
        (report / "tables").mkdir(parents=True)
        (report / "figures").mkdir()
        rows.to_csv(report / "metrics_tidy.csv", index=False)
    for run in tidy["run"].unique():
        (tier / run / "config.yaml").write_text(f"run: {run}\n")
    return tier, metrics, summaries


def test_the_frontier_is_rebuilt_over_every_published_study(tmp_path: Path) -> None:
    """Studies published one at a time give the frontier the whole results tree gives."""
    from frugaldiff.report.frontier import build_frontier

    tier, metrics, summaries = _frontier_tier(tmp_path)
    out = tmp_path / "pub"
    readme = publish(tier, out, ["speed"]).read_text()
    first = pd.read_csv(out / "frontier" / "tables" / "frontier.csv")
    assert set(first["run"]) == {"base"}
    assert "Every model x sample set of `speed`" in readme
    publish(tier, out, ["distill"])
    readme = publish(tier, out, ["masked"]).read_text()
    # the teacher's cost records travel with the study whose runs start from it
    assert (out / "distill" / "summaries" / "st" / "halving" / "n4" / "summary.json").is_file()
    build_frontier(metrics, summaries, tmp_path / "whole", "t")
    published = pd.read_csv(out / "frontier" / "tables" / "frontier.csv")
    whole = pd.read_csv(tmp_path / "whole" / "tables" / "frontier.csv")
    pd.testing.assert_frame_equal(published, whole)
    assert "![fid_vs_training_flops](frontier/figures/fid_vs_training_flops.png)" in readme
    assert (out / "frontier" / "figures" / "fid_vs_sampling_nfe.png").stat().st_size > 0
    assert "Not in the frontier" not in readme


def test_a_study_published_without_cost_records_is_named_not_guessed(tmp_path: Path) -> None:
    tier, _, _ = _frontier_tier(tmp_path)
    out = tmp_path / "pub"
    publish(tier, out, ["speed", "masked"])
    shutil.rmtree(out / "speed" / "summaries")  # as published before summaries were kept
    readme = publish(tier, out, ["masked"], force=True).read_text()
    assert set(pd.read_csv(out / "frontier" / "tables" / "frontier.csv")["run"]) == {"m", "m-ft"}
    assert "Not in the frontier: `speed`" in readme
    (tier / "m" / "train" / "summary.json").unlink()  # the fine-tuning's parent record lost
    readme = publish(tier, out, ["masked"], force=True).read_text()
    assert "Not built:" in readme
    assert "'m'" in readme
    assert not (out / "frontier").exists()  # no stale frontier left beside the README
