"""IDDPM's learned variance ("learned range") and its variational term L_vb, as SpeeD trains.

Nichol & Dhariwal (arXiv 2102.09672, sec. 3.1, eq. 15-16): the network's extra C channels give
v, frac = (v + 1)/2 and log Σ = frac·log β_k + (1 − frac)·log β̃_k, β̃ the posterior variance
with its log clipped at the first step (β̃_0 = 0). L_vb is KL(q(x_{k−1}|x_k, x_0) ‖ p(x_{k−1}|x_k))
for k > 0 and the discretised-Gaussian decoder NLL at k = 0, in bits/dim, with the mean from a
detached ε̂ so only the ε-MSE trains the mean (docs/speed.md (b), (e); DiT's `_vb_terms_bpd`).
"""

import math

import torch
from torch import Tensor

from frugaldiff.config import DiffusionConfig
from frugaldiff.diffusion.parameterization import broadcast_like
from frugaldiff.diffusion.schedule import DiscreteSchedule, NoiseSchedule, StepGrid
from frugaldiff.errors import ConfigError

DATA_BINS = 256  # the decoder's bins over data in [-1, 1] (8-bit pixels; DiT uses it on latents)
LOG_FLOOR = 1e-12  # IDDPM's clamp before log: probabilities that underflow stay finite


def check_learn_sigma(cfg: DiffusionConfig) -> None:
    """ConfigError unless `cfg` is a setting learned Σ is defined for here (SpeeD's, docs/speed.md
    b).

    The interpolation is between a discrete process's β_k and β̃_k, and L_vb's mean comes from
    ε̂; EDM's data scaling and time input and MicroDiT's masking change what the network sees.
    """
    if not cfg.learn_sigma:
        return
    checks = (
        ("schedule", cfg.schedule, ("linear_beta",)),
        ("parameterization", cfg.parameterization, ("eps",)),
        ("mask_ratio", cfg.mask_ratio, (0.0,)),
        ("sigma_data", cfg.sigma_data, (1.0,)),
        ("time_input", cfg.time_input, ("t",)),
        ("timesteps.name", cfg.timesteps.name, ("uniform", "speed")),
    )
    for key, value, allowed in checks:
        if value not in allowed:
            raise ConfigError(
                f"diffusion.learn_sigma is true, but diffusion.{key}={value!r}; learned variance "
                f"(IDDPM learned range) is supported only with diffusion.{key} in "
                f"{list(allowed)} (the discrete linear_beta process, eps output, no EDM "
                "scaling, no masking)"
            )


def frac_from_output(v: Tensor) -> Tensor:
    """IDDPM's interpolation weight frac = (v + 1)/2; v nominally in [−1, 1], not clamped (as
    IDDPM, which leaves the output unconstrained). Any shape.
    """
    return (v + 1.0) / 2.0


def interpolate_log_variance(frac: Tensor, log_large: Tensor, log_small: Tensor) -> Tensor:
    """log Σ = frac·log β + (1 − frac)·log β̃; frac 1 is the `large` variance, 0 the `small`."""
    return frac * log_large + (1.0 - frac) * log_small


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) per element, in nats; inputs broadcast."""
    return 0.5 * (
        -1.0
        + logvar2
        - logvar1
        + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2).pow(2) * torch.exp(-logvar2)
    )


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log P(x) per element for x on the DATA_BINS centres in [−1, 1] under N(mean, e^{2 log_scale})
    integrated over each bin (width 2/255); the end bins reach to ±∞, so the bins sum to 1.

    Deviation: the exact normal CDF (torch.special.ndtr), not IDDPM's tanh approximation of it
    (within ~2e-4 in the CDF).
    """
    half_bin = 1.0 / (DATA_BINS - 1)
    centred = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = torch.special.ndtr(inv_std * (centred + half_bin))
    cdf_minus = torch.special.ndtr(inv_std * (centred - half_bin))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=LOG_FLOOR))  # lowest bin: (−∞, x + h]
    log_survival = torch.log((1.0 - cdf_minus).clamp(min=LOG_FLOOR))  # highest: [x − h, ∞)
    log_delta = torch.log((cdf_plus - cdf_minus).clamp(min=LOG_FLOOR))
    # IDDPM's ±0.999 marks the end bins: between the end centres ±1 and their neighbours.
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_survival, log_delta))


class LearnedRangeTerm:
    """L_vb of a learned-range model on a discrete schedule's T steps (float64 tables).

    Step k's posterior q(x_{k−1}|x_k, x_0) has mean c0_k x_0 + ck_k x_k and variance β̃_k;
    ᾱ_{−1} = 1, so at k = 0 the mean is x_0 itself and the decoder NLL replaces the KL.
    """

    def __init__(self, schedule: NoiseSchedule) -> None:
        if not isinstance(schedule, DiscreteSchedule):
            raise ConfigError(
                f"diffusion.learn_sigma needs a discrete schedule; got {type(schedule).__name__}"
            )
        betas = schedule.betas  # (T,) float64
        abar = schedule.alphas_cumprod  # (T,)
        abar_prev = torch.cat([abar.new_ones(1), abar[:-1]])  # (T,) ᾱ_{k−1}
        posterior = betas * (1.0 - abar_prev) / (1.0 - abar)  # (T,) β̃_k, β̃_0 = 0
        self.log_large = torch.log(betas)  # (T,)
        self.log_small = torch.log(torch.cat([posterior[1:2], posterior[1:]]))  # clipped at 0
        self.coef_x0 = betas * abar_prev.sqrt() / (1.0 - abar)  # (T,)
        self.coef_xk = (1.0 - abar_prev) * (1.0 - betas).sqrt() / (1.0 - abar)  # (T,)
        self.grid = StepGrid(schedule)  # λ → step, as SpeeD's weighting maps it

    def _take(self, table: Tensor, steps: Tensor, ref: Tensor) -> Tensor:
        """table[steps] as (b, 1, 1, 1) in ref's dtype and device."""
        return broadcast_like(table.to(ref.device)[steps].to(ref.dtype), ref)

    def posterior_mean(self, steps: Tensor, x0: Tensor, z: Tensor) -> Tensor:
        """Mean (b, C, H, W) of q(x_{k−1}|x_k = z, x_0) at int64 steps (b,)."""
        return self._take(self.coef_x0, steps, z) * x0 + self._take(self.coef_xk, steps, z) * z

    def log_variance(self, steps: Tensor, frac: Tensor) -> Tensor:
        """The model's log Σ (b, C, H, W) at steps (b,) for frac (b, C, H, W)."""
        log_large = self._take(self.log_large, steps, frac)
        return interpolate_log_variance(frac, log_large, self._take(self.log_small, steps, frac))

    def bits_per_dim(
        self, steps: Tensor, x0: Tensor, z: Tensor, x0_hat: Tensor, v: Tensor
    ) -> Tensor:
        """L_vb (b,) in bits/dim: x0 the data, z = x_k, x0_hat from the detached ε̂, v the raw
        variance channels, all (b, C, H, W); steps (b,) int64. Gradients reach v only (if x0_hat
        is detached).
        """
        log_var = self.log_variance(steps, frac_from_output(v))  # (b, C, H, W)
        true_mean = self.posterior_mean(steps, x0, z)  # (b, C, H, W)
        model_mean = self.posterior_mean(steps, x0_hat, z)  # (b, C, H, W)
        true_log_var = self._take(self.log_small, steps, z)  # (b, 1, 1, 1)
        kl = normal_kl(true_mean, true_log_var, model_mean, log_var).flatten(1).mean(1)  # (b,)
        nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * log_var)
        decoder = nll.flatten(1).mean(1)  # (b,)
        return torch.where(steps == 0, decoder, kl) / math.log(2.0)  # (b,)

    def split_output(
        self, out: Tensor, x0: Tensor, z: Tensor, alpha: Tensor, sigma: Tensor, logsnr: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The ε̂ channels (b, C, H, W) of a 2C-channel output (b, 2C, H, W) and L_vb (b,).

        x0, z (b, C, H, W); alpha, sigma (b, 1, 1, 1) the noising's; logsnr (b,) gives the step
        (exact on the grid points the samplers return). L_vb sees ε̂ detached.
        """
        channels = x0.shape[1]
        if out.shape[1] != 2 * channels:
            raise ConfigError(
                f"diffusion.learn_sigma is true, so the model must output 2·C = {2 * channels} "
                f"channels (DiTConfig.learn_sigma); it gave {out.shape[1]}"
            )
        eps_hat, v = out[:, :channels], out[:, channels:]  # (b, C, H, W) each
        x0_hat = (z - sigma * eps_hat.detach()) / alpha  # (b, C, H, W), no gradient to ε̂
        steps = self.grid.logsnr_to_steps(logsnr)  # (b,) int64
        return eps_hat, self.bits_per_dim(steps, x0, z, x0_hat, v)
