"""The sections of a run: data, model, diffusion, training, distillation, sampling, evaluation.

Each frozen dataclass here is the only home of its defaults; a resolved run (config/tier.py:
RunConfig) is these sections side by side, and the modules that do the work take just the
section they need (diffusion/ takes DiffusionConfig, data/ takes DataConfig), so no part of the
harness sees fields it does not use. The value sets a tier may name (DATASETS, JUMP_MODELS) sit
beside the fields they constrain; config/tier.py checks them.
"""

from dataclasses import dataclass, field

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
    config, never assumed (docs/speed.md (b)).
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
    resolution: int | None = None  # area-downsample to this side (cifar10; None: native 32)
    latent: LatentConfig | None = None  # None: pixel space


@dataclass(frozen=True)
class MoEConfig:
    """Expert-choice MoE feed-forwards of a DiT size (docs/microdit.md (e)); None keeps the
    size's."""

    num_experts: int | None = None  # E (DiTConfig.num_experts)
    capacity_factor: float | None = None  # f: each expert takes ⌊f·N/E⌋ tokens per sample
    every: int | None = None  # block i is MoE iff i % every == every − 1 (DiTConfig.moe_every)


@dataclass(frozen=True)
class ModelConfig:
    """Which named size to build (models/registry.py), and the few facts a run may override.

    None keeps the size's own value; distillation stages set dropout to 0. `moe` and
    `layerwise_scaling` switch MicroDiT's expert-choice MoE and layer-wise widths on a DiT size
    (docs/microdit.md (e), (f)), and `block` DiT's or MicroDiT's transformer block ((b)
    "Block"), so an ablation is a run-table row, not a new size.
    """

    name: str = "unet-smoke"
    image_size: int | None = None
    in_channels: int | None = None  # the Trainer fills image_size/in_channels from the data
    num_classes: int | None = None
    dropout: float | None = None
    moe: MoEConfig | None = None  # set (even {}): MoE FFNs; None: the size's own FFNs
    layerwise_scaling: bool | None = None  # DiT only: α 0.5 → 1, β 0.5 → 4 over the backbone
    block: str | None = None  # DiT only: dit | microdit (models/microdit_block.py)


# The parameters each timestep sampler and loss weighting reads, by `name` (beside `name`; every
# sampler also takes `draw_batch`). A key outside its name's set is a config error naming the key
# and the method block (config/tier.py), and a resolved config shows only these (parsing.to_dict).
TIMESTEP_PARAMETERS: dict[str, tuple[str, ...]] = {
    "uniform": (),
    "speed": ("k", "tau", "dual", "dual_anchor"),
    "edm_lognormal": ("p_mean", "p_std"),
}
WEIGHTING_PARAMETERS: dict[str, tuple[str, ...]] = {
    "constant": (),
    "snr": (),
    "snr_trunc": (),
    "snr_plus1": (),
    "change_aware": ("ceiling", "tau", "tail_weight"),
}


@dataclass(frozen=True)
class TimestepConfig:
    """Which noise levels training draws (diffusion/timesteps.py): SpeeD's fields (docs/speed.md
    (c)), then EDM's log-normal law (docs/microdit.md (g)).
    """

    name: str = "uniform"  # uniform | speed | edm_lognormal
    k: float = 5.0  # SpeeD suppression intensity: steps below tau are k times likelier
    tau: int = 700  # SpeeD convergence boundary, a step index of the T = 1000 process
    dual: bool = True  # SpeeD dual sampling about the anchor m
    dual_anchor: int | None = None  # None: derived from the schedule (threshold 1e-4)
    # Rows per independent draw. SpeeD's dual half makes the law depend on it: None draws the
    # whole global batch at once; the official code draws each GPU's batch on its own (32 of
    # 256 on 8 GPUs), which `draw_batch: 32` reproduces on any number of processes.
    draw_batch: int | None = None
    p_mean: float = -1.2  # edm_lognormal: ln σ ~ N(p_mean, p_std²), EDM's CIFAR-10 values
    p_std: float = 1.2

    def live_fields(self) -> tuple[str, ...]:
        """The fields this sampler reads (TIMESTEP_PARAMETERS); resolved configs show only these."""
        return ("name", *TIMESTEP_PARAMETERS.get(self.name, ()), "draw_batch")


@dataclass(frozen=True)
class WeightingConfig:
    """How much each noise level counts (diffusion/weighting.py); SpeeD's fields, docs/speed.md
    (d)."""

    name: str = "snr_trunc"  # constant | snr | snr_trunc | snr_plus1 | change_aware
    ceiling: float = 0.6  # SpeeD's lambda: weights lie in [1 - ceiling, ceiling] below tau
    tau: int = 700  # SpeeD convergence boundary (step index)
    tail_weight: float | None = 1.0  # weight at steps >= tau; None: the affine map everywhere

    def live_fields(self) -> tuple[str, ...]:
        """The fields this weighting reads (WEIGHTING_PARAMETERS); resolved configs show these."""
        return ("name", *WEIGHTING_PARAMETERS.get(self.name, ()))


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
    # IDDPM's learned Σ (docs/speed.md (b)): the model outputs 2C channels, the last C interpolate
    # log β and log β̃, trained by L_vb (diffusion/learned_variance.py); linear_beta + eps only.
    learn_sigma: bool = False


# What a run is in guided distillation (docs/guided_distillation.md e, f, l): "none" (plain
# training), "guidance" (Meng's stage 1, a w-conditioned student of the init_from CFG teacher,
# then its halvings) or "direct" (Meng's baseline: the halvings distil the init_from CFG teacher
# itself, cond and uncond outputs together; the run trains nothing before them, so it has
# train.iterations 0 and ckpt_iters [0], which hold the teacher's EMA as the chain's start).
STAGES = ("none", "guidance", "direct")


@dataclass(frozen=True)
class DistillConfig:
    """Guided distillation (Meng et al. 2023): which stage a run is, w range, halving budget."""

    stage: str = "none"  # one of STAGES; guidance and direct need init_from = the CFG teacher
    w_min: float = 0.0  # guidance only: the w range of stage 1 and its halvings
    w_max: float = 4.0
    start_steps: int = 8  # N0: the first halving's teacher's steps (stage-1 student or teacher)
    end_steps: int = 2  # the last halving's student steps
    halving_iterations: int = 50
    halving_lr: float = 1e-4  # linear to 0, no warm-up, no EMA, fresh AdamW per halving
    # student | fine (docs/guided_distillation.md (d)). "fine" is the grid S's default jump model
    # "half" needs (its N/2-step student is evaluated at odd multiples of 1/N); a run drawing S
    # `half` from a "student"-grid chain is a config error (config/tier.py).
    train_grid: str = "fine"


@dataclass(frozen=True)
class TrainConfig:
    """One training run's budget, optimiser and checkpoint cadence."""

    iterations: int = 200
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    warmup_iters: int = 50
    lr_decay: str = "constant"  # constant | linear | cosine, after warm-up (train/lr_schedule.py)
    lr_final_ratio: float = 0.0  # linear / cosine end at this x lr (MicroDiT: cosine to .33)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    ckpt_iters: tuple[int, ...] = (200,)
    state_every_iters: int = 50
    log_every_iters: int = 10
    seed: int = 0
    hflip: bool = True
    device: str = "auto"  # auto | cpu | cuda
    # What a run with init_from takes from the run it starts from (train/stages.py): "ema"
    # (its EMA weights, fresh optimiser and EMA), or "resume" (MicroDiT's fine-tuning, arXiv
    # 2407.15811 Sec. 4: its raw weights, AdamW moments and EMA; only the lr schedule and the
    # iteration count restart).
    init_weights: str = "ema"


INIT_WEIGHTS = ("ema", "resume")

# Which student makes S's 2/N jumps at N sampler steps (docs/guided_distillation.md d):
# "half": the N/2-step student (trained with train_grid "fine"); "same": the N-step student.
JUMP_MODELS = ("half", "same")

# The ancestral sampler's variances (sampling/solvers.py): β_t, the posterior β̃_t, or the
# interpolation a learn_sigma model outputs (IDDPM's learned range, docs/speed.md (b)).
ANCESTRAL_VARIANCES = ("large", "small", "learned")

# How a sample set places its steps (sampling/grids.py GRIDS).
GRID_SPACINGS = ("trailing", "iddpm")


@dataclass(frozen=True)
class SampleSetConfig:
    """One sample set drawn from every checkpoint: solver, steps, guidance weight w (Meng)."""

    solver: str = "ddim"
    steps: int = 16
    w: float = 0.0
    clip_x0: bool = True
    # S only, on a halving chain (docs/guided_distillation.md d): "half" = the N/2-step student
    # makes the 2/N jumps of an N-step S sampler (drawn from it at twice its steps), "same" = each
    # student on its own grid. It picks the halving sets the DAG draws; the sampler records the jump
    # model its checkpoint and steps imply (the teacher and stage 1 jump with themselves;
    # distill/sampling.py: halving_sample_sets, jump_model_of).
    jump_model: str = "half"
    # ancestral only: "large" | "small" | "learned" (a learn_sigma model's Σ); None: "large".
    variance: str | None = None
    # Where the N steps sit (sampling/grids.py): "trailing" (DDIM's, uniform in t; the default)
    # or "iddpm" (IDDPM's respacing of a discrete schedule, from step T − 1 to step 0; SpeeD's
    # evaluation). heun always uses EDM's σ-grid.
    spacing: str = "trailing"


@dataclass(frozen=True)
class EvaluationConfig:
    """The evaluation protocol of a tier (docs/evaluation.md)."""

    @property
    def floor_split(self) -> str:
        """The split whose first `sample_images` images give the FID floor (rule data_floor)."""
        return "test" if self.reference_split == "train" else "train"

    reference_split: str = "train"
    reference_images: int | None = None  # first N images of the split (None: all)
    sample_images: int = 32
    sample_seed: int = 0
    sample_batch_size: int = 64
    feature_batch_size: int = 16
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    cleanfid: bool = True
    floor: bool = True  # the data floor (rule data_floor): needs sample_images held-out images
    device: str = "auto"
