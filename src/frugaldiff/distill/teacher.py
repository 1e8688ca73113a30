"""A frozen teacher network as the fixed predictor distillation targets are built from.

Both stages of guided distillation (docs/guided_distillation.md e, f) query their teacher without
gradients, in eval mode, in full precision and unclipped (docs/guided_distillation.md (i) 2, 5):
this module owns those rules, so the objectives only combine its outputs.
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn

from frugaldiff.diffusion.parameterization import broadcast_like, check_parameterization, x0_from
from frugaldiff.diffusion.schedule import NoiseSchedule

# (z (B, C, H, W), t (B,), labels (B,) [, w (B,)]) -> raw output (B, C, H, W)
TeacherNetwork = Callable[..., Tensor]


def working_dtype(x: Tensor) -> torch.dtype:
    """float64 for float64 inputs (closed-form tests), else float32: never half for targets."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def freeze(model: nn.Module) -> nn.Module:
    """Put `model` in eval mode with every parameter's requires_grad off; returns it."""
    model.eval()
    model.requires_grad_(False)
    return model


class FrozenTeacher:
    """Raw outputs and x̂ of a teacher network, never differentiated, never clipped.

    `network` is an nn.Module (frozen here) or any callable with the UNet signature
    (z, t, labels[, w]) -> raw output of type `parameterization`. Calls run under no_grad with
    autocast disabled, on float32 inputs (float64 ones stay float64), so a bf16 training step
    still gets fp32 targets (docs/guided_distillation.md e: "fp32, unclipped").
    """

    def __init__(
        self, network: TeacherNetwork, schedule: NoiseSchedule, parameterization: str
    ) -> None:
        if isinstance(network, nn.Module):
            freeze(network)
        self.network = network
        self.schedule = schedule
        self.parameterization = check_parameterization(parameterization)

    def output(self, z: Tensor, t: Tensor, labels: Tensor, w: Tensor | None = None) -> Tensor:
        """Raw teacher output (B, C, H, W) in z's working dtype; w (B,) only for w-conditioned
        teachers (a stage-1 or later student)."""
        if isinstance(self.network, nn.Module) and self.network.training:
            raise RuntimeError(
                "FrozenTeacher: the teacher was switched to train mode; distillation targets "
                "need it in eval mode (no dropout)"
            )
        dtype = working_dtype(z)
        with torch.no_grad(), torch.autocast(z.device.type, enabled=False):
            z, t = z.to(dtype), t.to(dtype)  # (B, C, H, W), (B,)
            if w is None:
                out = self.network(z, t, labels)  # (B, C, H, W)
            else:
                out = self.network(z, t, labels, w.to(dtype))  # (B, C, H, W)
        return out.to(dtype)

    def x0(self, z: Tensor, t: Tensor, labels: Tensor, w: Tensor | None = None) -> Tensor:
        """Teacher x̂ (B, C, H, W) from its raw output (unclipped)."""
        out = self.output(z, t, labels, w)  # (B, C, H, W)
        z = z.to(out.dtype)
        alpha, sigma = self.schedule.alpha_sigma(t.to(torch.float64))  # (B,), (B,)
        a, s = broadcast_like(alpha.to(out.dtype), z), broadcast_like(sigma.to(out.dtype), z)
        return x0_from(out, z, a, s, self.parameterization)  # (B, C, H, W)
