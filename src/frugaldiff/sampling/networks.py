"""A checkpoint's network as the (z, t, labels) → x̂ callables guidance and the solvers use.

Each wrapper counts the network rows it evaluates in a shared RowCounter, so a sample set's NFE
is measured (rows ÷ images), not assumed from the solver's step count.
"""

from dataclasses import dataclass

import torch

from frugaldiff.diffusion.learned_variance import frac_from_output
from frugaldiff.diffusion.parameterization import broadcast_like, x0_from
from frugaldiff.diffusion.preconditioning import InputScaling
from frugaldiff.diffusion.schedule import NoiseSchedule


@dataclass
class RowCounter:
    """Counts network rows evaluated, to measure NFE per image."""

    rows: int = 0


class X0Predictor:
    """(z, t, labels) -> x̂: the network output converted by its parameterisation.

    `inputs` gives the network its time input (EDM's c_noise; None: t itself). A learn_sigma
    network's last C channels are dropped by `__call__` (DDIM and the rest ignore them) and
    read by `with_frac` as IDDPM's frac = (v + 1)/2; both count the same rows.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        schedule: NoiseSchedule,
        parameterization: str,
        counter: RowCounter,
        inputs: InputScaling | None = None,
        learn_sigma: bool = False,
    ) -> None:
        self.model, self.schedule, self.parameterization = model, schedule, parameterization
        self.counter, self.inputs, self.learn_sigma = counter, inputs, learn_sigma

    def _x0_and_v(
        self, z: torch.Tensor, t: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        self.counter.rows += z.shape[0]
        time = t if self.inputs is None else self.inputs.network_time(t)  # (B,)
        out = self.model(z, time, labels).float()  # (B, C or 2C, H, W)
        v = None
        if self.learn_sigma:
            out, v = out[:, : z.shape[1]], out[:, z.shape[1] :]  # (B, C, H, W) each
        alpha, sigma = self.schedule.alpha_sigma(t)  # (B,), (B,)
        a, s = broadcast_like(alpha, z), broadcast_like(sigma, z)
        return x0_from(out, z, a, s, self.parameterization), v

    def __call__(self, z: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self._x0_and_v(z, t, labels)[0]  # (B, C, H, W)

    def with_frac(
        self, z: torch.Tensor, t: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂, frac), (B, C, H, W) each, of a learn_sigma network (the sampler checks that it is
        one before it builds the solver: sampling/generate.py)."""
        x0, v = self._x0_and_v(z, t, labels)
        assert v is not None, "a learned-variance set on a model without it (generate.py checks)"
        return x0, frac_from_output(v)


class CountingNetwork:
    """Wraps a w-conditioned student so its rows count towards the measured NFE."""

    def __init__(self, model: torch.nn.Module, counter: RowCounter) -> None:
        self.model, self.counter = model, counter

    def __call__(self, z: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, w: torch.Tensor):
        self.counter.rows += z.shape[0]
        return self.model(z, t, labels, w)
