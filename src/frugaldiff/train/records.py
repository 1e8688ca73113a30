"""What a training run records about itself: its metrics log and its counted cost.

The metrics log (state/metrics.jsonl: one JSON line per logged iteration) survives a resume cut
back to the resumed iteration, so a resumed run's log has no repeats and no gaps; the run's
summary reads its throughput from it. The counted cost (FLOPs per image) is what the reports'
cost axes use (report/frontier.py, report/masking.py), counted as the objective runs, so
masking (fewer tokens) and MoE routing show up as they are.
"""

import copy
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from frugaldiff.io import atomic_write
from frugaldiff.rng import make_generator

log = logging.getLogger(__name__)


class MetricsLog:
    """The append-only metrics log of one run; only the main rank (`writes`) touches it."""

    def __init__(self, path: Path, writes: bool = True) -> None:
        self.path, self.writes = path, writes

    def append(self, record: dict[str, Any]) -> None:
        if not self.writes:
            return
        log.info(
            "iter %(iteration)d loss %(loss).4f lr %(lr).2e %(images_per_second).1f img/s", record
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def truncate_after(self, iteration: int) -> None:
        """Drop lines logged after `iteration` (the resumed state's), so none repeats."""
        if not self.writes or not self.path.is_file():
            return
        lines = self.path.read_text().splitlines()
        kept = [ln for ln in lines if ln and json.loads(ln)["iteration"] <= iteration]
        with atomic_write(self.path) as tmp:
            tmp.write_text("".join(f"{ln}\n" for ln in kept))

    def median_images_per_second(self) -> float:
        """The median logged rate (NaN before the first log line)."""
        logged = self.path.read_text() if self.path.is_file() else ""
        rates = sorted(json.loads(ln)["images_per_second"] for ln in logged.splitlines() if ln)
        return rates[len(rates) // 2] if rates else float("nan")

    def publish(self, target: Path) -> None:
        """Copy the log to `target` atomically; an empty file when no update ran (a direct run)."""
        with atomic_write(target) as tmp:
            if self.path.is_file():
                shutil.copyfile(self.path, tmp)
            else:
                tmp.write_text("")


def counted_cost(
    model: nn.Module, objective: Any, images: torch.Tensor, labels: torch.Tensor
) -> dict[str, float]:
    """Parameters and counted training FLOPs per image of one objective step (forward x3).

    torch's FlopCounterMode counts one CPU copy of `model` through `objective.loss` on the
    first two `images` (B, C, H, W) / `labels` (B,); backward is taken as 2x the forward.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counted = copy.deepcopy(model).cpu()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        objective.loss(counted, images[:2], labels[:2], make_generator(0))
    forward = counter.get_total_flops() / 2
    return {
        "parameters": float(sum(p.numel() for p in model.parameters())),
        "forward_flops_per_image": float(forward),
        "train_flops_per_image": 3.0 * forward,  # backward ≈ 2x forward
    }
