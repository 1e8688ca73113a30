"""Typed configs: frozen dataclasses are the only home of a default.

A tier config (configs/smoke.yaml ...) names a dataset, an evaluation protocol and a run table;
each run names a model size and a method block (configs/method/<name>.yaml) and may override
fields. `resolve_run` merges code defaults <- method block <- run table into one plain dict that
the `resolve_config` rule writes to results/<tier>/<run>/config.yaml; every CLI command reads
only such resolved files. Unknown or mistyped keys fail here, naming the file, the dotted key
and the nearest valid key, before any job runs.
"""

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from frugaldiff.errors import ConfigError

T = typing.TypeVar("T")

CIFAR10_FULL_MD5 = "c58f30108f718f92721af3b95e74349a"


# Datasets a tier may name; data/prepare.py says which ones the harness can prepare yet.
DATASETS = ("cifar10", "imagenet64", "ffhq256", "metfaces256", "imagenet256")


@dataclass(frozen=True)
class LatentConfig:
    """Train in the latent space of a diffusers `AutoencoderKL` (data/vae.py, data/latents.py).

    The VAE comes from, in order: `vae_path` (a local folder as written by `save_pretrained`:
    config.json + diffusion_pytorch_model.safetensors), the folder $FRUGALDIFF_VAE_ROOT/<vae_hub_id>
    (one machine's copies of several VAEs, with no home path in the YAML), or, only when
    `download` is true, the hub id at `vae_revision`. Its scaling factor is read from its
    config, never assumed (speed.md (b)).
    """

    vae_hub_id: str | None = None  # e.g. stabilityai/sd-vae-ft-ema: the name recorded and fetched
    vae_path: str | None = None  # local diffusers AutoencoderKL folder
    vae_revision: str | None = None  # hub revision (branch, tag or commit); None: main
    download: bool = False  # allowed to fetch vae_hub_id when no local folder is named
    encode_batch_size: int = 32
    device: str = "auto"  # auto | cpu | cuda, for encoding and for decoding samples


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from, how many of them a tier uses, and the optional latent space."""

    dataset: str = "cifar10"  # one of DATASETS
    archive: str | None = None  # local copy (file or folder); None: the dataset's env var, else
    # download where the dataset allows it (CIFAR-10 only)
    md5: tuple[str, ...] = (CIFAR10_FULL_MD5,)  # accepted archive checksums
    download: bool = True  # allowed to fetch the official archive when no local copy is named
    train_images: int | None = None  # first N training images (None: all)
    test_images: int | None = None
    latent: LatentConfig | None = None  # None: pixel space


@dataclass(frozen=True)
class MoEConfig:
    """Expert-choice MoE feed-forwards of a DiT size (microdit.md (e)); None keeps the size's."""

    num_experts: int | None = None  # E (DiTConfig.num_experts)
    capacity_factor: float | None = None  # f: each expert takes ⌊f·N/E⌋ tokens per sample
    every: int | None = None  # block i is MoE iff i % every == every − 1 (DiTConfig.moe_every)


@dataclass(frozen=True)
class ModelConfig:
    """Which named size to build (models/registry.py), and the few facts a run may override.

    None keeps the size's own value; distillation stages set dropout to 0. `moe` and
    `layerwise_scaling` switch MicroDiT's expert-choice MoE and layer-wise widths on a DiT size
    (microdit.md (e), (f)), so an ablation is a run-table row, not a new size.
    """

    name: str = "unet-smoke"
    image_size: int | None = None
    in_channels: int | None = None  # the Trainer fills image_size/in_channels from the data
    num_classes: int | None = None
    dropout: float | None = None
    moe: MoEConfig | None = None  # set (even {}): MoE FFNs; None: the size's own FFNs
    layerwise_scaling: bool | None = None  # DiT only: α 0.5 → 1, β 0.5 → 4 over the backbone


@dataclass(frozen=True)
class TimestepConfig:
    """Which noise levels training draws (diffusion/timesteps.py): SpeeD's fields (speed.md (c)),
    then EDM's log-normal law (microdit.md (g)).
    """

    name: str = "uniform"  # uniform | speed | edm_lognormal
    k: float = 5.0  # SpeeD suppression intensity: steps below tau are k times likelier
    tau: int = 700  # SpeeD convergence boundary, a step index of the T = 1000 process
    dual: bool = True  # SpeeD dual sampling about the anchor m
    dual_anchor: int | None = None  # None: derived from the schedule (threshold 1e-4)
    p_mean: float = -1.2  # edm_lognormal: ln σ ~ N(p_mean, p_std²), EDM's CIFAR-10 values
    p_std: float = 1.2


@dataclass(frozen=True)
class WeightingConfig:
    """How much each noise level counts (diffusion/weighting.py); SpeeD's fields, speed.md (d)."""

    name: str = "snr_trunc"  # constant | snr | snr_trunc | snr_plus1 | change_aware
    ceiling: float = 0.6  # SpeeD's lambda: weights lie in [1 - ceiling, ceiling] below tau
    tau: int = 700  # SpeeD convergence boundary (step index)
    tail_weight: float | None = 1.0  # weight at steps >= tau; None: the affine map everywhere


@dataclass(frozen=True)
class DiffusionConfig:
    """Process, output parameterisation, timestep distribution and loss weighting."""

    schedule: str = "cosine"  # cosine | linear_beta
    parameterization: str = "v"  # eps | x | v
    timesteps: TimestepConfig = field(default_factory=TimestepConfig)
    loss_weighting: WeightingConfig = field(default_factory=WeightingConfig)
    p_uncond: float = 0.1  # label dropout for classifier-free guidance
    mask_ratio: float = 0.0  # MicroDiT: share of tokens dropped in training (0: unmasked)
    sigma_data: float = 1.0  # EDM's σ_d: the core sees data ÷ σ_d (1: the data as they are)
    time_input: str = "t"  # t | c_noise (EDM's ln σ / 4): the network's time input


@dataclass(frozen=True)
class DistillConfig:
    """Guided distillation (Meng et al. 2023): which stage a run is, w range, halving budget."""

    stage: str = "none"  # none | guidance (stage 1, init_from = the CFG teacher run)
    w_min: float = 0.0
    w_max: float = 4.0
    start_steps: int = 8  # N0: the stage-1 student's sampler steps, first halving's teacher
    end_steps: int = 2  # the last halving's student steps
    halving_iterations: int = 50
    halving_lr: float = 1e-4  # linear to 0, no warm-up, no EMA, fresh AdamW per halving
    train_grid: str = "student"  # student | fine (guided_distillation.md (d))


@dataclass(frozen=True)
class TrainConfig:
    """One training run's budget, optimiser and checkpoint cadence."""

    iterations: int = 200
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    warmup_iters: int = 50
    lr_decay: str = "constant"  # constant | linear (to 0 at the last iteration)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    ckpt_iters: tuple[int, ...] = (200,)
    state_every_iters: int = 50
    log_every_iters: int = 10
    seed: int = 0
    hflip: bool = True
    device: str = "auto"  # auto | cpu | cuda


# Which student makes S's 2/N jumps at N sampler steps (guided_distillation.md d):
# "half": the N/2-step student (trained with train_grid "fine"); "same": the N-step student.
JUMP_MODELS = ("half", "same")


@dataclass(frozen=True)
class SampleSetConfig:
    """One sample set drawn from every checkpoint: solver, steps, guidance weight w (Meng)."""

    solver: str = "ddim"
    steps: int = 16
    w: float = 0.0
    clip_x0: bool = True
    # S only, on a halving chain (guided_distillation.md d): "half" = the N/2-step student makes
    # the 2/N jumps of an N-step S sampler (drawn from it at twice its steps), "same" = each
    # student on its own grid. It picks the halving sets the DAG draws; the sampler records the
    # jump model its checkpoint and steps imply (the teacher and stage 1 jump with themselves;
    # distill/sampling.py: halving_sample_sets, jump_model_of).
    jump_model: str = "half"


@dataclass(frozen=True)
class EvaluationConfig:
    """The evaluation protocol of a tier (papers/evaluation.md)."""

    reference_split: str = "train"
    reference_images: int | None = None  # first N images of the split (None: all)
    sample_images: int = 32
    sample_seed: int = 0
    sample_batch_size: int = 64
    feature_batch_size: int = 16
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    cleanfid: bool = True
    device: str = "auto"


@dataclass(frozen=True)
class RunSpec:
    """One row of a tier's run table."""

    study: str = "baseline"  # which report this run belongs to (baseline | speed | ...)
    method: str = "baseline"
    init_from: str | None = None  # another run whose final EMA weights start this one
    variant: str | None = None  # the label reports group by (default: the method)
    distill: DistillConfig = field(default_factory=DistillConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: dict[str, Any] = field(default_factory=dict)  # overrides of the method block
    train: TrainConfig = field(default_factory=TrainConfig)
    sample_sets: tuple[SampleSetConfig, ...] = (SampleSetConfig(),)


# The rule kinds a tier's `resources:` block can size (workflow/rules/*.smk: job_resources).
RESOURCE_KINDS = ("default", "prepare", "encode", "train", "sample", "evaluate")


@dataclass(frozen=True)
class ResourceSpec:
    """Per-job resources for one rule kind; the rules hand them to Snakemake, the profile to SLURM.

    `runtime` is the first attempt's limit; attempt a gets a·runtime (a job that hit its limit
    resumes from its state, so each retry finishes more). SLURM sends SIGTERM
    `signal_before_limit_s` seconds before the limit (sbatch --signal) so the job saves state.
    """

    mem_mb: int = 2000
    runtime: int = 30  # minutes, first attempt
    cpus: int = 1
    gpus: int = 0
    gpu_model: str | None = None  # e.g. "a100": sbatch --gpus=<model>:<gpus>
    signal_before_limit_s: int = 120


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


def _nearest(key: str, valid: list[str]) -> str:
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.0)
    return f"; did you mean {match[0]!r}?" if match else ""


def _convert(value: Any, hint: Any, source: str, key: str) -> Any:
    """Check and convert one YAML value against a type hint (the subset of types we use)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], source, key)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, source, key)
    if origin is tuple:
        if isinstance(value, str) and args[-1] is Ellipsis:
            value = [value]  # one checksum given as a bare string
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {key} expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], source, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{source}: {key} expected {len(args)} items, got {value!r}")
        return tuple(
            _convert(v, a, source, f"{key}[{i}]")
            for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} expected a mapping, got {value!r}")
        return {k: _convert(v, args[1], source, f"{key}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    if hint in (int, float, bool, str) and type(value) is hint:
        return value
    raise ConfigError(
        f"{source}: {key} expected {getattr(hint, '__name__', hint)}, "
        f"got {type(value).__name__} {value!r}"
    )


def from_dict(cls: type[T], data: Any, source: str, prefix: str = "") -> T:
    """Build dataclass `cls` from a mapping; unknown keys and wrong types raise ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix or 'top level'} expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"{source}: unknown key {dotted!r}{_nearest(str(key), names)}")
        kwargs[key] = _convert(value, hints[key], source, dotted)
    required = [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [k for k in required if k not in kwargs]
    if missing:
        where = f" in {prefix}" if prefix else ""
        raise ConfigError(f"{source}: missing required keys {missing}{where}")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain YAML-able structure (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_yaml(path: Path | str) -> dict[str, Any]:
    """Read a YAML mapping, failing with the path when missing or malformed."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: config file not found") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def parse_tier_config(data: dict[str, Any], source: str) -> TierConfig:
    """Validate a whole tier config (the Snakefile calls this before any job)."""
    tier = from_dict(TierConfig, data, source)
    if not tier.runs:
        raise ConfigError(f"{source}: runs is empty; expected at least one run")
    if tier.data.dataset not in DATASETS:
        raise ConfigError(
            f"{source}: data.dataset={tier.data.dataset!r}; expected one of {list(DATASETS)}"
        )
    unknown = sorted(set(tier.resources) - set(RESOURCE_KINDS))
    if unknown:
        raise ConfigError(
            f"{source}: resources.{unknown[0]} is not a rule kind; expected one of "
            f"{list(RESOURCE_KINDS)} (a kind without an entry uses resources.default)"
        )
    for name, run in tier.runs.items():
        if run.init_from is not None and run.init_from not in tier.runs:
            raise ConfigError(
                f"{source}: runs.{name}.init_from={run.init_from!r} is not a run; "
                f"expected one of {sorted(tier.runs)}"
            )
        ckpts = run.train.ckpt_iters
        if not ckpts or sorted(set(ckpts)) != list(ckpts) or ckpts[-1] > run.train.iterations:
            raise ConfigError(
                f"{source}: runs.{name}.train.ckpt_iters must be increasing, unique and "
                f"<= iterations={run.train.iterations}; got {list(ckpts)}"
            )
        for i, s in enumerate(run.sample_sets):
            if s.jump_model not in JUMP_MODELS:
                raise ConfigError(
                    f"{source}: runs.{name}.sample_sets[{i}].jump_model={s.jump_model!r}; "
                    f"expected one of {list(JUMP_MODELS)}"
                )
        if tier.data.latent is not None:
            clipped = [i for i, s in enumerate(run.sample_sets) if s.clip_x0]
            if clipped:
                raise ConfigError(
                    f"{source}: runs.{name}.sample_sets{clipped}.clip_x0 is true, but data.latent "
                    "is set: clipping x̂ to [-1, 1] suits pixels, not VAE latents; set "
                    "clip_x0: false (SpeeD samples latents without clipping, speed.md (b))"
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
    return RunConfig(
        name=run_name,
        tier=tier.tier,
        study=spec.study,
        method=spec.method,
        data=tier.data,
        model=spec.model,
        diffusion=from_dict(DiffusionConfig, diffusion, f"{block_path} + run table", "diffusion"),
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
