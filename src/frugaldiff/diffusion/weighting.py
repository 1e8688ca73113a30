"""Loss weightings ω(λ): how much a noise level counts, kept apart from how often it is drawn.

Every weighting multiplies the x-space MSE, loss = ω(λ)·mean‖x̂ − x‖². Because
‖ε̂ − ε‖² = SNR·‖x̂ − x‖² and ‖v̂ − v‖² = (1 + SNR)·‖x̂ − x‖² (guided_distillation.md b), the
ε-MSE is ω = SNR, the v-MSE ω = 1 + SNR, and PD's "truncated SNR" max(x-MSE, ε-MSE) is
ω = max(SNR, 1) (Salimans & Ho, arXiv 2202.00512, sec. 4). SNR = e^λ.

SpeeD's change-aware weighting (arXiv 2405.17403; speed.md d) joins `LOSS_WEIGHTINGS` in a
later change: it is a table over discrete steps, so it will be built from the schedule (λ → step
via `DiscreteSchedule.t_to_step`) and its own parameters (λ ceiling, τ, tail weight), and it
multiplies the ε-MSE, i.e. ω = SNR·w_step in this module's convention.
"""

from typing import Protocol

import torch
from torch import Tensor

from frugaldiff.errors import ConfigError


class LossWeighting(Protocol):
    """ω(λ) per sample: logsnr (B,) → weights (B,) in logsnr's dtype."""

    def __call__(self, logsnr: Tensor) -> Tensor: ...


class ConstantWeighting:
    """ω = 1: the plain x-MSE."""

    def __call__(self, logsnr: Tensor) -> Tensor:
        return torch.ones_like(logsnr)  # (B,)


class SNRWeighting:
    """ω = SNR = e^λ: the ε-MSE (DDPM's simple loss). Gives t → 1 no weight."""

    def __call__(self, logsnr: Tensor) -> Tensor:
        return torch.exp(logsnr)  # (B,)


class TruncatedSNRWeighting:
    """ω = max(SNR, 1) = max(x-MSE, ε-MSE); PD's choice in every config."""

    def __call__(self, logsnr: Tensor) -> Tensor:
        # e^{max(λ, 0)} is max(e^λ, 1) exactly (exp is monotone), in one op.
        return torch.exp(logsnr.clamp(min=0.0))  # (B,)


class SNRPlusOneWeighting:
    """ω = 1 + SNR: the v-MSE (the PD code's `v_mse`)."""

    def __call__(self, logsnr: Tensor) -> Tensor:
        return 1.0 + torch.exp(logsnr)  # (B,)


LOSS_WEIGHTINGS: dict[str, type[LossWeighting]] = {
    "constant": ConstantWeighting,
    "snr": SNRWeighting,
    "snr_trunc": TruncatedSNRWeighting,
    "snr_plus1": SNRPlusOneWeighting,
}


def build_loss_weighting(name: str) -> LossWeighting:
    """The weighting named `name`; ConfigError lists the valid names otherwise."""
    if name not in LOSS_WEIGHTINGS:
        raise ConfigError(f"loss.weighting={name!r}; expected one of {sorted(LOSS_WEIGHTINGS)}")
    return LOSS_WEIGHTINGS[name]()
