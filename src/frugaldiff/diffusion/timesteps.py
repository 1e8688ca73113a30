"""Training-time distributions over noise levels: which t a training example gets.

As in guided-diffusion's `resample.py`, the distribution is an object, separate from how much a
level counts (weighting.py). Samplers return float t ∈ (0, 1] (t = 1 noisiest); a discrete
schedule's samplers return only its grid values t = (k + 1)/T, so `t_to_step` recovers k
exactly. SpeeD's asymmetric sampler (arXiv 2405.17403; speed.md c) joins `TIMESTEP_SAMPLERS`
in a later change.
"""

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from frugaldiff.diffusion.schedule import DiscreteSchedule, NoiseSchedule
from frugaldiff.errors import ConfigError


@dataclass(frozen=True)
class TimestepConfig:
    """Which timestep sampler (later samplers add their own fields here)."""

    name: str = "uniform"


class TimestepSampler(Protocol):
    """Draws one t per training example, from the caller's generator only."""

    def sample(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str
    ) -> Tensor:
        """(batch_size,) float32 t on `device`."""
        ...


class UniformTimestepSampler:
    """t ~ U(0, 1] for a continuous schedule; k ~ U{0..T−1}, t = (k + 1)/T for a discrete one.

    The continuous draw is 1 − u with u ~ U[0, 1), so t = 0 (the clean data, where ε-targets and
    σ-divisions are undefined) is never drawn but t = 1 can be. Draws happen on the generator's
    device and are then moved, so a CPU generator gives the same t for any training device.
    """

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule

    @classmethod
    def from_config(cls, cfg: TimestepConfig, schedule: NoiseSchedule) -> "UniformTimestepSampler":
        return cls(schedule)

    def sample(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str
    ) -> Tensor:
        if isinstance(self.schedule, DiscreteSchedule):
            steps = torch.randint(
                0,
                self.schedule.num_steps,
                (batch_size,),
                generator=generator,
                device=generator.device,
            )  # (B,) int64
            return self.schedule.step_to_t(steps).to(device)  # (B,)
        u = torch.rand(batch_size, generator=generator, device=generator.device)  # (B,) in [0, 1)
        return (1.0 - u).to(device)  # (B,) in (0, 1]


TIMESTEP_SAMPLERS: dict[str, type[UniformTimestepSampler]] = {
    "uniform": UniformTimestepSampler,
}


def build_timestep_sampler(cfg: TimestepConfig | str, schedule: NoiseSchedule) -> TimestepSampler:
    """The sampler named by cfg.name (a bare name means its defaults); ConfigError otherwise."""
    if isinstance(cfg, str):
        cfg = TimestepConfig(name=cfg)
    if cfg.name not in TIMESTEP_SAMPLERS:
        raise ConfigError(
            f"timesteps.name={cfg.name!r}; expected one of {sorted(TIMESTEP_SAMPLERS)}"
        )
    return TIMESTEP_SAMPLERS[cfg.name].from_config(cfg, schedule)
