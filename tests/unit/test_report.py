"""Report: metrics files -> tidy frame -> one table row per sample set, figures on disk."""

from pathlib import Path

import pandas as pd
import pytest

from frugaldiff.errors import DataError
from frugaldiff.io import write_json
from frugaldiff.report.build import build_report
from frugaldiff.report.collect import sample_set_label


def record(iteration: int, fid: float, seconds: float) -> dict:
    return {
        "tier": "t",
        "study": "baseline",
        "run": "baseline",
        "method": "baseline",
        "iteration": iteration,
        "solver": "ddim",
        "steps": 16,
        "w": 0.0,
        "nfe_per_image": 16.0,
        "seconds_per_image": seconds,
        "n_images": 32,
        "n_reference": 256,
        "reference_split": "train",
        "metrics": {
            "fid": fid,
            "fid_cleanfid": fid + 1,
            "kid_mean": 0.1,
            "kid_std": 0.01,
            "inception_score": None,
            "inception_score_note": "n/a (no logits weights)",
        },
        "provenance": {"git_commit": "abc", "config_hash": "h", "weights_sha256": "s"},
    }


def test_one_row_per_sample_set_with_measured_values(tmp_path: Path) -> None:
    paths = []
    for it, fid, sec in ((50, 300.0, 0.2), (100, 200.0, 0.3), (150, 100.0, 0.25)):
        paths.append(tmp_path / f"m{it}.json")
        write_json(paths[-1], record(it, fid, sec))
    written = build_report(paths, [], tmp_path / "report", "t", "baseline")
    assert all(p.stat().st_size > 0 for p in written)
    table = pd.read_csv(tmp_path / "report" / "tables" / "fid_over_training.csv")
    assert table["iteration"].tolist() == [50, 100, 150]
    assert table["fid"].tolist() == [300.0, 200.0, 100.0]
    assert table["fid_cleanfid"].tolist() == [301.0, 201.0, 101.0]
    assert table["seconds_per_image"].tolist() == [0.2, 0.3, 0.25]
    assert (table["inception_score"] == "n/a (no logits weights)").all()
    md = (tmp_path / "report" / "tables" / "fid_over_training.md").read_text()
    assert "| baseline" in md
    assert (
        "\\begin{tabular}" in (tmp_path / "report" / "tables" / "fid_over_training.tex").read_text()
    )


def test_malformed_metrics_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    write_json(bad, {"run": "x"})
    with pytest.raises(DataError, match=r"bad\.json: metrics file lacks key"):
        build_report([bad], [], tmp_path / "report", "t", "baseline")


def test_variance_and_spacing_reach_the_table_and_the_labels(tmp_path: Path) -> None:
    paths = []
    for it, fid in ((50, 300.0), (100, 200.0)):
        rec = record(it, fid, 0.2)
        rec.update(solver="ancestral", variance="learned", spacing="iddpm")
        paths.append(tmp_path / f"m{it}.json")
        write_json(paths[-1], rec)
    build_report(paths, [], tmp_path / "report", "t", "baseline")
    table = pd.read_csv(tmp_path / "report" / "tables" / "fid_over_training.csv")
    assert table["variance"].tolist() == ["learned", "learned"]
    assert table["spacing"].tolist() == ["iddpm", "iddpm"]
    row = {"solver": "ancestral", "steps": 250, "w": 0.5, "variance": "learned"}
    assert sample_set_label({**row, "spacing": "iddpm"}) == (
        "ancestral 250 w=0.5 (learned Σ, iddpm spacing)"
    )
    assert sample_set_label({**row, "variance": None, "spacing": "trailing"}) == (
        "ancestral 250 w=0.5"
    )
    assert sample_set_label(pd.Series({**row, "variance": float("nan")})) == "ancestral 250 w=0.5"


def test_tables_without_variance_keep_their_columns(tmp_path: Path) -> None:
    paths = [tmp_path / "m.json"]
    write_json(paths[0], record(50, 300.0, 0.2))
    build_report(paths, [], tmp_path / "report", "t", "baseline")
    table = pd.read_csv(tmp_path / "report" / "tables" / "fid_over_training.csv")
    assert "variance" not in table.columns
    assert "spacing" not in table.columns


def test_data_floor_gets_its_table_caption_and_line(tmp_path: Path) -> None:
    paths = [tmp_path / "m.json"]
    write_json(paths[0], record(50, 300.0, 0.2))
    floor = tmp_path / "floor.json"
    metrics = {"fid": 41.25, "fid_cleanfid": None, "kid_mean": 0.002, "kid_std": 0.0004}
    write_json(
        floor,
        {"split": "test", "reference_split": "train", "n_images": 32, "n_reference": 256,
         "metrics": metrics},
    )  # fmt: skip
    build_report(paths, [], tmp_path / "report", "t", "baseline", floor=floor)
    table = pd.read_csv(tmp_path / "report" / "tables" / "data_floor.csv")
    assert table.to_dict("records") == [
        {"images": "32 real test images", "reference": "256 train images", "fid": 41.25,
         "kid_mean": 0.002, "kid_std": 0.0004}
    ]  # fmt: skip
    md = (tmp_path / "report" / "tables" / "fid_over_training.md").read_text()
    assert "floor: FID 41.25 of 32 real test images" in md
    write_json(floor, {"split": "test"})
    with pytest.raises(DataError, match=r"floor\.json: data floor record lacks key"):
        build_report(paths, [], tmp_path / "report2", "t", "baseline", floor=floor)


def test_sample_grids_show_each_runs_final_model(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from frugaldiff.report.collect import collect_metrics
    from frugaldiff.report.grids import final_sets

    paths = []
    for run, it, student_steps in (("a", 50, None), ("a", 100, None), ("d", 10, 4), ("d", 10, 2)):
        grid = tmp_path / f"{run}-{it}-{student_steps}.png"
        Image.fromarray(np.full((16, 16, 3), it, dtype=np.uint8)).save(grid)
        rec = record(it, 100.0 + it, 0.2)
        rec.update(run=run, student_steps=student_steps, grid=str(grid))
        paths.append(tmp_path / f"m-{run}-{it}-{student_steps}.json")
        write_json(paths[-1], rec)
    final = final_sets(collect_metrics(paths))
    picked = zip(final["run"], final["iteration"], final["student_steps"], strict=True)
    assert sorted(picked) == [("a", 100, 0), ("d", 10, 2)]
    build_report(paths, [], tmp_path / "report", "t", "baseline")
    assert (tmp_path / "report" / "figures" / "sample_grids.png").stat().st_size > 0
    (tmp_path / "a-100-None.png").unlink()
    with pytest.raises(DataError, match=r"its sample grid .*a-100-None\.png is missing"):
        build_report(paths, [], tmp_path / "report2", "t", "baseline")
