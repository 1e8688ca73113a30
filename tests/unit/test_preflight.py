"""Preflight's plan: which runs in which order, cut to how much, which sample sets."""

from pathlib import Path

import pytest
import yaml

from frugaldiff.config import SampleSetConfig, parse_tier_config, resolve_run
from frugaldiff.errors import ConfigError
from frugaldiff.preflight import run_order
from frugaldiff.preflight_inputs import sample_set_kinds, shrink, synthetic_split

REPO = Path(__file__).resolve().parents[2]


def tier(name: str = "cifar10.yaml"):
    path = REPO / "configs" / name
    return parse_tier_config(yaml.safe_load(path.read_text()), str(path))


def test_runs_come_after_the_runs_they_start_from() -> None:
    cifar = tier()
    assert run_order(cifar, ["distill-student", "masked-deferred-50-ft"]) == [
        "distill-teacher",
        "distill-student",
        "masked-deferred-50",
        "masked-deferred-50-ft",
    ]
    order = run_order(cifar)
    assert sorted(order) == sorted(cifar.runs)
    for name in order:
        init = cifar.runs[name].init_from
        assert init is None or order.index(init) < order.index(name)
    with pytest.raises(ConfigError, match=r"\['distil-student'\]: not runs"):
        run_order(cifar, ["distil-student"])


def test_shrink_cuts_budget_chain_and_precision_only() -> None:
    cifar = tier()
    run = resolve_run(cifar, "distill-student", REPO / "configs")
    small = shrink(run, iterations=2, batch=2, device="cpu")
    assert (small.train.iterations, small.train.batch_size, small.train.ckpt_iters) == (2, 2, (2,))
    assert (small.distill.start_steps, small.distill.end_steps) == (4, 1)
    assert small.distill.halving_iterations == 2
    assert run.train.precision == "bf16"
    assert small.train.precision == "fp32"  # CPU bf16 autocast is emulated
    assert shrink(run, 2, 2, "cuda").train.precision == "bf16"
    assert (small.model, small.diffusion, small.sample_sets) == (
        run.model,
        run.diffusion,
        run.sample_sets,
    )


def test_one_sample_set_per_kind_at_few_steps() -> None:
    sets = [
        SampleSetConfig("ddim", 256, 0.0),
        SampleSetConfig("ddim", 8, 1.0),
        SampleSetConfig("ddim", 16, 2.0),  # same kind as w = 1
        SampleSetConfig("ancestral", 100, 0.0, variance="learned", spacing="iddpm"),
        SampleSetConfig("ddim", 1, 0.0, clip_x0=False),
    ]
    kinds = sample_set_kinds(sets)
    assert [(s.solver, s.steps, s.w) for s in kinds] == [
        ("ddim", 4, 0.0),
        ("ddim", 4, 1.0),
        ("ancestral", 4, 0.0),
        ("ddim", 2, 0.0),
    ]
    assert kinds[2].variance == "learned"
    kept = sample_set_kinds([SampleSetConfig("stochastic", 8, 1.0)] * 2, max_steps=None)
    assert [s.steps for s in kept] == [8]


def test_latent_runs_train_on_synthetic_latents_of_their_shape(tmp_path: Path) -> None:
    from frugaldiff.data.loader import load_training_data

    paper = tier("paper/speed_ffhq256.yaml")
    run = resolve_run(paper, next(iter(paper.runs)), REPO / "configs")
    data = load_training_data(synthetic_split(tmp_path / "train.npz", run, 8))
    assert data.sample_shape == (4, 32, 32)  # DiT-XL/2 on sd-vae-ft-ema's 4×32² latents
    assert len(data) == 8
    assert data.codec_identity["vae"] == "preflight-synthetic"
