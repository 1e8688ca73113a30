"""Study tables from synthetic metrics: MicroDiT's masking ablation and the distillation grid."""

from pathlib import Path

import pandas as pd
import pytest

from frugaldiff.io import write_json
from frugaldiff.report.build import build_report
from frugaldiff.report.collect import collect_metrics
from frugaldiff.report.distill import IS_UNAVAILABLE, distill_table, fid_is_tradeoff
from frugaldiff.report.plots import save_figure


def record(
    run: str,
    variant: str,
    ratio: float,
    fid: float,
    init_from: str | None = None,
    study: str = "masked",
    **extra: object,
) -> dict:
    base = {
        "tier": "t",
        "study": study,
        "run": run,
        "method": "baseline",
        "variant": variant,
        "mask_ratio": ratio,
        "init_from": init_from,
        "iteration": 100,
        "solver": "ddim",
        "steps": 16,
        "w": 0.0,
        "nfe_per_image": 16.0,
        "seconds_per_image": 0.1,
        "n_images": 32,
        "n_reference": 256,
        "reference_split": "train",
        "student_steps": None,
        "metrics": {
            "fid": fid,
            "fid_cleanfid": fid,
            "kid_mean": 0.1,
            "kid_std": 0.01,
            "inception_score": None,
            "inception_score_note": "n/a (no logits weights)",
        },
        "provenance": {
            "git_commit": "abc",
            "config_hash": "h",
            "weights_sha256": "s",
            "train_seed": 0,
        },
    }
    base.update(extra)
    return base


def test_masked_table_pairs_pretraining_and_fine_tuning(tmp_path: Path) -> None:
    records = [
        record("u", "unmasked", 0.0, 50.0),
        record("d75", "deferred", 0.75, 60.0),
        # A free-text label never decides the paper cell: the recorded masking mode does.
        record("n75", "deferred (mislabelled)", 0.75, 90.0, masking="naive"),
        record("d75-ft", "deferred", 0.0, 55.0, init_from="d75"),
    ]
    metrics, summaries = [], []
    for i, r in enumerate(records):
        metrics.append(tmp_path / f"m{i}.json")
        write_json(metrics[-1], r)
        summaries.append(tmp_path / f"s{i}.json")
        write_json(
            summaries[-1],
            {
                "run": r["run"],
                "images_per_second": 100.0 + i,
                "step_seconds": 0.16,
                "train_flops_per_image": 3e9,
                "parameters": 1000,
            },
        )
    build_report(metrics, summaries, tmp_path / "report", "t", "masked")
    table = pd.read_csv(tmp_path / "report" / "tables" / "masked_fid_vs_ratio.csv")
    rows = table.set_index("run")
    assert list(rows.index) == ["u", "d75", "n75"]  # fine-tuning is a column, not a row
    assert rows.loc["d75", "FID after FT"] == 55.0
    assert pd.isna(rows.loc["n75", "FID after FT"])
    assert rows.loc["d75", "paper FID (text-to-image)"] == 5.03  # configs/paper_values.yaml
    assert rows.loc["u", "paper FID (text-to-image)"] == 3.79
    assert rows.loc["n75", "images/s"] == 102.0
    assert rows.loc["n75", "variant"] == "naive"
    assert rows.loc["n75", "paper FID (text-to-image)"] == 16.5  # the naive r = 0.75 cell
    for name in ("fid_vs_mask_ratio", "fid_vs_training_cost"):
        assert (tmp_path / "report" / "figures" / f"{name}.png").stat().st_size > 0


def test_distill_table_counts_nfe_per_model(tmp_path: Path) -> None:
    records = [
        record("teacher", "t", 0.0, 80.0, study="distill", steps=8, w=1.0, nfe_per_image=16.0),
        record(
            "student",
            "s",
            0.0,
            90.0,
            init_from="teacher",
            study="distill",
            steps=8,
            w=1.0,
            nfe_per_image=8.0,
            student_steps=8,
        ),
        record(
            "student",
            "s",
            0.0,
            95.0,
            init_from="teacher",
            study="distill",
            steps=1,
            w=1.0,
            nfe_per_image=1.0,
            student_steps=1,
            iteration=30,
            solver="stochastic",
        ),
    ]
    paths = []
    for i, r in enumerate(records):
        paths.append(tmp_path / f"m{i}.json")
        write_json(paths[-1], r)
    build_report(paths, [], tmp_path / "report", "t", "distill")
    table = pd.read_csv(tmp_path / "report" / "tables" / "distill_fid_is.csv")
    assert dict(zip(table["method"] + table["steps"].astype(str), table["NFE"], strict=True)) == {
        "teacher8": 16.0,
        "student (8-step)8": 8.0,
        "student (1-step)1": 1.0,
    }
    one_step = table[table["steps"] == 1]
    assert one_step["sampler"].tolist() == ["S"]
    assert one_step["paper FID"].tolist() == [5.98]  # cited by DMD, from paper_values.yaml
    assert table[table["method"] == "teacher"]["paper FID"].isna().all()
    assert (tmp_path / "report" / "figures" / "fid_vs_steps.png").stat().st_size > 0


def test_distill_table_shows_direct_pd_beside_the_students(tmp_path: Path) -> None:
    """Meng's direct baseline: its own method label, D guided at 2 NFE a step, no paper anchor."""
    common = {"init_from": "teacher", "study": "distill", "w": 1.0, "iteration": 30}
    records = [
        record("student", "s", 0.0, 90.0, **common, steps=1, nfe_per_image=1.0, student_steps=1,
               distill_stage="guidance"),
        record("direct", "direct", 0.0, 99.0, **common, steps=1, nfe_per_image=2.0,
               student_steps=1, distill_stage="direct"),
        record("direct", "direct", 0.0, 97.0, **common, steps=4, nfe_per_image=8.0,
               student_steps=4, distill_stage="direct"),
    ]  # fmt: skip
    table = distill_table(tidy_of(records, tmp_path)).set_index(["method", "steps"])
    assert table.loc[("direct PD (4-step)", 4), "NFE"] == 8.0
    assert table.loc[("direct PD (1-step)", 1), "NFE"] == 2.0
    assert table.loc[("student (1-step)", 1), "NFE"] == 1.0
    assert set(table["sampler"]) == {"D"}
    assert table.loc[("student (1-step)", 1), "paper FID"] == 5.98  # Meng's own 1-step student
    assert pd.isna(table.loc[("direct PD (1-step)", 1), "paper FID"])


def distill_records(inception: bool) -> list[dict]:
    """Teacher DDIM at 8 steps and a 4-step student (D, S half, S same) over w in {0, 1, 2}."""
    records = []
    for w in (0.0, 1.0, 2.0):
        score = {"inception_score": 5.0 + w} if inception else {}
        fid = 80.0 - 10 * w
        teacher = record("teacher", "t", 0.0, fid, study="distill", steps=8, w=w)
        teacher["metrics"].update(score)
        records.append(teacher)
        for solver, steps, jump in (
            ("ddim", 4, None),
            ("stochastic", 8, "half"),
            ("stochastic", 4, "same"),
        ):
            student = record(
                "student",
                "s",
                0.0,
                fid + 5,
                init_from="teacher",
                study="distill",
                solver=solver,
                steps=steps,
                w=w,
                nfe_per_image=float(steps),
                student_steps=4,
                iteration=30,
                jump_model=jump,
                train_grid="fine",
            )
            student["metrics"].update(score)
            records.append(student)
    return records


def tidy_of(records: list[dict], tmp_path: Path) -> pd.DataFrame:
    paths = []
    for i, r in enumerate(records):
        paths.append(tmp_path / f"m{i}.json")
        write_json(paths[-1], r)
    return collect_metrics(paths)


def test_distill_table_records_jump_model_and_train_grid(tmp_path: Path) -> None:
    table = distill_table(tidy_of(distill_records(inception=False), tmp_path))
    s_rows = table[(table["sampler"] == "S") & (table["w"] == 1.0)]
    assert sorted(zip(s_rows["jump model"], s_rows["steps"], s_rows["NFE"], strict=True)) == [
        ("half", 8, 8.0),
        ("same", 4, 4.0),
    ]
    assert set(s_rows["train grid"]) == {"fine"}
    teacher = table[table["method"] == "teacher"]
    assert set(teacher["jump model"]) == {""}
    assert set(table["IS"]) == {IS_UNAVAILABLE}
    assert (table["KID"] == 0.1).all()


@pytest.mark.parametrize("inception", [False, True])
def test_fid_is_tradeoff_draws_is_only_when_measured(tmp_path: Path, inception: bool) -> None:
    table = distill_table(tidy_of(distill_records(inception), tmp_path))
    if inception:
        assert table["IS"].tolist() == (5.0 + table["w"]).tolist()
    fig = fid_is_tradeoff(table, "trade-off")
    labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]
    if inception:
        assert labels == [("IS", "FID")]
        assert "FID vs IS over w" in fig.axes[0].get_title()
    else:
        assert labels == [("w (guidance weight)", "FID"), ("w (guidance weight)", "KID")]
        assert IS_UNAVAILABLE in fig.get_suptitle()
    # One curve per (model, steps, sampler[, jump model]) at the (h) step counts 4 and 8.
    legend = {t.get_text() for t in fig.axes[0].get_legend().get_texts()}
    assert legend == {
        "teacher D, 8 steps",
        "student (4-step) D, 4 steps",
        "student (4-step) S half, 8 steps",
        "student (4-step) S same, 4 steps",
    }
    written = save_figure(fig, tmp_path / "figures" / "fid_is_tradeoff")
    assert all(p.stat().st_size > 0 for p in written)
