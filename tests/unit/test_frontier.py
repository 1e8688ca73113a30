"""The cost-to-quality frontier over every study: cumulative training cost, Pareto fronts."""

from pathlib import Path

import pandas as pd
import pytest

from frugaldiff.errors import DataError
from frugaldiff.io import write_json
from frugaldiff.report.frontier import build_frontier, on_front

from .test_report_studies import record


def summary(run: str, flops_per_image: float, iterations: int, step_seconds: float) -> dict:
    return {
        "run": run,
        "train_flops_per_image": flops_per_image,
        "batch_size": 10,
        "step_seconds": step_seconds,
        "iterations": iterations,
    }


def write(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    """speed (2 checkpoints), a masked run and its fine-tuning, a teacher, stage 1, a halving."""
    records = [
        record("base", "baseline", 0.0, 90.0, study="speed", iteration=50),
        record("base", "baseline", 0.0, 60.0, study="speed", iteration=100),
        record("m", "deferred", 0.5, 70.0, iteration=100),
        record("m-ft", "deferred", 0.0, 50.0, init_from="m", iteration=20),
        record("teacher", "t", 0.0, 80.0, study="distill", iteration=100, nfe_per_image=32.0),
        record("st", "s", 0.0, 85.0, "teacher", "distill", iteration=40, student_steps=8),
        record("st", "s", 0.0, 95.0, "teacher", "distill", iteration=30, student_steps=4,
               steps=4, nfe_per_image=4.0),
    ]  # fmt: skip
    metrics = []
    for i, r in enumerate(records):
        metrics.append(tmp_path / "metrics" / f"{i}.json")
        write_json(metrics[-1], r)
    summaries = {
        "base/train": summary("base", 1e9, 100, 0.5),
        "m/train": summary("m", 0.6e9, 100, 0.25),
        "m-ft/train": summary("m-ft", 1e9, 20, 0.5),
        "teacher/train": summary("teacher", 2e9, 100, 1.0),
        "st/train": summary("st", 3e9, 40, 1.5),
        "st/halving/n4": summary("st", 4e9, 30, 2.0),
    }
    paths = []
    for where, content in summaries.items():
        paths.append(tmp_path / where / "summary.json")
        write_json(paths[-1], content)
    return metrics, paths


def test_training_cost_is_cumulative_over_what_a_model_starts_from(tmp_path: Path) -> None:
    metrics, summaries = write(tmp_path)
    build_frontier(metrics, summaries, tmp_path / "out", "t")
    table = pd.read_csv(tmp_path / "out" / "tables" / "frontier.csv")
    rows = table.set_index(["run", "model"])
    flops = rows["train PFLOP"] * 1e15
    assert flops[("base", "iter50")] == pytest.approx(1e9 * 10 * 50)  # its own 50 iterations
    assert flops[("m-ft", "iter20")] == pytest.approx(1e9 * 10 * 20 + 0.6e9 * 10 * 100)
    teacher = 2e9 * 10 * 100
    assert flops[("st", "iter40")] == pytest.approx(3e9 * 10 * 40 + teacher)  # stage 1
    assert flops[("st", "n4")] == pytest.approx(4e9 * 10 * 30 + 3e9 * 10 * 40 + teacher)
    hours = rows["train device-h"] * 3600
    assert hours[("st", "n4")] == pytest.approx(2.0 * 30 + 1.5 * 40 + 1.0 * 100)
    # base iter50 (90) is the cheapest point, m (70) beats it, m-ft (50) beats both
    front = table[table["front (train)"]]
    assert list(front["run"]) == ["base", "m", "m-ft"]
    sampling = table[table["front (sampling)"]].sort_values("NFE/img")
    assert list(sampling["run"]) == ["st", "m-ft"]  # 4 NFE at FID 95, then 16 NFE at FID 50
    for name in ("fid_vs_training_flops", "fid_vs_sampling_nfe"):
        assert (tmp_path / "out" / "figures" / f"{name}.png").stat().st_size > 0
    assert "Cost-to-quality frontier, tier t" in (tmp_path / "out/tables/frontier.md").read_text()


def test_a_missing_summary_is_named(tmp_path: Path) -> None:
    metrics, summaries = write(tmp_path)
    with pytest.raises(DataError, match=r"no train/summary.json of run 'm' among"):
        build_frontier(
            metrics,
            [p for p in summaries if p.parent.name != "train" or p.parent.parent.name != "m"],
            tmp_path / "o",
            "t",
        )


def test_front_keeps_only_points_no_cheaper_point_beats() -> None:
    costs = pd.Series([1.0, 2.0, 2.0, 3.0, 4.0])
    fids = pd.Series([50.0, 60.0, 40.0, 45.0, 30.0])
    assert on_front(costs, fids).tolist() == [True, False, True, False, True]


def test_a_direct_runs_untrained_stage_adds_no_cost(tmp_path: Path) -> None:
    """Meng's direct baseline: 0 updates (no step time measured), then a halving of the teacher."""
    metrics, summaries = write(tmp_path)
    halving = record("direct", "direct", 0.0, 99.0, "teacher", "distill", iteration=30,
                     student_steps=4, steps=4, nfe_per_image=8.0)  # fmt: skip
    metrics.append(tmp_path / "metrics" / "direct.json")
    write_json(metrics[-1], halving)
    for where, content in {
        "direct/train": summary("direct", 2e9, 0, float("nan")),  # Trainer: no rate logged
        "direct/halving/n4": summary("direct", 5e9, 30, 2.5),
    }.items():
        summaries.append(tmp_path / where / "summary.json")
        write_json(summaries[-1], content)
    build_frontier(metrics, summaries, tmp_path / "out", "t")
    row = pd.read_csv(tmp_path / "out" / "tables" / "frontier.csv").set_index(["run", "model"])
    assert row.loc[("direct", "n4"), "train PFLOP"] * 1e15 == pytest.approx(
        5e9 * 10 * 30 + 2e9 * 10 * 100
    )  # its halving + the teacher, nothing for the 0-update stage
    assert row.loc[("direct", "n4"), "train device-h"] * 3600 == pytest.approx(2.5 * 30 + 100.0)
