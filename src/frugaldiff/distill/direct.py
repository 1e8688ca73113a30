"""Meng et al.'s "direct" baseline: progressive distillation of the CFG teacher itself.

Meng et al. (arXiv 2210.03142, Sec. 5; docs/guided_distillation.md l) compare their two-stage
method with PD applied straight to the classifier-free-guided teacher, without stage 1. The
student keeps the teacher's structure (class-conditional, the null label as ∅, no w input), and
each halving distils its conditional and unconditional outputs together: with the same z_t and
t, the PD target (Salimans & Ho, arXiv 2202.00512, Alg. 2; distill/progressive.py) is built once
at label c and once at ∅, 4 teacher NFE per example, and the student regresses both. It is then
guided like the teacher, (1 + w)·x̂(z, c) − w·x̂(z, ∅): 2 NFE per step (sampling/guidance.py).
"""

import torch
from torch import Tensor

from frugaldiff.config import ModelConfig
from frugaldiff.diffusion.objective import Model
from frugaldiff.diffusion.schedule import NoiseSchedule
from frugaldiff.diffusion.weighting import LossWeighting
from frugaldiff.distill.guided import W_EMBEDDER_PREFIX, build_unet, per_sample_loss
from frugaldiff.distill.progressive import HalvingTargets
from frugaldiff.distill.teacher import TeacherNetwork
from frugaldiff.errors import CheckpointError
from frugaldiff.models.unet import UNet
from frugaldiff.sharding import BatchShard

# Teacher network evaluations per training example: two DDIM steps (HalvingTargets.target) on
# each of the conditional and the unconditional trajectory (docs/guided_distillation.md i.11).
TEACHER_NFE_PER_EXAMPLE = 4


class DirectDistillationObjective(HalvingTargets):
    """One halving of the direct chain: the student's cond and uncond outputs regress PD targets.

    `teacher` and the student are plain CFG networks, called as net(z, t, labels); `null_label`
    is the label dropout's ∅ (model.num_classes). Per example: one (z_t, t), the PD target x̃_c
    along the teacher's conditional trajectory (label c) and x̃_∅ along its unconditional one,
    each in the student's output space with PD's weighting; the loss is the mean of the two
    weighted regressions, so it is on the scale of one PD loss [I: Meng et al. give no form].
    No w is drawn: the student learns both terms of the guided combination, for every w.
    """

    def __init__(
        self,
        teacher: TeacherNetwork,
        schedule: NoiseSchedule,
        student_steps: int,
        parameterization: str,
        weighting: LossWeighting,
        null_label: int,
        *,
        train_grid: str,
    ) -> None:
        super().__init__(teacher, schedule, student_steps, parameterization, train_grid=train_grid)
        self.weighting = weighting
        self.null_label = int(null_label)

    def targets(self, z: Tensor, index: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(x̃_c, x̃_∅) (B, C, H, W) each: the PD target at `labels` (B,) and at the null label.

        One batched target on 2B rows (conditional first): 2 teacher calls of 2B rows, so
        TEACHER_NFE_PER_EXAMPLE = 4 per example. Row for row this is HalvingTargets.target with
        the teacher fixed to that label, the same unclipped math as the w-conditioned chain.
        """
        batch = z.shape[0]
        null = torch.full_like(labels, self.null_label)  # (B,)
        x_tilde = self.target(
            torch.cat([z, z]),  # (2B, C, H, W)
            torch.cat([index, index]),  # (2B,)
            torch.cat([labels, null]),  # (2B,)
        )  # (2B, C, H, W)
        return x_tilde[:batch], x_tilde[batch:]

    def loss(
        self,
        model: Model,
        x0: Tensor,
        labels: Tensor,
        generator: torch.Generator,
        shard: BatchShard | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-sample losses (b,) = ½(cond + uncond) and diagnostics (t, logsnr, weight, loss_c,
        loss_u) for x0 (b, C, H, W) in [-1, 1] and labels (b,), the rows `shard` of the global
        batch (None: the whole batch); indices and ε are drawn as in every halving."""
        shard = shard or BatchShard.whole(x0.shape[0])
        rows, t_in = self.draw(x0, generator, shard)
        batch = x0.shape[0]
        null = torch.full_like(labels, self.null_label)  # (b,)
        x_cond, x_uncond = self.targets(rows.z, rows.index, labels)  # (b, C, H, W) each, no grad
        target = self.output_target(
            torch.cat([x_cond, x_uncond]),  # (2b, C, H, W)
            torch.cat([rows.z, rows.z]),
            torch.cat([rows.alpha, rows.alpha]),  # (2b, 1, 1, 1)
            torch.cat([rows.sigma, rows.sigma]),
        )  # (2b, C, H, W)
        out = model(
            torch.cat([rows.z, rows.z]),  # (2b, C, H, W): one student call, cond rows first
            torch.cat([t_in, t_in]),  # (2b,)
            torch.cat([labels, null]),  # (2b,)
            generator=shard.network_generator(generator),
        )  # (2b, C, H, W)
        logsnr = torch.cat([rows.logsnr, rows.logsnr]).to(target.dtype)  # (2b,)
        per_row, weight = per_sample_loss(
            out, target, logsnr, self.parameterization, self.weighting
        )  # (2b,) each
        loss_cond, loss_uncond = per_row[:batch], per_row[batch:]  # (b,) each
        diagnostics = {
            "t": t_in,
            "logsnr": rows.logsnr,
            "weight": weight[:batch],
            "loss_cond": loss_cond.detach(),
            "loss_uncond": loss_uncond.detach(),
        }
        return 0.5 * (loss_cond + loss_uncond), diagnostics


def load_cfg_model(state: dict[str, Tensor], model_cfg: ModelConfig, what: str) -> UNet:
    """A plain CFG U-Net (no w embedding) from its state dict, on the CPU: a direct chain's model.

    For the first direct teacher (the CFG teacher's EMA, handed on by the direct run's
    untrained stage), each later teacher (the previous halving's weights), the student's
    initial copy and sampling. A w-conditioned state is refused, naming `what` (its file).
    """
    if any(key.startswith(W_EMBEDDER_PREFIX) for key in state):
        raise CheckpointError(
            f"{what}: the state has a w embedding ({W_EMBEDDER_PREFIX}*), a w-conditioned "
            "(stage-1 or halving) model; a direct chain distils the plain CFG teacher"
        )
    # Every parameter is overwritten by the state: the throwaway initial draws are made on a
    # forked global RNG that is restored afterwards.
    with torch.random.fork_rng(devices=[]):
        model = build_unet(model_cfg)
    model.load_state_dict(state)
    return model
