"""Loss weightings ω(λ): how much a noise level counts, kept apart from how often it is drawn.

Every weighting multiplies the x-space MSE, loss = ω(λ)·mean‖x̂ − x‖². Because
‖ε̂ − ε‖² = SNR·‖x̂ − x‖² and ‖v̂ − v‖² = (1 + SNR)·‖x̂ − x‖² (docs/guided_distillation.md b), the
ε-MSE is ω = SNR, the v-MSE ω = 1 + SNR, and PD's "truncated SNR" max(x-MSE, ε-MSE) is
ω = max(SNR, 1) (Salimans & Ho, arXiv 2202.00512, sec. 4). SNR = e^λ.

SpeeD's change-aware weighting (Wang et al., arXiv 2405.17403; docs/speed.md d) is a table over
steps, built from the schedule (`StepGrid`) and its own parameters (λ ceiling, τ, tail weight).
It multiplies the ε-MSE, so in this module's convention it is ω = SNR·w_step. Every weighting is
built by `from_config(cfg, schedule)`; the schedule-free ones ignore both.
"""

import math
from abc import ABC, abstractmethod
from typing import Protocol, Self

import torch
from torch import Tensor

from frugaldiff.config import WeightingConfig
from frugaldiff.diffusion.schedule import NoiseSchedule, StepGrid
from frugaldiff.errors import ConfigError


class LossWeighting(Protocol):
    """ω(λ) per sample: logsnr (B,) → weights (B,) in logsnr's dtype."""

    def __call__(self, logsnr: Tensor) -> Tensor: ...


class _ScheduleFreeWeighting(ABC):
    """A weighting with no parameters: a function of λ alone."""

    @classmethod
    def from_config(cls, cfg: WeightingConfig, schedule: NoiseSchedule | None) -> Self:
        return cls()

    @abstractmethod
    def __call__(self, logsnr: Tensor) -> Tensor: ...


class ConstantWeighting(_ScheduleFreeWeighting):
    """ω = 1: the plain x-MSE."""

    def __call__(self, logsnr: Tensor) -> Tensor:
        return torch.ones_like(logsnr)  # (B,)


class SNRWeighting(_ScheduleFreeWeighting):
    """ω = SNR = e^λ: the ε-MSE (DDPM's simple loss). Gives t → 1 no weight."""

    def __call__(self, logsnr: Tensor) -> Tensor:
        return torch.exp(logsnr)  # (B,)


class TruncatedSNRWeighting(_ScheduleFreeWeighting):
    """ω = max(SNR, 1) = max(x-MSE, ε-MSE); PD's choice in every config."""

    def __call__(self, logsnr: Tensor) -> Tensor:
        # e^{max(λ, 0)} is max(e^λ, 1) exactly (exp is monotone), in one op.
        return torch.exp(logsnr.clamp(min=0.0))  # (B,)


class SNRPlusOneWeighting(_ScheduleFreeWeighting):
    """ω = 1 + SNR: the v-MSE (the PD code's `v_mse`)."""

    def __call__(self, logsnr: Tensor) -> Tensor:
        return 1.0 + torch.exp(logsnr)  # (B,)


class ChangeAwareWeighting:
    """SpeeD's change-aware weights (docs/speed.md d), as ω = SNR·w_step on the x-MSE.

    g = ∇Ψ with Ψ = 1 − ᾱ over the step grid (numpy.gradient), ĝ = min-max normalised g over
    all T steps, w = (1 − λ) + (2λ − 1)·ĝ below τ (so w ∈ [1 − λ, λ], peak at t*), w =
    `tail_weight` from τ on (None: the affine map everywhere). No normalisation, no coupling to
    the sampler. λ → step: the nearest grid λ for a discrete schedule, the cell of t on the
    T = 1000 equivalent grid for a continuous one (same grid as SpeeDTimestepSampler).
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        ceiling: float = WeightingConfig.ceiling,
        tau: int = WeightingConfig.tau,
        tail_weight: float | None = WeightingConfig.tail_weight,
    ) -> None:
        self.grid = StepGrid(schedule)
        num_steps = self.grid.num_steps
        # Deviation: the official Speed_IDDPM defaults to λ = 5 (negative weights, docs/speed.md
        # i.2); we reject λ outside [0.5, 1] instead.
        if not 0.5 <= ceiling <= 1.0:
            raise ConfigError(
                f"loss_weighting.ceiling={ceiling}; expected 0.5 <= ceiling <= 1 "
                "(docs/speed.md (i) 2)"
            )
        if not 1 <= tau <= num_steps:
            raise ConfigError(
                f"loss_weighting.tau={tau}; expected a step index in [1, {num_steps}]"
            )
        if tail_weight is not None and not (math.isfinite(tail_weight) and tail_weight >= 0.0):
            raise ConfigError(
                f"loss_weighting.tail_weight={tail_weight}; expected a finite weight >= 0 or null"
            )
        rate = self.grid.change_rate()  # (T,) float64
        unit = (rate - rate.min()) / (rate.max() - rate.min())  # (T,) in [0, 1]
        weights = (1.0 - ceiling) + (2.0 * ceiling - 1.0) * unit  # (T,)
        if tail_weight is not None:
            weights[tau:] = tail_weight
        self.step_weights = weights  # (T,) float64, SpeeD's w on the ε-MSE

    @classmethod
    def from_config(
        cls, cfg: WeightingConfig, schedule: NoiseSchedule | None
    ) -> "ChangeAwareWeighting":
        if schedule is None:
            raise ConfigError(
                f"loss_weighting.name={cfg.name!r} is a table over the schedule's steps; "
                "build it with build_loss_weighting(cfg, schedule)"
            )
        return cls(schedule, ceiling=cfg.ceiling, tau=cfg.tau, tail_weight=cfg.tail_weight)

    def __call__(self, logsnr: Tensor) -> Tensor:
        if self.step_weights.device != logsnr.device:
            self.step_weights = self.step_weights.to(logsnr.device)
        w = self.step_weights[self.grid.logsnr_to_steps(logsnr)].to(logsnr.dtype)  # (B,)
        # SpeeD weights the ε-MSE = SNR·x-MSE (module docstring).
        return torch.exp(logsnr) * w  # (B,)


LOSS_WEIGHTINGS: dict[str, type[_ScheduleFreeWeighting] | type[ChangeAwareWeighting]] = {
    "constant": ConstantWeighting,
    "snr": SNRWeighting,
    "snr_trunc": TruncatedSNRWeighting,
    "snr_plus1": SNRPlusOneWeighting,
    "change_aware": ChangeAwareWeighting,
}


def build_loss_weighting(
    cfg: WeightingConfig | str, schedule: NoiseSchedule | None = None
) -> LossWeighting:
    """The weighting cfg.name (a bare name means its defaults); ConfigError lists valid names.

    `schedule` is needed by schedule-derived weightings (change_aware) and ignored by the rest.
    """
    if isinstance(cfg, str):
        cfg = WeightingConfig(name=cfg)
    if cfg.name not in LOSS_WEIGHTINGS:
        raise ConfigError(
            f"loss_weighting.name={cfg.name!r}; expected one of {sorted(LOSS_WEIGHTINGS)}"
        )
    return LOSS_WEIGHTINGS[cfg.name].from_config(cfg, schedule)
