"""The combined study's tables from synthetic metrics: SpeeD x masking and the two teachers."""

from pathlib import Path

import pandas as pd
import pytest

from frugaldiff.io import write_json
from frugaldiff.report.build import build_report
from tests.unit.test_report_studies import record


def micro(run: str, method: str, masking: str, ratio: float, fid: float, **extra: object) -> dict:
    return record(
        run, masking, ratio, fid, study="combined", method=method, masking=masking, **extra
    )


def write_study(tmp_path: Path, records: list[dict], iterations: dict[str, int]) -> Path:
    metrics, summaries = [], []
    for i, r in enumerate(records):
        metrics.append(tmp_path / f"m{i}.json")
        write_json(metrics[-1], r)
    for i, (run, iters) in enumerate(iterations.items()):
        summaries.append(tmp_path / f"s{i}.json")
        write_json(
            summaries[-1],
            {
                "run": run,
                "iterations": iters,
                "batch_size": 10,
                "step_seconds": 0.36,
                "train_flops_per_image": 1e12,
                "images_per_second": 10 / 0.36,
            },
        )
    out = tmp_path / "report"
    build_report(metrics, summaries, out, "t", "combined")
    return out


def masking_records() -> list[dict]:
    return [
        micro("base", "baseline", "unmasked", 0.0, 100.0),
        micro("speed", "speed", "unmasked", 0.0, 90.0),
        micro("mask", "baseline", "deferred", 0.5, 120.0),
        micro("mask-ft", "baseline", "deferred", 0.0, 110.0, init_from="mask", iteration=20),
        micro("both", "speed", "deferred", 0.5, 104.0),
        micro("both-ft", "speed", "deferred", 0.0, 95.0, init_from="both", iteration=20),
    ]


def test_speed_x_masking_scores_each_run_after_its_fine_tuning(tmp_path: Path) -> None:
    iterations = {"base": 100, "speed": 100, "mask": 100, "mask-ft": 20, "both": 100}
    iterations["both-ft"] = 20
    out = write_study(tmp_path, masking_records(), iterations)
    table = pd.read_csv(out / "tables" / "speed_x_masking.csv").set_index("run")
    assert list(table.index) == ["base", "speed", "mask", "both"]  # FT is a column
    assert table.loc["both", "FID"] == 95.0  # after its fine-tuning
    assert table.loc["both", "FID before FT"] == 104.0
    assert pd.isna(table.loc["base", "FID before FT"])
    assert table.loc["both", "fine-tuned by"] == "both-ft"
    assert table.loc["both", "iterations"] == 120
    # 120 iterations x 0.36 s = 43.2 s; 120 x 10 images x 1 TFLOP = 1.2 PFLOP
    assert table.loc["both", "train device-h"] == pytest.approx(43.2 / 3600)
    assert table.loc["both", "train PFLOP"] == pytest.approx(1.2)
    assert table.loc["mask", "FID - baseline"] == 10.0

    add = pd.read_csv(out / "tables" / "speed_x_masking_additivity.csv").iloc[0]
    assert add["additive prediction"] == 100.0  # 90 + 110 - 100
    assert add["interaction"] == -5.0  # measured 95: better than additive
    assert add["speed gain unmasked"] == 10.0
    assert add["speed gain masked"] == 15.0
    assert (out / "figures" / "speed_x_masking.png").stat().st_size > 0
    assert not (out / "tables" / "teacher_comparison.csv").exists()  # no teachers here


def test_additivity_leaves_out_a_setting_with_a_run_missing(tmp_path: Path) -> None:
    records = [r for r in masking_records() if r["run"] not in ("both", "both-ft")]
    out = write_study(tmp_path, records, {r["run"]: 100 for r in records})
    add = pd.read_csv(out / "tables" / "speed_x_masking_additivity.csv")
    assert add.empty


def teacher_records() -> list[dict]:
    records = []
    chains = (("t-base", "cfg-teacher", 60.0), ("t-speed", "cfg-teacher-speed", 50.0))
    for teacher, method, fid in chains:
        common = {"study": "combined", "method": method, "masking": "none", "w": 1.0}
        records.append(record(teacher, method, 0.0, fid, steps=8, nfe_per_image=16.0, **common))
        student = f"s-{teacher}"
        for steps, delta in ((8, 5.0), (4, 9.0)):
            records.append(
                record(
                    student,
                    method,
                    0.0,
                    fid + delta,
                    init_from=teacher,
                    steps=steps,
                    nfe_per_image=float(steps),
                    student_steps=steps,
                    **{**common, "method": "cfg-teacher"},  # students share one recipe
                )
            )
    return records


def test_teacher_comparison_puts_both_chains_side_by_side(tmp_path: Path) -> None:
    runs = {r["run"]: 100 for r in teacher_records()}
    out = write_study(tmp_path, teacher_records(), runs)
    table = pd.read_csv(out / "tables" / "teacher_comparison.csv")
    rows = table.set_index(["method", "steps"])
    base, speed = "FID (cfg-teacher)", "FID (cfg-teacher-speed)"
    assert rows.loc[("teacher", 8), base] == 60.0
    assert rows.loc[("teacher", 8), speed] == 50.0
    assert rows.loc[("student (4-step)", 4), base] == 69.0
    assert rows.loc[("student (4-step)", 4), speed] == 59.0
    assert (table["cfg-teacher-speed - cfg-teacher"] == -10.0).all()  # the other minus baseline
    assert rows.loc[("teacher", 8), "NFE"] == 16.0
    assert (out / "figures" / "teacher_comparison.png").stat().st_size > 0
    assert not (out / "tables" / "speed_x_masking.csv").exists()
