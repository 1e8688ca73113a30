"""The Snakemake DAG: lint, dry-runs of every tier, bad config, and the smoke tier end to end."""

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.workflow.report_render import chromium, drawn_fraction, embedded_results, render_result

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


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_lint_is_clean(tmp_path: Path) -> None:
    result = snakemake("--lint", "--config", f"results_dir={tmp_path}", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout, result.stdout


@pytest.mark.parametrize("tier", ["smoke", "cpu", "cifar10"])
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
        "data_floor",
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
    import pandas as pd

    results = tmp_path / "results"
    # A partial run first (the `train` target: training, fine-tuning, stage 1, halvings), then
    # the rest: the full DAG picks up the trained checkpoints and only samples and evaluates.
    snakemake("train", "--cores", "2", "--config", f"results_dir={results}")
    smoke = results / "smoke"
    assert (smoke / "masked-deferred-75-ft" / "train" / "summary.json").is_file()  # init_from
    assert (smoke / "distill-student" / "halving" / "n2" / "ckpt.pt").is_file()
    assert (smoke / "distill-direct" / "ckpt" / "iter0.pt").is_file()  # the teacher's EMA
    assert not list(smoke.glob("*/samples")), "the train target drew samples"
    rest = snakemake("--cores", "2", "--config", f"results_dir={results}")
    assert "rule train_model:" not in rest.stdout + rest.stderr
    report = results / "smoke" / "report"
    for study, tables, figures in (
        ("speed", ["speedup"], []),
        ("masked", ["masked_fid_vs_ratio"], ["fid_vs_mask_ratio", "fid_vs_training_cost"]),
        ("distill", ["distill_fid_is"], ["fid_vs_steps"]),
        (
            "combined",
            ["speed_x_masking", "speed_x_masking_additivity", "teacher_comparison"],
            ["speed_x_masking", "teacher_comparison"],
        ),
    ):
        for name in ["fid_over_training", *tables]:
            for fmt in ("csv", "md", "tex"):
                assert (report / study / "tables" / f"{name}.{fmt}").stat().st_size > 0
        for name in ["fid_vs_iteration", "sample_grids", *figures]:
            for fmt in ("png", "pdf"):
                assert (report / study / "figures" / f"{name}.{fmt}").stat().st_size > 0
        floor = pd.read_csv(report / study / "tables" / "data_floor.csv")
        assert floor["images"].tolist() == ["32 real test images"]
        assert floor["fid"].gt(0).all()
        tidy = pd.read_csv(report / study / "metrics_tidy.csv")
        fid = tidy[tidy["metric"] == "fid"]["value"]
        assert fid.notna().all()
        assert (fid > 0).all()

    speed = pd.read_csv(report / "speed" / "tables" / "speedup.csv")
    assert speed["variant"].tolist() == ["baseline", "speed-sampler", "speed-weighting", "speed"]
    assert speed.set_index("variant").loc["baseline", "speed-up (measured)"] == "1"

    masked = pd.read_csv(report / "masked" / "tables" / "masked_fid_vs_ratio.csv")
    assert sorted(zip(masked["variant"], masked["mask_ratio"], strict=True)) == [
        ("deferred", 0.5),
        ("deferred", 0.75),
        ("naive", 0.5),
        ("naive", 0.75),
        ("unmasked", 0.0),
    ]
    assert masked[masked["mask_ratio"] > 0]["FID after FT"].notna().all()
    flops = masked.set_index(["variant", "mask_ratio"])["train GFLOP/img"]
    assert flops[("deferred", 0.75)] < flops[("deferred", 0.5)] < flops[("unmasked", 0.0)]

    distill = pd.read_csv(report / "distill" / "tables" / "distill_fid_is.csv")
    students = distill[distill["method"].str.startswith("student")]
    assert sorted(set(students["steps"])) == [2, 4, 8]
    assert (students["NFE"] == students["steps"]).all()
    # Meng's direct baseline: its 4-step student, D, guided like the teacher (2 NFE per step).
    direct = distill[distill["method"].str.startswith("direct PD")]
    assert list(zip(direct["steps"], direct["sampler"], direct["NFE"], strict=True)) == [
        (4, "D", 8.0)
    ]
    teacher = distill[(distill["method"] == "teacher") & (distill["w"] > 0)]
    assert (teacher["NFE"] == 2 * teacher["steps"]).all()
    assert set(distill["sampler"]) == {"D", "S"}

    # The combined study: 2 methods x (unmasked, deferred 0.5 + FT); the two teachers' chains,
    # the baseline one read from the distill study (also_in).
    mixed = pd.read_csv(report / "combined" / "tables" / "speed_x_masking.csv")
    assert sorted(zip(mixed["method"], mixed["masking"], strict=True)) == [
        ("baseline", "deferred"),
        ("baseline", "unmasked"),
        ("speed", "deferred"),
        ("speed", "unmasked"),
    ]
    assert mixed[mixed["masking"] == "deferred"]["FID before FT"].notna().all()
    assert (mixed["train device-h"] > 0).all()
    additivity = pd.read_csv(report / "combined" / "tables" / "speed_x_masking_additivity.csv")
    assert len(additivity) == 1
    assert additivity["additive prediction"].notna().all()
    teachers = pd.read_csv(report / "combined" / "tables" / "teacher_comparison.csv")
    both = teachers.dropna(subset=["FID (cfg-teacher)", "FID (cfg-teacher-speed)"])
    assert set(both["steps"]) == {4, 8}  # the shared sets: D w=1 at 8 steps and the 4-step student
    assert set(both["w"]) == {1.0}  # only distill-student and distill-teacher are read (also_in)
    assert both["cfg-teacher-speed - cfg-teacher"].notna().all()

    again = snakemake("-n", "--cores", "2", "--config", f"results_dir={results}")
    assert "Nothing to be done" in again.stdout + again.stderr

    # The cost-to-quality frontier over all three studies (issue 18), from the same outputs.
    snakemake("frontier", "--cores", "2", "--config", f"results_dir={results}")
    frontier = pd.read_csv(results / "smoke" / "frontier" / "tables" / "frontier.csv")
    assert set(frontier["study"]) == {"speed", "masked", "distill", "combined"}
    assert (frontier["train PFLOP"] > 0).all()
    assert frontier["front (train)"].any()
    assert frontier["front (sampling)"].any()
    for name in ("fid_vs_training_flops", "fid_vs_sampling_nfe"):
        assert (results / "smoke" / "frontier" / "figures" / f"{name}.png").stat().st_size > 0

    # The Snakemake HTML report (issue 17): every table, figure and sample grid with its caption
    # (workflow/report/*.rst), and the figures drawn by headless Chromium.
    html = tmp_path / "report.html"
    snakemake("all", "frontier", "--report", str(html), "--config", f"results_dir={results}")
    embedded = {
        Path(path).relative_to(smoke).as_posix(): entry
        for path, entry in embedded_results(html.read_text()).items()
    }
    shown = [*report.glob("*/tables/*.csv"), *report.glob("*/figures/*.png")]
    shown += [*smoke.glob("frontier/*/*.csv"), *smoke.glob("frontier/*/*.png")]
    grids = sorted(smoke.glob("*/samples/*/*/grid.png"))
    assert len(shown) > 20
    assert len(grids) > 20
    for path in [*shown, *grids]:
        key = path.relative_to(smoke).as_posix()
        assert key in embedded, f"{key} is not in the report"
        assert "32" in embedded[key]["caption"], f"{key}: the caption does not give N"
    browser = chromium()
    blank = Image.new("RGB", (800, 500), "white")
    blank_uri = "data:image/png;base64," + base64.b64encode(png_bytes(blank)).decode()
    assert drawn_fraction(render_result(html, blank_uri, tmp_path / "blank.png", browser)) < 0.01
    for i, key in enumerate(
        [
            "report/speed/figures/fid_vs_iteration.png",
            "report/masked/figures/fid_vs_mask_ratio.png",
            "report/distill/figures/fid_vs_steps.png",
            "report/combined/figures/speed_x_masking.png",
            "frontier/figures/fid_vs_training_flops.png",
            grids[0].relative_to(smoke).as_posix(),
        ]
    ):
        shot = render_result(html, embedded[key]["data_uri"], tmp_path / f"shot{i}.png", browser)
        # a white page is 0; a line plot draws ~2 % of the area, a bar plot or grid far more
        assert drawn_fraction(shot) > 0.005, f"{key} renders blank in the report"

    # The publication of docs/results/<tier>/ from real DAG outputs (dirty: local edits allowed)
    from frugaldiff.report.publish import publish

    readme = publish(results / "smoke", tmp_path / "published", allow_dirty=True).read_text()
    for study in ("speed", "masked", "distill", "combined"):
        assert f"## Study `{study}`" in readme
        assert (tmp_path / "published" / study / "configs").is_dir()
    assert "![fid_vs_mask_ratio](masked/figures/fid_vs_mask_ratio.png)" in readme
    # the frontier rebuilt from the publication alone is the DAG's frontier, point for point
    assert "Not built" not in readme
    assert "Not in the frontier" not in readme
    points = ["run", "model", "sampler", "FID", "train PFLOP", "NFE/img"]
    published = pd.read_csv(tmp_path / "published" / "frontier" / "tables" / "frontier.csv")
    dag = pd.read_csv(smoke / "frontier" / "tables" / "frontier.csv")
    assert sorted(map(tuple, published[points].values.tolist())) == sorted(
        map(tuple, dag[points].values.tolist())
    )


PAPER_CONFIGS = sorted((REPO / "configs" / "paper").glob("*.yaml"))


@pytest.mark.parametrize("configfile", PAPER_CONFIGS, ids=lambda p: p.stem)
def test_paper_config_dry_runs_its_own_runs(configfile: Path, tmp_path: Path) -> None:
    import re

    import yaml

    cfg = yaml.safe_load(configfile.read_text())
    result = snakemake(
        "-n",
        "--cores",
        "1",
        "--configfile",
        str(configfile.relative_to(REPO)),
        "--config",
        f"results_dir={tmp_path}",
    )
    for rule in ("prepare_data", "train_model", "generate_samples", "compute_metrics"):
        assert rule in result.stdout, f"{rule} missing from the {configfile.name} plan"
    # Exactly this file's run table: nothing merged in from the smoke default.
    planned = set(re.findall(rf"{tmp_path}/{cfg['tier']}/([^/\s]+)/config\.yaml", result.stdout))
    assert planned == set(cfg["runs"])
    # Every training job reads the latents when data.latent is set, else the uint8 split.
    data = f"{tmp_path}/{cfg['tier']}/data/{cfg['data']['dataset']}"
    expected = f"{data}/latents/train.npz" if cfg["data"].get("latent") else f"{data}/train.npz"
    train_inputs = re.findall(r"rule train_model:\n    input: ([^\n]*)", result.stdout)
    assert len(train_inputs) == len(cfg["runs"])
    assert all(line.split(", ")[1] == expected for line in train_inputs), train_inputs[0]
    assert ("encode_latents" in result.stdout) == bool(cfg["data"].get("latent"))
