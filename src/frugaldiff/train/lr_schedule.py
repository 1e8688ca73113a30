"""The learning-rate factor per optimiser step: linear warm-up, then constant, linear or cosine.

MicroDiT's runs (docs/microdit.md (i): "2.4e-4, warmup 2.5k, cosine -> .33x"; cifar10 tier "2e-4,
warmup 1k, cosine -> .33x") decay by a half cosine to a floor of `final_ratio` x the peak lr at
the last step; SpeeD and the DDPM-style runs keep the lr constant after warm-up; a progressive
distillation halving decays linearly to 0 (docs/guided_distillation.md). One function serves all,
so `torch.optim.lr_scheduler.LambdaLR` (whose state is saved and resumed with the run) sees a
plain multiplier of the peak lr.
"""

import math
from collections.abc import Callable

from frugaldiff.errors import ConfigError

LR_DECAYS = ("constant", "linear", "cosine")


def lr_factor(
    decay: str, warmup_iters: int, iterations: int, final_ratio: float = 0.0
) -> Callable[[int], float]:
    """Multiplier of the peak lr at step `it` (0-based), for LambdaLR; ConfigError if unknown.

    - warm-up: (it + 1) / warmup_iters for the first warmup_iters steps (none when 0);
    - constant: 1 after warm-up;
    - linear: final + (1 - final) (1 - it / iterations), from step 0, times the warm-up ramp
      (with final = 0 this is the halving stages' schedule since the first version);
    - cosine: final + (1 - final) (1 + cos(pi p)) / 2 with p = (it - warmup) / (iterations -
      warmup) in [0, 1], so the lr is the peak right after warm-up and final x peak at the end.
    """
    if decay not in LR_DECAYS:
        raise ConfigError(f"train.lr_decay={decay!r}; expected one of {list(LR_DECAYS)}")
    if not 0.0 <= final_ratio <= 1.0:
        raise ConfigError(f"train.lr_final_ratio={final_ratio}; expected a number in [0, 1]")
    warmup, total = max(warmup_iters, 1), max(iterations, 1)  # 0: a stage with no update

    def factor(it: int) -> float:
        ramp = min(1.0, (it + 1) / warmup)
        if decay == "linear":
            return ramp * (final_ratio + (1.0 - final_ratio) * (1.0 - it / total))
        if decay == "cosine":
            progress = min(max((it - warmup_iters) / max(total - warmup_iters, 1), 0.0), 1.0)
            cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
            return ramp * (final_ratio + (1.0 - final_ratio) * cosine)
        return ramp

    return factor
