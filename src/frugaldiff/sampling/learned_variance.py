"""Sampling with a learned variance: IDDPM's respaced β', β̃' and the denoiser that gives frac.

On a respaced grid (guided-diffusion `respace.py`; Nichol & Dhariwal, arXiv 2102.09672) a step
t → s has β' = 1 − ᾱ_t/ᾱ_s and posterior variance β̃' = (1 − ᾱ_s)/(1 − ᾱ_t)·β'; the model's
frac interpolates their logs as in training (diffusion/learned_variance.py). Only
AncestralSolver("learned") asks a denoiser for frac (`with_frac`), so every other solver sees
the plain D(z, t) → x̂. The contract is checked twice, each once, before any step: the sampler
refuses a learned-variance set on a checkpoint without one where it builds the solver
(sampling/generate.py), and the solver refuses a denoiser without `with_frac`
(`check_gives_variance`); the wrappers in between forward `with_frac` unchecked.
"""

import math
from collections.abc import Callable

from torch import Tensor

from frugaldiff.errors import ConfigError


def check_gives_variance(denoiser: Callable[[Tensor, Tensor], Tensor]) -> None:
    """ConfigError unless `denoiser` offers `with_frac(z, t) -> (x̂, frac)` (B, C, H, W) each."""
    if not callable(getattr(denoiser, "with_frac", None)):
        raise ConfigError(
            "sampling.variance='learned' needs a learned-variance model (diffusion.learn_sigma: "
            f"true); this denoiser ({type(denoiser).__name__}) gives no variance"
        )


def respaced_log_variances(logsnr_t: float, logsnr_s: float) -> tuple[float, float]:
    """(log β', log β̃') of the grid step t → s < t, from λ_t < λ_s.

    β' = (1 − r)σ_t² and β̃' = (1 − r)σ_s² with r = e^{λ_t − λ_s}, log σ² = −softplus(λ): the
    same numbers as the ᾱ formulas, without their cancellation near t = 0. For the full T-step
    grid of a discrete schedule, β' is its β_k and β̃' its posterior variance.
    """
    log_one_minus_r = math.log(-math.expm1(logsnr_t - logsnr_s))
    return log_one_minus_r - _softplus(logsnr_t), log_one_minus_r - _softplus(logsnr_s)


def _softplus(x: float) -> float:
    """log(1 + e^x) without overflow."""
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))
