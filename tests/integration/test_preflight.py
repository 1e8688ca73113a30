"""`frugaldiff preflight` on the cifar10 tier, CPU: every job kind of its studies starts.

The runs below cover every kind of job the tier has: a DiT with SpeeD's sampler, weighting and
learned Σ (ancestral, IDDPM spacing); MicroDiT masked training with expert-choice MoE and
layer-wise scaling, Heun sampling; the CFG teacher, stage 1 from it (init_from, as fine-tuning
starts) and two halvings, with D and S. The whole tier is the same code over more runs (642 s
on 2 busy cores), too long for CI.
"""

import json
from pathlib import Path

import pytest

from frugaldiff.cli import main

REPO = Path(__file__).resolve().parents[2]
RUNS = ["speed", "masked-deferred-75-moe-lws", "distill-student"]


def test_preflight_starts_every_job_kind_of_the_cifar10_tier(tmp_path: Path, capsys) -> None:
    report = tmp_path / "preflight.json"
    code = main(
        [
            "preflight",
            "--config", str(REPO / "configs" / "cifar10.yaml"),
            "--blocks", str(REPO / "configs"),
            "--device", "cpu",
            "--runs", *RUNS,
            "--scratch", str(tmp_path / "scratch"),
            "--json", str(report),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    record = json.loads(report.read_text())
    assert record["device"] == "cpu"
    jobs = [(c["run"], c["job"]) for c in record["checks"]]
    trained = [run for run, job in jobs if job == "train"]
    assert trained == [
        "speed",
        "masked-deferred-75-moe-lws",
        "distill-teacher",  # brought in: stage 1 starts from it
        "distill-student",
    ]
    assert ("speed", "sample ancestral-s4-w0") in jobs
    assert ("masked-deferred-75-moe-lws", "sample heun-s4-w0") in jobs
    assert ("distill-teacher", "sample ancestral-s4-w0.3") in jobs  # CFG, 2 passes a step
    student = [job for run, job in jobs if run == "distill-student"]
    assert student.index("halve n2") < student.index("halve n1")
    # After each halving: D on the student's own grid, S `half` at twice its steps.
    assert {"sample ddim-s2-w0", "sample stochastic-s4-w0"} <= set(student)
    assert {"sample ddim-s1-w0", "sample stochastic-s2-w0.3"} <= set(student)
    assert all(c["seconds"] > 0 and c["peak_gib"] is None for c in record["checks"])
    assert (tmp_path / "scratch" / "distill-student" / "halve-n1" / "ckpt.pt").is_file()
    # Only checkpoints stay: each run's resumable training state is gone once it is published.
    assert not list((tmp_path / "scratch").rglob("state.pt"))
    out = capsys.readouterr().out
    assert f"preflight on cpu: {len(jobs)} jobs" in out
    assert "distill-student" in out


def test_own_batch_projects_each_runs_training_time(tmp_path: Path) -> None:
    """--batch 0 trains at the run's batch: step time × the run's iterations is a projection."""
    import yaml

    from frugaldiff.config import parse_tier_config, resolve_run
    from frugaldiff.preflight import Preflight, format_checks

    path = REPO / "configs" / "smoke.yaml"
    tier = parse_tier_config(yaml.safe_load(path.read_text()), str(path))
    preflight = Preflight(tier, REPO / "configs", tmp_path, device="cpu", batch=0)
    checks = preflight.run_all(["speed-baseline"])
    (train,) = [c for c in checks if c.job == "train"]
    iterations = resolve_run(tier, "speed-baseline", REPO / "configs").train.iterations
    assert train.step_seconds > 0
    assert train.projected_hours == train.step_seconds * iterations / 3600
    # Sampling: 32 images drawn at 4 steps project 2 checkpoints x 32 images x 16 steps.
    (sample,) = [c for c in checks if c.job.startswith("sample")]
    assert sample.projected_hours == pytest.approx(sample.seconds * (2 * 16 / 4) / 3600, rel=0.05)
    (evaluate,) = [c for c in checks if c.job == "evaluate (Inception)"]
    assert evaluate.projected_hours > 0
    assert preflight.notes == [
        "evaluation: 2 sample sets x 32 images + reference 256 + floor 32 = 352 Inception "
        f"images at {352 / (evaluate.projected_hours * 3600):.1f} images/s"
    ]
    table = format_checks(checks, "cpu")
    assert (
        f"projected training at the runs' own batches and budgets: {train.projected_hours:.2f}"
        in table
    )
    assert "projected sampling" in table
    assert "projected evaluation" in table
    small = Preflight(tier, REPO / "configs", tmp_path / "b", device="cpu").run_all(
        ["speed-baseline"]
    )
    assert all(c.projected_hours is None for c in small)  # batch 2 projects nothing


def test_latent_tier_trains_on_synthetic_latents_and_notes_unchecked_sampling(
    tmp_path: Path,
) -> None:
    """A paper (latent) tier, its model swapped for dit-tiny to fit a CPU test."""
    import yaml

    from frugaldiff.config import parse_tier_config
    from frugaldiff.preflight import Preflight

    path = REPO / "configs" / "paper" / "speed_ffhq256.yaml"
    data = yaml.safe_load(path.read_text())
    name = next(iter(data["runs"]))
    data["runs"] = {name: {**data["runs"][name], "model": {"name": "dit-tiny"}}}
    preflight = Preflight(parse_tier_config(data, str(path)), REPO / "configs", tmp_path)
    checks = preflight.run_all()
    assert [(c.run, c.job) for c in checks] == [(name, "train")]
    assert preflight.notes == [
        f"{name}: sampling not checked (a latent run decodes with its VAE, whose weights "
        "preflight does not load)"
    ]


def test_cpu_tier_slice_preflights_at_16px(tmp_path: Path, capsys) -> None:
    """A slice of the cpu tier (one run per study, the runs they start from) starts on 16² data."""
    import yaml

    from frugaldiff.config import parse_tier_config
    from frugaldiff.models.registry import MODEL_SIZES
    from frugaldiff.preflight import Preflight

    path = REPO / "configs" / "cpu.yaml"
    tier = parse_tier_config(yaml.safe_load(path.read_text()), str(path))
    assert tier.data.resolution == 16
    runs = ["speed", "masked-deferred-75-ft", "distill-student"]
    for run in runs:
        assert MODEL_SIZES[tier.runs[run].model.name].image_size == 16, run
    checks = Preflight(tier, REPO / "configs", tmp_path, device="cpu").run_all(runs)
    trained = [c.run for c in checks if c.job == "train"]
    assert trained == [
        "speed",
        "masked-deferred-75",  # brought in: fine-tuning starts from it
        "masked-deferred-75-ft",
        "distill-teacher",
        "distill-student",
    ]
    assert {("distill-student", "halve n1"), ("masked-deferred-75-ft", "sample heun-s4-w0")} <= {
        (c.run, c.job) for c in checks
    }
    assert all(c.seconds > 0 for c in checks)


def test_a_direct_run_preflights_its_untrained_start_and_its_halvings(tmp_path: Path) -> None:
    """Meng's direct baseline: 0 updates (the teacher's EMA), then a halving sampled with CFG."""
    import yaml

    from frugaldiff.config import parse_tier_config
    from frugaldiff.preflight import Preflight

    path = REPO / "configs" / "smoke.yaml"
    tier = parse_tier_config(yaml.safe_load(path.read_text()), str(path))
    checks = Preflight(tier, REPO / "configs", tmp_path, device="cpu").run_all(["distill-direct"])
    direct = [c.job for c in checks if c.run == "distill-direct"]
    # Its own checkpoint is the teacher's, drawn by the teacher's run: only the halving's set.
    assert direct == ["train", "halve n2", "sample ddim-s2-w1"]
    assert (tmp_path / "distill-direct" / "halve-n2" / "ckpt.pt").is_file()
