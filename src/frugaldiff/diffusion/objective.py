"""The one denoising objective that every training run calls (DESIGN.md, contracts).

loss = ω(λ_t) · ‖x̂ − x‖², averaged over pixels (Salimans & Ho 2022, eq. 9 form). *Which* noise
levels are drawn is the timestep sampler's business and *how much each counts* the weighting's
(k-diffusion / EDM split), so SpeeD's sampler and weighting plug in as two objects. The loss is
evaluated in the network's output space, ‖out − target‖² · ω / c, where c converts x-space to
output-space MSE (ε: SNR, v: 1 + SNR); that is the same number, without dividing by α near t = 1.
Label dropout for classifier-free guidance draws from the caller's generator. Every draw is made
for the whole global batch and then sliced to the caller's `BatchShard` (sharding.py), so an
example's t, ε and masks do not depend on how many processes share the batch. EDM runs divide the
data by σ_d and give the network c_noise for t (`InputScaling`, docs/microdit.md g); the loss is
then EDM's weighted loss exactly. With `learned` (diffusion.learn_sigma, IDDPM's learned range) the
network's last C channels set the variance: loss = ω·MSE(first C) + L_vb in bits/dim, the mean of
L_vb from a detached ε̂ and L_vb unweighted (docs/speed.md (e); diffusion/learned_variance.py).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from frugaldiff.config import DiffusionConfig
from frugaldiff.diffusion.learned_variance import LearnedRangeTerm, check_learn_sigma
from frugaldiff.diffusion.parameterization import broadcast_like, target_for, x_mse_factor
from frugaldiff.diffusion.preconditioning import InputScaling
from frugaldiff.diffusion.schedule import NoiseSchedule, build_schedule_by_name
from frugaldiff.diffusion.timesteps import TimestepSampler, build_timestep_sampler
from frugaldiff.diffusion.weighting import build_loss_weighting
from frugaldiff.errors import ConfigError
from frugaldiff.masking import TokenMasker, masked_mse
from frugaldiff.sharding import BatchShard

Model = Callable[..., torch.Tensor]  # (z, t, labels, *, generator) -> raw output


@dataclass
class DiffusionObjective:
    """Noise the batch at sampled t, predict, and weight the error by ω(λ_t)."""

    schedule: NoiseSchedule
    parameterization: str
    timestep_sampler: TimestepSampler
    weighting: Callable[[torch.Tensor], torch.Tensor]
    p_uncond: float
    null_label: int
    masker: TokenMasker | None = None  # MicroDiT: drop tokens, loss on kept patches only
    inputs: InputScaling | None = None  # data ÷ σ_d and the network's time (None: as they are)
    learned: LearnedRangeTerm | None = None  # learned Σ: + L_vb on the last C channels
    draw_batch: int | None = None  # rows per independent timestep draw (None: the batch)

    @classmethod
    def from_config(cls, cfg: DiffusionConfig, null_label: int) -> "DiffusionObjective":
        check_learn_sigma(cfg)
        schedule = build_schedule_by_name(cfg.schedule)
        return cls(
            schedule=schedule,
            parameterization=cfg.parameterization,
            timestep_sampler=build_timestep_sampler(cfg.timesteps, schedule, cfg.sigma_data),
            weighting=build_loss_weighting(cfg.loss_weighting, schedule),
            p_uncond=cfg.p_uncond,
            null_label=null_label,
            masker=TokenMasker(cfg.mask_ratio) if cfg.mask_ratio > 0 else None,
            inputs=InputScaling.from_config(cfg, schedule),
            learned=LearnedRangeTerm(schedule) if cfg.learn_sigma else None,
            draw_batch=cfg.timesteps.draw_batch,
        )

    def _draw_timesteps(
        self, batch: int, generator: torch.Generator, device: torch.device
    ) -> torch.Tensor:
        """t for the global batch (B,): one draw of B, or B / draw_batch draws in row order.

        SpeeD's sampler pairs about half of each draw with duals, so the law is the law of one
        draw's size; drawing in groups of a GPU's batch reproduces the official per-GPU law on
        any number of processes (every rank still draws the whole batch and keeps its rows).
        """
        size = self.draw_batch or batch
        if batch % size != 0:
            raise ValueError(f"draw_batch {size} does not divide the batch of {batch}")
        draws = [
            self.timestep_sampler.sample(size, generator, device) for _ in range(batch // size)
        ]
        return torch.cat(draws)

    def drop_labels(
        self, labels: torch.Tensor, generator: torch.Generator, shard: BatchShard | None = None
    ) -> torch.Tensor:
        """Replace each label (b,) by the null label with probability p_uncond (b,)."""
        if self.p_uncond <= 0:
            return labels
        shard = shard or BatchShard.whole(labels.shape[0])
        u = torch.rand(shard.global_size, generator=generator, device=labels.device)  # (B,)
        drop = shard.take(u) < self.p_uncond  # (b,)
        return torch.where(drop, torch.full_like(labels, self.null_label), labels)

    def loss(
        self,
        model: Model,
        x0: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator,
        shard: BatchShard | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-sample losses (b,) and diagnostics (t, logsnr, weight) for images x0 in [-1, 1].

        x0 (b, C, H, W) and labels (b,) are the rows `shard` of the global batch (None: x0 is the
        whole batch); the draws are made for the global batch and sliced.
        """
        shard = shard or BatchShard.whole(x0.shape[0])
        inputs = self.inputs or InputScaling(self.schedule)
        x0 = inputs.to_model_units(x0)  # (b, C, H, W), ÷ σ_d
        batch = shard.global_size
        t = shard.take(self._draw_timesteps(batch, generator, x0.device))  # (b,)
        eps = shard.noise_like(x0, generator)  # (b, C, H, W)
        labels = self.drop_labels(labels, generator, shard)  # (b,)
        logsnr = self.schedule.logsnr(t)  # (b,)
        alpha, sigma = self.schedule.alpha_sigma(t)  # (b,), (b,)
        a, s = broadcast_like(alpha, x0), broadcast_like(sigma, x0)  # (b, 1, 1, 1)
        z = a * x0 + s * eps  # (b, C, H, W)
        target = target_for(self.parameterization, x0, eps, a, s)  # (b, C, H, W)
        t_in = inputs.network_time(t)  # (b,) t, or EDM's c_noise
        vb: torch.Tensor | None = None  # L_vb (b,), learned Σ only
        if self.masker is None:
            out = model(z, t_in, labels, generator=shard.network_generator(generator)).float()
            if self.learned is not None:
                out, vb = self.learned.split_output(out, x0, z, a, s, logsnr)  # ε̂, L_vb (b,)
            mse = (out - target).pow(2).flatten(1).mean(1)  # (b,) output-space MSE
        else:
            arch = getattr(model, "cfg", None)
            if not hasattr(arch, "num_tokens"):
                raise ConfigError(
                    f"diffusion.mask_ratio={self.masker.mask_ratio} needs a patch model (DiT / "
                    f"MicroDiT); got {type(model).__name__}"
                )
            mask = self.masker.draw(batch, arch.num_tokens, generator, x0.device)  # keep (B, K)
            keep = shard.take(mask.keep)  # (b, K)
            out = model(
                z, t_in, labels, generator=shard.network_generator(generator), keep_indices=keep
            ).float()
            mse = masked_mse(out, target, keep, arch.patch_size)  # (b,) kept patches only
        weight = self.weighting(logsnr) / x_mse_factor(self.parameterization, logsnr)  # (b,)
        if vb is None:
            return weight * mse, {"t": t, "logsnr": logsnr, "weight": weight}
        diagnostics = {"t": t, "logsnr": logsnr, "weight": weight, "vb": vb.detach()}
        return weight * mse + vb, diagnostics  # L_vb unweighted (docs/speed.md (e))
