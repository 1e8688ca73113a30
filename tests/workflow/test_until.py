"""`--until` for the run-level rules on a tier whose training jobs chain (workflow/rules/until.smk).

Snakemake 9 never starts a job that depends on an --until job; the Snakefile turns --until
train_model / halve_steps / generate_samples / compute_metrics into the files they stand for.
The tier (until_tier.yaml): a CFG teacher, a stage-1 student from it (init_from) and two
halvings 4 -> 2 -> 1 — both kinds of chain — a few iterations each.
"""

from pathlib import Path

from .test_dag import snakemake

TIER = "tests/workflow/until_tier.yaml"


def _run(results: Path, *args: str, check: bool = True):
    return snakemake(
        "--cores", "2", "--configfile", TIER, "--config", f"results_dir={results}", *args,
        check=check,
    )  # fmt: skip


def test_until_each_run_level_rule_stops_there_and_runs_every_chained_job(tmp_path: Path) -> None:
    tier = tmp_path / "until-test"
    summaries = [tier / run / "train" / "summary.json" for run in ("teacher", "student")]
    halvings = [tier / "student" / "halving" / f"n{n}" / "ckpt.pt" for n in (2, 1)]
    sample_sets = [
        tier / "teacher" / "samples" / "iter6" / "ddim-s4-w0" / "images.npz",
        tier / "student" / "samples" / "iter4" / "ddim-s4-w1" / "images.npz",
        tier / "student" / "samples" / "n2" / "ddim-s2-w1" / "images.npz",
        tier / "student" / "samples" / "n1" / "ddim-s1-w1" / "images.npz",
    ]

    # The student starts from the teacher: the chain Snakemake's own --until stopped at.
    _run(tmp_path, "--until", "train_model")
    assert all(path.is_file() for path in summaries)
    assert not (tier / "student" / "halving").exists()
    assert not (tier / "teacher" / "samples").exists()
    assert "Nothing to be done" in _run(tmp_path, "-n", "--until", "train_model").stdout

    # Each halving starts from the previous one.
    _run(tmp_path, "--until", "halve_steps")
    assert all(path.is_file() for path in halvings)
    assert not (tier / "teacher" / "samples").exists()

    _run(tmp_path, "--until", "generate_samples")
    assert all(path.is_file() for path in sample_sets)
    assert not (tier / "teacher" / "metrics").exists()
    assert not (tier / "reference").exists()  # FID's statistics are downstream: not asked for

    # A study target narrows the runs; a target per run works as any file target.
    assert "Nothing to be done" in _run(tmp_path, "-n", "distill", "--until", "train_model").stdout
    assert "Nothing to be done" in _run(tmp_path, "-n", str(halvings[-1])).stdout
    plan = _run(tmp_path, "-n", "--until", "compute_metrics").stdout
    assert "compute_metrics" in plan
    assert "make_report" not in plan


def test_until_refuses_what_it_cannot_translate_before_any_job(tmp_path: Path) -> None:
    file_target = str(tmp_path / "until-test" / "student" / "train" / "summary.json")
    result = _run(tmp_path, "-n", "--until", "train_model", "--", file_target, check=False)
    assert result.returncode != 0
    assert "takes named targets" in result.stdout + result.stderr
    result = _run(tmp_path, "-n", "--until", "train_model", "reference_stats", check=False)
    assert result.returncode != 0
    assert "reference_stats cannot be combined with train_model" in result.stdout + result.stderr
    assert not (tmp_path / "until-test").exists()
