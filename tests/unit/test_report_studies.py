"""Study tables from synthetic metrics: MicroDiT's masking ablation and the distillation grid."""

from pathlib import Path

import pandas as pd

from frugaldiff.io import write_json
from frugaldiff.report.build import build_report


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
        record("n75", "naive", 0.75, 90.0),
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
