"""What a training job trains: plain diffusion, guided distillation stage 1, or one halving.

Each stage is a (network, objective, train config) triple handed to the one Trainer loop, so the
loop never branches on a method (STYLE.md, smells). Stage 1 (Meng et al. 2023, (e)) starts a
w-conditioned student from the CFG teacher's EMA weights; a halving ((f)) starts the N-step
student as a copy of the 2N-step model and trains it with a fresh AdamW, lr linear to 0, no
warm-up and no EMA (decay 0: the "EMA" is the raw weights). A direct run ((l), Meng's baseline)
has no stage 1: its train job makes 0 updates and checkpoints the CFG teacher's EMA at
iteration 0, labelled as its chain's N0-step model, and its halvings distil cond + uncond.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from frugaldiff.config import STAGES, RunConfig, TrainConfig
from frugaldiff.diffusion.objective import DiffusionObjective
from frugaldiff.diffusion.schedule import build_schedule_by_name
from frugaldiff.diffusion.weighting import build_loss_weighting
from frugaldiff.distill.direct import DirectDistillationObjective, load_cfg_model
from frugaldiff.distill.guided import (
    GuidanceDistillationObjective,
    init_student_from_teacher,
    load_guided_model,
)
from frugaldiff.distill.progressive import ProgressiveDistillationObjective
from frugaldiff.errors import CheckpointError, ConfigError
from frugaldiff.models.registry import build_model
from frugaldiff.rng import derive_seed, seeded_global_rng
from frugaldiff.train.checkpoint_meta import CheckpointMeta
from frugaldiff.train.state import load_checkpoint


@dataclass
class Stage:
    """A network to train, its objective, the effective train config and checkpoint metadata."""

    model: nn.Module
    objective: Any  # DiffusionObjective or a distillation objective (same loss contract)
    train: TrainConfig
    meta: CheckpointMeta  # stored in every checkpoint (w_max, student_steps, halving, direct)
    teacher: nn.Module | None = None  # frozen network the objective calls (moved to the device)
    # train.init_weights "resume": the earlier run's AdamW state, EMA weights and EMA update
    # count, which the Trainer loads before it builds a fresh lr schedule.
    resume: dict[str, Any] | None = None
    run: RunConfig | None = None  # the run it trains, model fitted to the data (build_stage)

    @property
    def halving_steps(self) -> int:
        """A halving's student steps (0 for a run's own training): part of its state's hash."""
        steps = self.meta.student_steps
        return steps if self.meta.halving and steps is not None else 0


def _teacher_ema(cfg: RunConfig) -> dict[str, torch.Tensor]:
    if cfg.init_checkpoint is None:
        raise ConfigError(
            f"runs.{cfg.name}: distill.stage={cfg.distill.stage} needs init_from (the teacher)"
        )
    payload = load_checkpoint(cfg.init_checkpoint)
    meta = CheckpointMeta.from_payload(payload)
    if meta.distilled:
        raise CheckpointError(
            f"runs.{cfg.name}: init_from checkpoint {cfg.init_checkpoint} is a distilled student "
            f"(student_steps {meta.student_steps}); distill.stage="
            f"{cfg.distill.stage} starts from a plain CFG teacher"
        )
    return payload["ema"]


def build_stage(
    cfg: RunConfig, halving_teacher: str | None = None, student_steps: int = 0
) -> Stage:
    """The stage of run `cfg`; a halving when `halving_teacher` (the 2N-step checkpoint) is set.

    What the Trainer is handed: it never sees which stage it runs (no stage arguments)."""
    return dataclasses.replace(_build(cfg, halving_teacher, student_steps), run=cfg)


def _build(cfg: RunConfig, halving_teacher: str | None, student_steps: int) -> Stage:
    d, seed = cfg.distill, derive_seed(cfg.train.seed, "init")
    distilling = halving_teacher is not None or d.stage != "none"
    if distilling and (cfg.diffusion.sigma_data != 1.0 or cfg.diffusion.time_input != "t"):
        # The distillation objectives call their networks with the plain VP inputs.
        raise ConfigError(
            f"runs.{cfg.name}: distillation needs diffusion.sigma_data 1 and time_input 't'; "
            f"got {cfg.diffusion.sigma_data} and {cfg.diffusion.time_input!r}"
        )
    if distilling and cfg.diffusion.learn_sigma:
        raise ConfigError(
            f"runs.{cfg.name}: distillation needs diffusion.learn_sigma false (its objectives "
            "read C output channels)"
        )
    if halving_teacher is not None:
        return _halving(cfg, halving_teacher, student_steps)
    if d.stage not in STAGES:
        raise ConfigError(f"runs.{cfg.name}.distill.stage={d.stage!r}; expected one of {STAGES}")
    if d.stage == "direct":
        return _direct_start(cfg)
    if d.stage == "none":
        with seeded_global_rng(seed):
            model = build_model(cfg.model, cfg.diffusion.learn_sigma)
        resume = None
        if cfg.init_checkpoint is not None:
            resume = _init_from(model, cfg)
        objective = DiffusionObjective.from_config(cfg.diffusion, model.cfg.num_classes)
        return Stage(model, objective, cfg.train, CheckpointMeta(), resume=resume)
    schedule = build_schedule_by_name(cfg.diffusion.schedule)
    teacher_state = _teacher_ema(cfg)
    with seeded_global_rng(seed):
        teacher = build_model(cfg.model)
    teacher.load_state_dict(teacher_state)
    student = init_student_from_teacher(teacher_state, cfg.model, d.w_max, seed=seed)
    objective = GuidanceDistillationObjective(
        teacher=teacher,
        schedule=schedule,
        parameterization=cfg.diffusion.parameterization,
        weighting=build_loss_weighting(cfg.diffusion.loss_weighting, schedule),
        null_label=student.cfg.num_classes,
        w_range=(d.w_min, d.w_max),
    )
    meta = CheckpointMeta(guidance_w_max=d.w_max, student_steps=d.start_steps)
    return Stage(student, objective, cfg.train, meta, teacher)


def _direct_start(cfg: RunConfig) -> Stage:
    """A direct run's own stage: the CFG teacher's EMA, untrained, as its chain's N0-step model.

    Keeps the DAG uniform: every run's train job writes ckpt/iter<last>.pt and a summary, and a
    chain's first halving reads it. Here train.iterations is 0 (config/method_checks.py), so the
    loop makes no update and the checkpoint at iteration 0 holds the teacher's EMA as both raw
    and EMA weights; its summary counts 0 iterations, so no cost is counted twice (the frontier
    adds the teacher's own training through init_from). The checkpoint says what it is: a CFG
    model (no guidance_w_max) that a direct chain samples at `start_steps` steps.
    """
    if cfg.train.iterations != 0 or tuple(cfg.train.ckpt_iters) != (0,):
        raise ConfigError(  # config/method_checks.py says so before any job; this is the guard
            f"runs.{cfg.name}: distill.stage 'direct' trains nothing itself; expected "
            f"train.iterations 0 and ckpt_iters [0], got {cfg.train.iterations} and "
            f"{list(cfg.train.ckpt_iters)}"
        )
    model = load_cfg_model(_teacher_ema(cfg), cfg.model, str(cfg.init_checkpoint))
    # Never called to train (0 updates); Trainer.cost() runs it once to count FLOPs per image.
    objective = DiffusionObjective.from_config(cfg.diffusion, model.cfg.num_classes)
    meta = CheckpointMeta(student_steps=cfg.distill.start_steps, direct=True)
    return Stage(model, objective, cfg.train, meta)


def _init_from(model: nn.Module, cfg: RunConfig) -> dict[str, Any] | None:
    """Load the earlier run's weights into model; return what a "resume" also continues."""
    assert cfg.init_checkpoint is not None
    payload = load_checkpoint(cfg.init_checkpoint)
    if cfg.train.init_weights == "ema":
        # Follow-up runs start from the earlier run's EMA weights, with a fresh optimiser.
        model.load_state_dict(payload["ema"])
        return None
    # MicroDiT's fine-tuning (arXiv 2407.15811 Sec. 4; micro_diffusion resumes its Composer
    # checkpoint and resets only the scheduler): raw weights, AdamW moments and EMA go on.
    if "optimizer" not in payload:
        raise CheckpointError(
            f"runs.{cfg.name}.train.init_weights='resume': {cfg.init_checkpoint} holds no "
            f"optimiser state (only a run's last checkpoint does, since this version); rerun "
            f"{cfg.init_from!r} or use init_weights 'ema'"
        )
    model.load_state_dict(payload["model"])
    return {
        "optimizer": payload["optimizer"],
        "ema": payload["ema"],
        "ema_updates": int(payload["ema_updates"]),
    }


def _check_halving_teacher(cfg: RunConfig, teacher_path: str, meta: CheckpointMeta) -> None:
    """The 2N-step model must belong to this run's kind of chain: w-conditioned or direct."""
    w_max, direct = meta.guidance_w_max, meta.direct
    if cfg.distill.stage == "direct" and (w_max is not None or not direct):
        found = "a w-conditioned model" if w_max is not None else "not a direct-chain model"
        raise CheckpointError(
            f"{teacher_path}: {found}; runs.{cfg.name}.distill.stage='direct' halves the CFG "
            "teacher itself (its direct run's ckpt/iter0.pt or a direct halving)"
        )
    if cfg.distill.stage != "direct" and (w_max is None or direct):
        found = "a direct-chain CFG model" if direct else "a plain model"
        raise CheckpointError(
            f"{teacher_path}: not a w-conditioned (stage-1 or halving) model ({found}); "
            f"runs.{cfg.name}.distill.stage={cfg.distill.stage!r} halves a w-conditioned chain"
        )


def _halving(cfg: RunConfig, teacher_path: str, student_steps: int) -> Stage:
    d = cfg.distill
    payload = load_checkpoint(teacher_path)
    meta = CheckpointMeta.from_payload(payload)
    _check_halving_teacher(cfg, teacher_path, meta)
    if meta.student_steps != 2 * student_steps:
        raise CheckpointError(
            f"{teacher_path}: a {meta.student_steps}-step model cannot teach a "
            f"{student_steps}-step student (expected {2 * student_steps})"
        )
    schedule = build_schedule_by_name(cfg.diffusion.schedule)
    # Stage 2 trains raw weights: the previous halving's raw weights, or stage 1's EMA (a
    # direct chain: its start's EMA, which is the CFG teacher's).
    state = payload[meta.chain_weights]
    weighting = build_loss_weighting(cfg.diffusion.loss_weighting, schedule)
    objective: ProgressiveDistillationObjective | DirectDistillationObjective
    if d.stage == "direct":
        teacher = load_cfg_model(state, cfg.model, teacher_path)
        student = load_cfg_model(state, cfg.model, teacher_path)
        objective = DirectDistillationObjective(
            teacher,
            schedule,
            student_steps,
            cfg.diffusion.parameterization,
            weighting,
            null_label=student.cfg.num_classes,
            train_grid=d.train_grid,
        )
        made = CheckpointMeta(student_steps=student_steps, halving=True, direct=True)
    else:
        teacher = load_guided_model(state, cfg.model, d.w_max)
        student = load_guided_model(state, cfg.model, d.w_max)
        objective = ProgressiveDistillationObjective(
            teacher,
            schedule,
            student_steps,
            cfg.diffusion.parameterization,
            weighting,
            (d.w_min, d.w_max),
            train_grid=d.train_grid,
        )
        made = CheckpointMeta(guidance_w_max=d.w_max, student_steps=student_steps, halving=True)
    train = dataclasses.replace(
        cfg.train,
        iterations=d.halving_iterations,
        lr=d.halving_lr,
        warmup_iters=0,
        lr_decay="linear",
        ema_decay=0.0,
        weight_decay=0.0,
        ckpt_iters=(d.halving_iterations,),
        state_every_iters=min(cfg.train.state_every_iters, d.halving_iterations),
    )
    return Stage(student, objective, train, made, teacher)
