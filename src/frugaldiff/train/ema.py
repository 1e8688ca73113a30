"""Exponential moving average of weights on top of torch.optim.swa_utils.AveragedModel.

The decay warms up as min(β, (1 + n)/(10 + n)) after n updates: with a fixed β = 0.9999 over a
short run, e^-2 ≈ 13% of the EMA would still be the initial weights (docs/guided_distillation.md
(e)), which is what the short smoke and distillation runs would otherwise report.
"""

import torch
from torch.optim.swa_utils import AveragedModel


def warmup_decay(decay: float, num_updates: int) -> float:
    """The EMA decay used at update `num_updates` (0-based count of earlier updates)."""
    return min(decay, (1.0 + num_updates) / (10.0 + num_updates))


def make_ema(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An AveragedModel whose update is ema ← lerp(ema, current, 1 − warmup_decay)."""

    def multi_avg_fn(
        ema_params: list[torch.Tensor], params: list[torch.Tensor], num_averaged: torch.Tensor
    ) -> None:
        beta = warmup_decay(decay, int(num_averaged.item()))
        if ema_params and ema_params[0].is_floating_point():
            torch._foreach_lerp_(ema_params, params, 1.0 - beta)

    return AveragedModel(model, multi_avg_fn=multi_avg_fn, use_buffers=True)
