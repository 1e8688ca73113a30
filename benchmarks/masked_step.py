"""Training-step time of deferred masking at 50% and 75% ÷ the unmasked step, same model/batch.

With 75% of the tokens dropped after the patch-mixer, the backbone's linear layers see a
quarter of the tokens and attention a sixteenth; the mixer, embedding and head still see all
of them, so the ratio approaches the token ratio only when the backbone dominates. Prints step
times (median of interleaved blocks), the ratios, counted forward FLOPs and, on a GPU, peak
memory ratios. Nothing is asserted.

    python benchmarks/masked_step.py --size microdit-smoke --batch 16
"""

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from frugaldiff.config import DiffusionConfig, ModelConfig, WeightingConfig
from frugaldiff.devices import resolve_device
from frugaldiff.diffusion.objective import DiffusionObjective
from frugaldiff.models.registry import build_model
from frugaldiff.rng import make_generator

RATIOS = (0.0, 0.5, 0.75)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="microdit-smoke")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=5, help="interleaved blocks per ratio")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    model = build_model(ModelConfig(name=args.size)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    side, channels = model.cfg.image_size, model.cfg.in_channels
    x0 = torch.rand(args.batch, channels, side, side, device=device) * 2 - 1
    labels = torch.arange(args.batch, device=device) % model.cfg.num_classes
    objectives = {
        r: DiffusionObjective.from_config(
            DiffusionConfig(
                schedule="linear_beta",
                parameterization="eps",
                mask_ratio=r,
                loss_weighting=WeightingConfig("snr"),
            ),
            model.cfg.num_classes,
        )
        for r in RATIOS
    }

    def step(r: float) -> None:
        loss = objectives[r].loss(model, x0, labels, make_generator(0, device))[0].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    times: dict[float, list[float]] = {r: [] for r in RATIOS}
    peaks: dict[float, float] = {}
    for r in RATIOS:  # warm-up
        step(r)
    for _ in range(args.blocks):
        for r in RATIOS:
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            for _ in range(args.steps):
                step(r)
            if device.type == "cuda":
                torch.cuda.synchronize()
                peaks[r] = torch.cuda.max_memory_allocated() / 2**20
            times[r].append((time.perf_counter() - start) / args.steps)
    flops = {}
    for r in RATIOS:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            objectives[r].loss(model, x0, labels, make_generator(0, device))
        flops[r] = counter.get_total_flops() / args.batch
    base = statistics.median(times[0.0])
    print(f"{args.size} on {device}, batch {args.batch}, masking {model.cfg.masking}")
    for r in RATIOS:
        t = statistics.median(times[r])
        line = (
            f"r={r:.2f}: {t * 1e3:8.1f} ms/step, ratio {t / base:.3f}, "
            f"forward {flops[r] / 1e6:.1f} MFLOP/img (ratio {flops[r] / flops[0.0]:.3f}), "
            f"kept tokens {1 - r:.2f}"
        )
        if r in peaks:
            line += f", peak memory ratio {peaks[r] / peaks[0.0]:.3f}"
        print(line)


if __name__ == "__main__":
    main()
