"""A tier and its run table, resolved into one config per run.

A tier config (configs/smoke.yaml ...) names a dataset, an evaluation protocol, a run table and
per-rule-kind resources; each run names a model size and a method block
(configs/method/<name>.yaml) and may override fields. `parse_tier_config` checks the whole tier
before any job (the Snakefile calls it); `resolve_run` merges code defaults <- method block <-
run table into a `RunConfig`, which the `resolve_config` rule writes and `load_run_config` reads.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frugaldiff.config.method_checks import (
    check_distill_stage,
    check_label_conditioning,
    check_live_parameters,
    check_masking_variant,
)
from frugaldiff.config.parsing import from_dict, load_yaml
from frugaldiff.config.resources import RESOURCE_KINDS, ResourceSpec
from frugaldiff.config.sections import (
    ANCESTRAL_VARIANCES,
    DATASETS,
    GRID_SPACINGS,
    INIT_WEIGHTS,
    JUMP_MODELS,
    DataConfig,
    DiffusionConfig,
    DistillConfig,
    EvaluationConfig,
    ModelConfig,
    SampleSetConfig,
    TrainConfig,
)
from frugaldiff.errors import ConfigError


@dataclass(frozen=True)
class RunSpec:
    """One row of a tier's run table."""

    study: str = "baseline"  # which report this run belongs to (baseline | speed | ...)
    # Further studies whose report also reads this run's metrics, so a comparison reuses a run
    # instead of training a copy (the combined study's baseline teacher is the distill study's).
    also_in: tuple[str, ...] = ()
    method: str = "baseline"
    init_from: str | None = None  # another run whose final EMA weights start this one
    variant: str | None = None  # the label reports group by (default: the method)
    distill: DistillConfig = field(default_factory=DistillConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: dict[str, Any] = field(default_factory=dict)  # overrides of the method block
    train: TrainConfig = field(default_factory=TrainConfig)
    sample_sets: tuple[SampleSetConfig, ...] = (SampleSetConfig(),)


@dataclass(frozen=True)
class TierConfig:
    """A whole tier: the Snakemake configfile."""

    tier: str = "smoke"
    results_dir: str = "results"
    data: DataConfig = field(default_factory=DataConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    runs: dict[str, RunSpec] = field(default_factory=dict)
    resources: dict[str, ResourceSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """A resolved run: what results/<tier>/<run>/config.yaml holds."""

    name: str
    tier: str
    study: str
    method: str
    data: DataConfig
    model: ModelConfig
    diffusion: DiffusionConfig
    train: TrainConfig
    evaluation: EvaluationConfig
    sample_sets: tuple[SampleSetConfig, ...]
    init_from: str | None = None
    init_checkpoint: str | None = None  # resolved path of init_from's final checkpoint
    variant: str = ""
    distill: DistillConfig = field(default_factory=DistillConfig)


CIFAR10_TEST_IMAGES = 10_000  # the official test batch


def parse_tier_config(data: dict[str, Any], source: str) -> TierConfig:
    """Validate a whole tier config (the Snakefile calls this before any job)."""
    tier = from_dict(TierConfig, data, source)
    if not tier.runs:
        raise ConfigError(f"{source}: runs is empty; expected at least one run")
    if tier.data.dataset not in DATASETS:
        raise ConfigError(
            f"{source}: data.dataset={tier.data.dataset!r}; expected one of {list(DATASETS)}"
        )
    resolution = tier.data.resolution
    if resolution is not None and (tier.data.dataset != "cifar10" or 32 % resolution):
        raise ConfigError(
            f"{source}: data.resolution={resolution} with data.dataset={tier.data.dataset!r}; "
            "downsampling is implemented for cifar10, to a divisor of 32 (16, 8, ...)"
        )
    ev = tier.evaluation
    held_out = tier.data.test_images or CIFAR10_TEST_IMAGES
    cifar_test = ev.floor_split == "test" and tier.data.dataset == "cifar10"
    if ev.floor and cifar_test and held_out < ev.sample_images:
        raise ConfigError(
            f"{source}: evaluation.floor needs evaluation.sample_images={ev.sample_images} "
            f"real test images, but the test split has {held_out}; set evaluation.floor: "
            "false (or fewer sample_images)"
        )
    unknown = sorted(set(tier.resources) - set(RESOURCE_KINDS))
    if unknown:
        raise ConfigError(
            f"{source}: resources.{unknown[0]} is not a rule kind; expected one of "
            f"{list(RESOURCE_KINDS)} (a kind without an entry uses resources.default)"
        )
    studies = {run.study for run in tier.runs.values()}
    for name, run in tier.runs.items():
        foreign = [s for s in run.also_in if s not in studies or s == run.study]
        if foreign:
            raise ConfigError(
                f"{source}: runs.{name}.also_in={list(run.also_in)}: {foreign[0]!r} is not another "
                f"study of this tier; expected some of {sorted(studies - {run.study})}"
            )
        if run.init_from is not None and run.init_from not in tier.runs:
            raise ConfigError(
                f"{source}: runs.{name}.init_from={run.init_from!r} is not a run; "
                f"expected one of {sorted(tier.runs)}"
            )
        init = run.train.init_weights
        if init not in INIT_WEIGHTS:
            raise ConfigError(
                f"{source}: runs.{name}.train.init_weights={init!r}; expected one of "
                f"{list(INIT_WEIGHTS)}"
            )
        if init == "resume" and (run.init_from is None or run.distill.stage != "none"):
            raise ConfigError(
                f"{source}: runs.{name}.train.init_weights='resume' continues the optimiser of "
                f"the run it starts from: it needs init_from and no distill.stage (got "
                f"init_from={run.init_from!r}, distill.stage={run.distill.stage!r})"
            )
        ckpts = run.train.ckpt_iters
        if not ckpts or sorted(set(ckpts)) != list(ckpts) or ckpts[-1] > run.train.iterations:
            raise ConfigError(
                f"{source}: runs.{name}.train.ckpt_iters must be increasing, unique and "
                f"<= iterations={run.train.iterations}; got {list(ckpts)}"
            )
        check_distill_stage(run, name, source)
        seen: dict[tuple[str, int, float], int] = {}
        for i, s in enumerate(run.sample_sets):
            # A set's files are named <solver>-s<steps>-w<w>: two sets differing only in
            # variance, clip_x0 or jump_model would write the same files.
            first = seen.setdefault((s.solver, s.steps, s.w), i)
            if first != i:
                raise ConfigError(
                    f"{source}: runs.{name}.sample_sets[{first}] and [{i}] are both "
                    f"solver={s.solver!r}, steps={s.steps}, w={s.w:g}; sample sets of a run must "
                    f"differ in one of these (their files are named <solver>-s<steps>-w<w>): "
                    f"put the other variant in its own run"
                )
            if s.jump_model not in JUMP_MODELS:
                raise ConfigError(
                    f"{source}: runs.{name}.sample_sets[{i}].jump_model={s.jump_model!r}; "
                    f"expected one of {list(JUMP_MODELS)}"
                )
            if s.variance is not None and (
                s.solver != "ancestral" or s.variance not in ANCESTRAL_VARIANCES
            ):
                raise ConfigError(
                    f"{source}: runs.{name}.sample_sets[{i}].variance={s.variance!r} with solver "
                    f"{s.solver!r}; variance is for solver 'ancestral' only, one of "
                    f"{list(ANCESTRAL_VARIANCES)}"
                )
            if s.spacing not in GRID_SPACINGS or (s.solver == "heun" and s.spacing != "trailing"):
                raise ConfigError(
                    f"{source}: runs.{name}.sample_sets[{i}].spacing={s.spacing!r} with solver "
                    f"{s.solver!r}; expected one of {list(GRID_SPACINGS)} (heun: 'trailing', "
                    "it samples on EDM's sigma grid)"
                )
        half = [
            i
            for i, s in enumerate(run.sample_sets)
            if s.solver == "stochastic" and s.jump_model == "half"
        ]
        if run.distill.stage == "guidance" and run.distill.train_grid == "student" and half:
            raise ConfigError(
                f"{source}: runs.{name}.sample_sets{half} draw S with jump_model 'half', but "
                f"runs.{name}.distill.train_grid='student': the N/2-step student would be "
                "evaluated at odd multiples of 1/N, off its training grid; set train_grid: fine "
                "(the default) or jump_model: same"
            )
        if tier.data.latent is not None:
            clipped = [i for i, s in enumerate(run.sample_sets) if s.clip_x0]
            if clipped:
                raise ConfigError(
                    f"{source}: runs.{name}.sample_sets{clipped}.clip_x0 is true, but data.latent "
                    "is set: clipping x̂ to [-1, 1] suits pixels, not VAE latents; set "
                    "clip_x0: false (SpeeD samples latents without clipping, docs/speed.md (b))"
                )
    return tier


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, recursing into mappings present in both."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def final_checkpoint(tier: TierConfig, run_name: str) -> str:
    """results/<tier>/<run>/ckpt/iter<last>.pt: the checkpoint a follow-up run starts from."""
    last = tier.runs[run_name].train.ckpt_iters[-1]
    return f"{tier.results_dir}/{tier.tier}/{run_name}/ckpt/iter{last}.pt"


def resolve_run(tier: TierConfig, run_name: str, blocks_dir: Path) -> RunConfig:
    """Code defaults <- configs/method/<method>.yaml <- the run table's overrides."""
    if run_name not in tier.runs:
        raise ConfigError(
            f"run {run_name!r} not in the run table; expected one of {sorted(tier.runs)}"
        )
    spec = tier.runs[run_name]
    block_path = blocks_dir / "method" / f"{spec.method}.yaml"
    if not block_path.is_file():
        known = sorted(p.stem for p in (blocks_dir / "method").glob("*.yaml"))
        raise ConfigError(
            f"runs.{run_name}.method={spec.method!r}: no {block_path}; expected one of {known}"
        )
    block = load_yaml(block_path)
    diffusion = deep_merge(block.get("diffusion", {}), spec.diffusion)
    unknown = set(block) - {"diffusion"}
    if unknown:
        raise ConfigError(
            f"{block_path}: unknown top-level keys {sorted(unknown)}; expected ['diffusion']"
        )
    check_live_parameters(diffusion, run_name, spec.method, block_path)
    diffusion_cfg = from_dict(DiffusionConfig, diffusion, f"{block_path} + run table", "diffusion")
    ts, lw = diffusion_cfg.timesteps, diffusion_cfg.loss_weighting
    if ts.name == "speed" and lw.name == "change_aware" and ts.tau != lw.tau:
        raise ConfigError(
            f"runs.{run_name}: SpeeD's tau is set twice and disagrees: diffusion.timesteps.tau="
            f"{ts.tau} but diffusion.loss_weighting.tau={lw.tau} ({block_path} + run table); "
            "the sampler and the weighting share one convergence boundary"
        )
    learned = [i for i, s in enumerate(spec.sample_sets) if s.variance == "learned"]
    if learned and not diffusion_cfg.learn_sigma:
        raise ConfigError(
            f"runs.{run_name}.sample_sets{learned}.variance='learned' needs a learned-variance "
            f"model, but diffusion.learn_sigma is false ({block_path} + run table); set it "
            "true or use variance 'large' / 'small'"
        )
    check_masking_variant(spec, run_name, diffusion_cfg.mask_ratio)
    check_label_conditioning(spec, run_name)
    draw = diffusion_cfg.timesteps.draw_batch
    if draw is not None and (draw < 1 or spec.train.batch_size % draw != 0):
        raise ConfigError(
            f"runs.{run_name}.diffusion.timesteps.draw_batch={draw} must be a positive divisor "
            f"of train.batch_size={spec.train.batch_size} (the rows of one timestep draw, e.g. "
            "one GPU's batch)"
        )
    respaced = [i for i, s in enumerate(spec.sample_sets) if s.spacing == "iddpm"]
    if respaced and diffusion_cfg.schedule != "linear_beta":
        raise ConfigError(
            f"runs.{run_name}.sample_sets{respaced}.spacing='iddpm' respaces a discrete "
            f"schedule, but diffusion.schedule is {diffusion_cfg.schedule!r} ({block_path} + "
            "run table); use spacing 'trailing' or schedule 'linear_beta'"
        )
    return RunConfig(
        name=run_name,
        tier=tier.tier,
        study=spec.study,
        method=spec.method,
        data=tier.data,
        model=spec.model,
        diffusion=diffusion_cfg,
        train=spec.train,
        evaluation=tier.evaluation,
        sample_sets=spec.sample_sets,
        init_from=spec.init_from,
        init_checkpoint=final_checkpoint(tier, spec.init_from) if spec.init_from else None,
        variant=spec.variant or spec.method,
        distill=spec.distill,
    )


def load_run_config(path: Path | str) -> RunConfig:
    """Read a resolved run config written by the `resolve_config` rule."""
    return from_dict(RunConfig, load_yaml(path), str(path))
