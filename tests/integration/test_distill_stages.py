"""Distillation jobs end to end on a tiny UNet: teacher -> stage 1 -> one halving -> samples."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from frugaldiff.config import DiffusionConfig, DistillConfig, SampleSetConfig, WeightingConfig
from frugaldiff.errors import CheckpointError, ConfigError
from frugaldiff.sampling.generate import SampleRequest, generate_samples
from frugaldiff.train.loop import Trainer
from frugaldiff.train.state import load_checkpoint

from .test_train import tiny_run

DIFFUSION = DiffusionConfig(loss_weighting=WeightingConfig("snr_trunc"))
DISTILL = DistillConfig(stage="guidance", start_steps=4, end_steps=2, halving_iterations=3)


def train(cfg, data: Path, state: Path, **kwargs) -> Trainer:
    trainer = Trainer.for_run(cfg, data, state, **kwargs)
    for _ in trainer.steps():
        pass
    return trainer


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("distill")
    rng = np.random.default_rng(0)
    data = tmp / "train.npz"
    np.savez(
        data, images=rng.integers(0, 256, (32, 3, 8, 8), dtype=np.uint8), labels=np.arange(32) % 10
    )
    base = dataclasses.replace(tiny_run(iterations=4, ckpt_iters=(4,)), diffusion=DIFFUSION)
    teacher_cfg = dataclasses.replace(base, model=dataclasses.replace(base.model, dropout=0.0))
    teacher = train(teacher_cfg, data, tmp / "t")
    teacher.publish({4: tmp / "teacher.pt"}, tmp / "t.jsonl", tmp / "t.json")
    student_cfg = dataclasses.replace(
        teacher_cfg, name="student", distill=DISTILL, init_checkpoint=str(tmp / "teacher.pt")
    )
    student = train(student_cfg, data, tmp / "s")
    student.publish({4: tmp / "student.pt"}, tmp / "s.jsonl", tmp / "s.json")
    halving = train(
        student_cfg, data, tmp / "h", halving_teacher=str(tmp / "student.pt"), student_steps=2
    )
    halving.publish({3: tmp / "n2.pt"}, tmp / "h.jsonl", tmp / "h.json")
    return {
        "data": data,
        "teacher": tmp / "teacher.pt",
        "student": tmp / "student.pt",
        "n2": tmp / "n2.pt",
        "cfg": student_cfg,
    }


def test_checkpoints_record_the_distillation_stage(chain: dict) -> None:
    student = load_checkpoint(chain["student"])
    assert student["guidance_w_max"] == 4.0
    assert student["student_steps"] == 4
    n2 = load_checkpoint(chain["n2"])
    assert n2["student_steps"] == 2
    assert n2["halving"] is True
    assert n2["iteration"] == 3
    # No EMA in a halving: the published "EMA" is the raw weights.
    for key, value in n2["model"].items():
        assert torch.equal(value, n2["ema"][key]), key


def test_halving_teacher_must_have_twice_the_steps(chain: dict, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="cannot teach"):
        Trainer.for_run(
            chain["cfg"], chain["data"], tmp_path, halving_teacher=str(chain["n2"]), student_steps=2
        )
    with pytest.raises(CheckpointError, match="not a w-conditioned"):
        Trainer.for_run(
            chain["cfg"],
            chain["data"],
            tmp_path,
            halving_teacher=str(chain["teacher"]),
            student_steps=2,
        )


def test_stage_one_needs_a_teacher(chain: dict, tmp_path: Path) -> None:
    cfg = dataclasses.replace(chain["cfg"], init_checkpoint=None)
    with pytest.raises(ConfigError, match="needs init_from"):
        Trainer.for_run(cfg, chain["data"], tmp_path)


@pytest.mark.parametrize("solver", ["ddim", "stochastic"])
def test_students_sample_with_one_pass_per_step(chain: dict, tmp_path: Path, solver: str) -> None:
    request = SampleRequest(
        chain["n2"],
        SampleSetConfig(solver=solver, steps=2, w=1.0),
        num_images=4,
        seed=0,
        batch_size=4,
        device="cpu",
    )
    meta = generate_samples(request, tmp_path / "x.npz", tmp_path / "x.png")
    assert meta["nfe_per_image"] == 2
    assert meta["student_steps"] == 2


def test_teacher_guided_costs_two_passes(chain: dict, tmp_path: Path) -> None:
    request = SampleRequest(
        chain["teacher"],
        SampleSetConfig(solver="ddim", steps=4, w=1.0),
        num_images=4,
        seed=0,
        batch_size=4,
        device="cpu",
    )
    assert generate_samples(request, tmp_path / "x.npz", tmp_path / "x.png")["nfe_per_image"] == 8


@pytest.mark.parametrize(("steps", "jump_model"), [(4, "half"), (2, "same")])
def test_s_jump_model_follows_the_checkpoint_and_steps(
    chain: dict, tmp_path: Path, steps: int, jump_model: str
) -> None:
    """The 2-step halving drives S at 4 steps (half: it makes the 2/4 jumps) or at 2 (same)."""
    request = SampleRequest(
        chain["n2"],
        SampleSetConfig(solver="stochastic", steps=steps, w=1.0, jump_model=jump_model),
        num_images=3,
        seed=0,
        batch_size=2,
        device="cpu",
    )
    meta = generate_samples(request, tmp_path / "x.npz", tmp_path / "x.png")
    assert meta["jump_model"] == jump_model
    assert meta["checkpoint"] == str(chain["n2"])
    assert meta["student_steps"] == 2
    assert meta["steps"] == steps
    assert meta["nfe_per_image"] == steps  # one pass per call, N calls
    assert meta["train_grid"] == chain["cfg"].distill.train_grid


def test_stage_one_s_jumps_with_itself(chain: dict, tmp_path: Path) -> None:
    request = SampleRequest(
        chain["student"],
        SampleSetConfig(solver="stochastic", steps=4, w=1.0),
        num_images=2,
        seed=0,
        batch_size=2,
        device="cpu",
    )
    meta = generate_samples(request, tmp_path / "x.npz", tmp_path / "x.png")
    assert (meta["jump_model"], meta["train_grid"], meta["nfe_per_image"]) == ("same", None, 4)


def test_halving_student_only_on_its_own_grid(chain: dict, tmp_path: Path) -> None:
    request = SampleRequest(
        chain["n2"],
        SampleSetConfig(solver="ddim", steps=4, w=0.0),
        num_images=2,
        seed=0,
        batch_size=2,
        device="cpu",
    )
    with pytest.raises(ConfigError, match="own grid"):
        generate_samples(request, tmp_path / "x.npz", tmp_path / "x.png")
    # S reaches twice the steps (half), never more.
    s_at_eight = dataclasses.replace(request, sample_set=SampleSetConfig("stochastic", 8, 0.0))
    with pytest.raises(ConfigError, match="own grid"):
        generate_samples(s_at_eight, tmp_path / "x.npz", tmp_path / "x.png")


# ---- Meng et al.'s direct baseline (docs/guided_distillation.md l) ----------------------------

DIRECT = DistillConfig(stage="direct", start_steps=4, end_steps=2, halving_iterations=3)


@pytest.fixture(scope="module")
def direct_chain(chain: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The direct run's untrained stage (iter0 = the teacher's EMA), then its halving 4 -> 2."""
    tmp = tmp_path_factory.mktemp("direct")
    cfg = dataclasses.replace(
        chain["cfg"],
        name="direct",
        distill=DIRECT,
        train=dataclasses.replace(chain["cfg"].train, iterations=0, ckpt_iters=(0,)),
        init_checkpoint=str(chain["teacher"]),
    )
    start = train(cfg, chain["data"], tmp / "d")
    start.publish({0: tmp / "iter0.pt"}, tmp / "d.jsonl", tmp / "d.json")
    halving = train(
        cfg, chain["data"], tmp / "h", halving_teacher=str(tmp / "iter0.pt"), student_steps=2
    )
    halving.publish({3: tmp / "n2.pt"}, tmp / "h.jsonl", tmp / "h.json")
    return {"cfg": cfg, "iter0": tmp / "iter0.pt", "n2": tmp / "n2.pt", "summary": tmp / "d.json"}


def test_direct_start_is_the_teachers_ema_and_costs_nothing(
    chain: dict, direct_chain: dict
) -> None:
    start = load_checkpoint(direct_chain["iter0"])
    assert (start["iteration"], start["direct"]) == (0, True)
    assert start["guidance_w_max"] is None  # a CFG model, guided at sampling
    assert start["student_steps"] == 4  # the chain's N0: the first halving's teacher
    teacher = load_checkpoint(chain["teacher"])["ema"]
    assert set(start["ema"]) == set(teacher)  # no w embedding
    for key, value in teacher.items():
        assert torch.equal(start["ema"][key], value), key
        assert torch.equal(start["model"][key], value), key
    summary = json.loads(direct_chain["summary"].read_text())
    assert summary["iterations"] == 0


def test_direct_halving_is_a_cfg_student(direct_chain: dict) -> None:
    n2 = load_checkpoint(direct_chain["n2"])
    assert (n2["student_steps"], n2["halving"], n2["direct"]) == (2, True, True)
    assert n2["guidance_w_max"] is None
    assert not any(key.startswith("w_embedder.") for key in n2["model"])
    assert n2["iteration"] == 3
    start = load_checkpoint(direct_chain["iter0"])["model"]
    assert any(not torch.equal(n2["model"][k], v) for k, v in start.items())  # it trained


def test_chains_refuse_each_others_teachers(
    chain: dict, direct_chain: dict, tmp_path: Path
) -> None:
    data = chain["data"]
    # A direct chain refuses a w-conditioned model, and a plain one not handed on by a direct run.
    with pytest.raises(CheckpointError, match=r"a w-conditioned model; .*distill\.stage='direct'"):
        Trainer.for_run(
            direct_chain["cfg"],
            data,
            tmp_path,
            halving_teacher=str(chain["student"]),
            student_steps=2,
        )
    with pytest.raises(CheckpointError, match="not a direct-chain model"):
        Trainer.for_run(
            direct_chain["cfg"],
            data,
            tmp_path,
            halving_teacher=str(chain["teacher"]),
            student_steps=2,
        )
    # The w-conditioned chain refuses the direct chain's CFG models.
    with pytest.raises(CheckpointError, match=r"not a w-conditioned .*direct-chain CFG model"):
        Trainer.for_run(
            chain["cfg"],
            data,
            tmp_path,
            halving_teacher=str(direct_chain["iter0"]),
            student_steps=2,
        )
    # A direct run starts from the plain CFG teacher, not from a distilled student.
    from_student = dataclasses.replace(direct_chain["cfg"], init_checkpoint=str(chain["student"]))
    with pytest.raises(CheckpointError, match="is a distilled student"):
        Trainer.for_run(from_student, data, tmp_path)


@pytest.mark.parametrize(("w", "nfe_per_step"), [(1.0, 2), (0.0, 1)])
def test_direct_student_is_guided_like_the_teacher(
    direct_chain: dict, tmp_path: Path, w: float, nfe_per_step: int
) -> None:
    request = SampleRequest(
        direct_chain["n2"],
        SampleSetConfig(solver="ddim", steps=2, w=w),
        num_images=4,
        seed=0,
        batch_size=4,
        device="cpu",
    )
    meta = generate_samples(request, tmp_path / "x.npz", tmp_path / "x.png")
    # CFG: cond + uncond rows per step at w != 0 (Meng's N x 2); w = 0 measures the cond call only.
    assert meta["nfe_per_image"] == nfe_per_step * 2
    assert (meta["student_steps"], meta["guidance_w_max"], meta["jump_model"]) == (2, None, None)


def test_direct_student_refuses_s(direct_chain: dict, tmp_path: Path) -> None:
    request = SampleRequest(
        direct_chain["n2"], SampleSetConfig("stochastic", 2, 1.0), 2, 0, 2, "cpu"
    )
    with pytest.raises(ConfigError, match=r"solver='stochastic' on a direct-chain student"):
        generate_samples(request, tmp_path / "x.npz", tmp_path / "x.png")
