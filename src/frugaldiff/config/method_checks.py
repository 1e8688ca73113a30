"""Checks that a run's method settings mean what they say, made before any job starts.

A timestep-sampler or loss-weighting key its `name` does not read would otherwise be ignored
silently, a masking label (`variant`) that disagrees with the model would compare a run with
the wrong paper number, and a distillation stage with a budget or sampler it cannot use would
fail hours into the DAG; all are config errors naming the key, the run and the file.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from frugaldiff.config.sections import (
    STAGES,
    TIMESTEP_PARAMETERS,
    WEIGHTING_PARAMETERS,
    TimestepConfig,
    WeightingConfig,
)
from frugaldiff.errors import ConfigError

if TYPE_CHECKING:
    from frugaldiff.config.tier import RunSpec


def check_live_parameters(
    diffusion: dict[str, Any], run_name: str, method: str, block_path: Path
) -> None:
    """A timestep-sampler or weighting key its `name` does not read is an error, not ignored."""
    for section, table, default in (
        ("timesteps", TIMESTEP_PARAMETERS, TimestepConfig.name),
        ("loss_weighting", WEIGHTING_PARAMETERS, WeightingConfig.name),
    ):
        given = diffusion.get(section) or {}
        if not isinstance(given, dict):
            continue  # from_dict names the type error
        name = given.get("name", default)
        if name not in table:
            raise ConfigError(
                f"runs.{run_name}.diffusion.{section}.name={name!r} ({block_path} + run table); "
                f"expected one of {sorted(table)}"
            )
        common = {"name", "draw_batch"} if section == "timesteps" else {"name"}
        unused = sorted(set(given) - common - set(table[name]))
        if unused:
            raise ConfigError(
                f"runs.{run_name}.diffusion.{section}.{unused[0]}: {section} {name!r} (method "
                f"{method!r}, {block_path} + run table) does not use it; its parameters are "
                f"{sorted(common | set(table[name]))}"
            )


def check_masking_variant(spec: "RunSpec", run_name: str, mask_ratio: float) -> None:
    """A masking label (unmasked / naive / deferred) must say what the model and ratio do.

    The masked study's report matches paper values on the masking mode; a run labelled
    `deferred` whose model masks naively would be compared with the wrong paper number.
    """
    from frugaldiff.models.registry import MASKING_VARIANTS, masking_mode

    if spec.variant not in MASKING_VARIANTS:
        return
    mode = masking_mode(spec.model.name, mask_ratio, spec.init_from)
    if mode != spec.variant:
        raise ConfigError(
            f"runs.{run_name}.variant={spec.variant!r}, but its model {spec.model.name!r} at "
            f"diffusion.mask_ratio={mask_ratio:g} (init_from={spec.init_from!r}) is {mode!r}: "
            f"label it {mode!r} or change the model / mask_ratio"
        )


def check_distill_stage(spec: "RunSpec", run_name: str, source: str) -> None:
    """`distill.stage` is known, has its teacher, and (direct) trains nothing and samples with D.

    A direct run (Meng et al., arXiv 2210.03142 Sec. 5's baseline; docs/guided_distillation.md
    l) is the CFG teacher handed to its halvings: its own train_model job makes no update and
    writes the teacher's EMA as ckpt/iter0.pt, so it must say train.iterations 0 and ckpt_iters
    [0], and every other run must train. Its students are guided like the teacher (2 NFE a step)
    on their own grid with D only: Meng's S sampler is defined for the w-conditioned chain.
    """
    d, train = spec.distill, spec.train
    where = f"{source}: runs.{run_name}"
    if d.stage not in STAGES:
        raise ConfigError(f"{where}.distill.stage={d.stage!r}; expected one of {list(STAGES)}")
    if d.stage != "none" and spec.init_from is None:
        raise ConfigError(
            f"{where}.distill.stage={d.stage!r} needs init_from (the CFG teacher run); got none"
        )
    if d.stage != "direct":
        if train.iterations < 1 or train.ckpt_iters[0] < 1:
            raise ConfigError(
                f"{where}.train.iterations={train.iterations}, ckpt_iters="
                f"{list(train.ckpt_iters)}; expected >= 1 (only a distill.stage 'direct' run "
                "trains nothing and checkpoints iteration 0)"
            )
        return
    if train.iterations != 0 or tuple(train.ckpt_iters) != (0,):
        raise ConfigError(
            f"{where}.train.iterations={train.iterations}, ckpt_iters={list(train.ckpt_iters)}; "
            "a distill.stage 'direct' run hands its teacher's EMA to the halvings untrained: "
            "expected iterations 0 and ckpt_iters [0] (the halvings' budget is "
            "distill.halving_iterations)"
        )
    for i, s in enumerate(spec.sample_sets):
        if s.solver != "ddim":
            why = " (Meng's S is defined for w-conditioned students only)"
            raise ConfigError(
                f"{where}.sample_sets[{i}].solver={s.solver!r} with distill.stage 'direct'; "
                f"expected 'ddim': a direct student is guided like its teacher, on its own grid"
                + (why if s.solver == "stochastic" else "")
            )


def check_label_conditioning(spec: "RunSpec", run_name: str) -> None:
    """A caption-conditioned size (MicroDiT's text-to-image `-t2i`) cannot train on this data.

    Every dataset of the harness carries class labels; the caption path of MicroDiT's official
    sizes is built to count and to test it (models/caption.py), and a run with it would fail at
    its first step, hours into a DAG.
    """
    from frugaldiff.models.registry import MODEL_SIZES

    family = MODEL_SIZES.get(spec.model.name)
    captions = getattr(family, "caption_channels", 0)
    if captions:
        raise ConfigError(
            f"runs.{run_name}.model.name={spec.model.name!r} is conditioned on captions "
            f"(caption_channels {captions}), but the harness's datasets carry class labels "
            "only; use the class-conditional size (e.g. 'MicroDiT-Tiny/2')"
        )
