"""Stage 1 of guided distillation: a w-conditioned student matches the CFG teacher.

Meng et al. (arXiv 2210.03142, eq. 5 form; docs/guided_distillation.md e): minimise
E[ω(λ_t)·‖x̂_η(z_t, c, w) − ((1 + w) x̂_θ(z_t, c) − w x̂_θ(z_t, ∅))‖²] with w ~ U[w_min, w_max]
per example and t ~ U(0, 1]. The student starts as the teacher's EMA weights plus a
zero-initialised w embedding, so at initialisation it is the conditional teacher at every w.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from frugaldiff.config import ModelConfig
from frugaldiff.diffusion.objective import Model
from frugaldiff.diffusion.parameterization import (
    broadcast_like,
    check_parameterization,
    x_mse_factor,
)
from frugaldiff.diffusion.schedule import NoiseSchedule
from frugaldiff.diffusion.timesteps import UniformTimestepSampler
from frugaldiff.diffusion.weighting import LossWeighting
from frugaldiff.distill.teacher import FrozenTeacher, TeacherNetwork
from frugaldiff.errors import CheckpointError, ConfigError
from frugaldiff.models.registry import build_model
from frugaldiff.models.unet import UNet
from frugaldiff.rng import seeded_global_rng
from frugaldiff.sampling.guidance import guide
from frugaldiff.sharding import BatchShard

W_EMBEDDER_PREFIX = "w_embedder."


def check_w_range(w_range: tuple[float, float]) -> tuple[float, float]:
    """(w_min, w_max) with 0 <= w_min <= w_max, as floats; ConfigError otherwise."""
    w_min, w_max = (float(w) for w in w_range)
    if not 0.0 <= w_min <= w_max:
        raise ConfigError(f"distill.w_range={list(w_range)}; expected 0 <= w_min <= w_max")
    return w_min, w_max


def sample_guidance_weights(
    batch_size: int,
    w_range: tuple[float, float],
    generator: torch.Generator,
    device: torch.device | str,
) -> Tensor:
    """w ~ U[w_min, w_max), one per example (B,) float32, drawn on the generator's device."""
    w_min, w_max = w_range
    u = torch.rand(batch_size, generator=generator, device=generator.device)  # (B,) in [0, 1)
    return (w_min + (w_max - w_min) * u).to(device)  # (B,)


def per_sample_loss(
    out: Tensor, target: Tensor, logsnr: Tensor, parameterization: str, weighting: LossWeighting
) -> tuple[Tensor, Tensor]:
    """(ω/c · output-space MSE (B,), ω/c (B,)): ω(λ)·x-MSE evaluated in output space.

    c = x_mse_factor converts the x-space MSE to the output space's (docs/guided_distillation.md b),
    as DiffusionObjective does, so both stages weight errors exactly like the teacher's loss.
    """
    mse = (out.to(target.dtype) - target).pow(2).flatten(1).mean(1)  # (B,)
    weight = (weighting(logsnr) / x_mse_factor(parameterization, logsnr)).to(mse.dtype)  # (B,)
    return weight * mse, weight


@dataclass
class GuidanceDistillationObjective:
    """Stage-1 loss: the student at (z_t, c, w) regresses the guided teacher output.

    `teacher` is the CFG teacher network (frozen on construction, see FrozenTeacher), with the
    same output `parameterization` as the student (the student is initialised from it). The loss
    contract is DiffusionObjective's: `loss(student, x0, labels, generator)` returns per-sample
    losses (B,) and diagnostics; the student is called as `student(z, t, labels, w,
    generator=generator)`. No label dropout: the student only ever sees real labels (e).
    """

    teacher: TeacherNetwork
    schedule: NoiseSchedule
    parameterization: str
    weighting: LossWeighting
    null_label: int
    w_range: tuple[float, float]

    def __post_init__(self) -> None:
        check_parameterization(self.parameterization)
        self.w_range = check_w_range(self.w_range)
        self.frozen = FrozenTeacher(self.teacher, self.schedule, self.parameterization)
        # Deviation: t ~ U(0, 1], the teacher's own UniformTimestepSampler, for (e)'s U[0, 1]:
        # the same law up to the measure-zero t = 0, which has no ε or v target.
        self.timestep_sampler = UniformTimestepSampler(self.schedule)

    def target(self, z: Tensor, t: Tensor, labels: Tensor, w: Tensor) -> Tensor:
        """Guided teacher output (1 + w)·out_c − w·out_∅ (B, C, H, W) in the output space.

        One teacher call on 2B rows (conditional first, then the null label): 2 NFE per example.
        Guidance is affine with weights summing to 1, so combining raw ε/x/v outputs equals
        combining x̂ and converting (docs/guided_distillation.md c), without dividing by σ_t ≈ 4.5e-5
        near t = 0 as an x̂ → v round trip would. Nothing is clipped.
        """
        batch = z.shape[0]
        null = torch.full_like(labels, self.null_label)  # (B,)
        out = self.frozen.output(
            torch.cat([z, z]),  # (2B, C, H, W)
            torch.cat([t, t]),  # (2B,)
            torch.cat([labels, null]),  # (2B,)
        )  # (2B, C, H, W)
        return guide(out[:batch], out[batch:], w)  # (B, C, H, W)

    def loss(
        self,
        model: Model,
        x0: Tensor,
        labels: Tensor,
        generator: torch.Generator,
        shard: BatchShard | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-sample losses (b,) and diagnostics (t, logsnr, weight, w) for x0 in [-1, 1].

        x0 (b, C, H, W) and labels (b,) are the rows `shard` of the global batch (None: the
        whole batch); t, ε and w are drawn for the global batch and sliced (sharding.py).
        """
        shard = shard or BatchShard.whole(x0.shape[0])
        batch = shard.global_size
        t = shard.take(self.timestep_sampler.sample(batch, generator, x0.device))  # (b,)
        eps = shard.noise_like(x0, generator)  # (b, C, H, W)
        w = shard.take(sample_guidance_weights(batch, self.w_range, generator, x0.device))  # (b,)
        logsnr = self.schedule.logsnr(t)  # (b,)
        alpha, sigma = self.schedule.alpha_sigma(t)  # (b,), (b,)
        z = broadcast_like(alpha, x0) * x0 + broadcast_like(sigma, x0) * eps  # (b, C, H, W)
        target = self.target(z, t, labels, w)  # (b, C, H, W), no grad
        out = model(z, t, labels, w, generator=shard.network_generator(generator))  # (b, C, H, W)
        per_sample, weight = per_sample_loss(
            out, target, logsnr, self.parameterization, self.weighting
        )
        return per_sample, {"t": t, "logsnr": logsnr, "weight": weight, "w": w}


def build_unet(model_cfg: ModelConfig) -> UNet:
    """The U-Net of `model_cfg`; ConfigError if the size names another family."""
    model = build_model(model_cfg)
    if not isinstance(model, UNet):
        raise ConfigError(
            f"model.name={model_cfg.name!r} builds a {type(model).__name__}; guided "
            "distillation needs a UNet (only it has attach_guidance_embedding)"
        )
    return model


def init_student_from_teacher(
    teacher_state: dict[str, Tensor], model_cfg: ModelConfig, w_max: float, *, seed: int
) -> UNet:
    """The fresh stage-1 student: teacher EMA weights + a zero-initialised w embedding (e).

    `teacher_state` is the teacher checkpoint's 'ema' state dict (no w embedding). The embedding's
    first Dense is random (drawn under `seed`, e.g. rng.derive_seed(train.seed, "init")); its last
    Dense is zero, so the student equals the conditional teacher at every w, bit for bit.
    Returned on the CPU; the caller moves it and sets train or eval mode.
    """
    if any(key.startswith(W_EMBEDDER_PREFIX) for key in teacher_state):
        raise CheckpointError(
            "init_student_from_teacher: the teacher state already has a w embedding "
            f"({W_EMBEDDER_PREFIX}*); expected a plain CFG teacher's EMA weights"
        )
    with seeded_global_rng(seed):
        student = build_unet(model_cfg)
        student.load_state_dict(teacher_state)  # strict: the architectures must match
        student.attach_guidance_embedding(w_max)
    return student


def load_guided_model(state: dict[str, Tensor], model_cfg: ModelConfig, w_max: float) -> UNet:
    """A stage-1 or stage-2 model (with w embedding) from its state dict, on the CPU.

    For the stage-2 teacher (stage-1 'ema', or the previous halving's weights), the stage-2
    student's initial copy and sampling. `w_max` must be the stage-1 value: it scales the w
    features and is not part of the state dict.
    """
    if not any(key.startswith(W_EMBEDDER_PREFIX) for key in state):
        raise CheckpointError(
            f"load_guided_model: the state has no w embedding ({W_EMBEDDER_PREFIX}*); "
            "expected a stage-1 or stage-2 checkpoint"
        )
    # Every parameter, the embedding's included, is overwritten by the state, so the throwaway
    # initial draws are made on a forked global RNG that is restored afterwards.
    with torch.random.fork_rng(devices=[]):
        model = build_unet(model_cfg)
        model.attach_guidance_embedding(w_max)
    model.load_state_dict(state)
    return model
