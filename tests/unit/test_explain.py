"""frugaldiff explain: each run's resolved objects and the jobs the DAG starts for it."""

from pathlib import Path

import pytest
import yaml

from frugaldiff.cli import main
from frugaldiff.config import parse_tier_config
from frugaldiff.explain import explain, sample_set_names

REPO = Path(__file__).resolve().parents[2]


def tier(name: str = "smoke"):
    path = REPO / "configs" / f"{name}.yaml"
    return parse_tier_config(yaml.safe_load(path.read_text()), str(path))


def test_a_speed_run_shows_its_sampler_weighting_and_model() -> None:
    text = explain(tier("cpu"), REPO / "configs", ["speed"])
    assert "SpeeDTimestepSampler(anchor=642, k=5.0, tau=700, dual=True)" in text
    assert "ChangeAwareWeighting() from ceiling (λ) 0.6, tau 700" in text
    assert "dit-cpu: 1,275,928 parameters" in text  # built on the meta device, counted
    assert "AncestralSolver(spacing='iddpm', variance='learned'), 50 steps" in text
    assert "generate_samples 4, compute_metrics 4" in text  # 4 checkpoints x 1 set


def test_a_paper_size_model_is_counted_without_allocating_it() -> None:
    path = REPO / "configs" / "paper" / "microdit_imagenet256.yaml"
    paper = parse_tier_config(yaml.safe_load(path.read_text()), str(path))
    run = next(r for r, spec in paper.runs.items() if spec.model.name == "MicroDiT-Tiny/2")
    assert "MicroDiT-Tiny/2: 101,277,200 parameters" in explain(paper, REPO / "configs", [run])


def test_the_jobs_printed_are_the_dags_sample_sets() -> None:
    smoke = tier()
    sets = sample_set_names(smoke.runs["distill-student"])
    assert ("n2", "ddim-s2-w0") in sets
    assert ("n4", "stochastic-s8-w1") in sets  # S half: the 4-step student jumps at 8 steps
    text = explain(smoke, REPO / "configs", ["distill-student"])
    assert f"halve_steps 2, generate_samples {len(sets)}, compute_metrics {len(sets)}" in text
    assert "halvings 8 -> 4 -> 2" in text


def test_a_direct_run_lists_only_its_halvings_sets() -> None:
    """Its iter0 is the teacher's EMA (the teacher's run draws it); only its 4-step student is."""
    smoke = tier()
    assert sample_set_names(smoke.runs["distill-direct"]) == [("n4", "ddim-s4-w1")]
    text = explain(smoke, REPO / "configs", ["distill-direct"])
    assert "PD of 'distill-teacher' itself, no stage 1" in text
    assert "4 teacher NFE per example" in text
    assert "halvings 8 -> 4 (30 iterations each" in text
    assert "train_model 1, halve_steps 1, generate_samples 1, compute_metrics 1" in text


@pytest.mark.parametrize("bad", [["nope"], ["speed", "speeed"]])
def test_cli_names_an_unknown_run(bad: list[str], capsys) -> None:
    assert main(["explain", "--config", str(REPO / "configs" / "smoke.yaml"), "--run", *bad]) == 2
    assert f"--run {bad[-1]!r} is not a run" in capsys.readouterr().err


def test_cli_explains_every_run_by_default(capsys) -> None:
    assert main(["explain", "--config", str(REPO / "configs" / "smoke.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.count("\nrun ") == len(tier().runs)
