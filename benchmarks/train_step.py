"""Training throughput of the named model sizes: images/s of one full step, peak memory on GPU.

One step = objective (timesteps, noise, label dropout, forward) + backward + AdamW + EMA update,
exactly what train/loop.py runs. Prints one line per size; nothing is asserted.

    python benchmarks/train_step.py --sizes unet-smoke unet-cifar10 --batch 32 --steps 5
"""

import argparse
import time
from collections.abc import Callable

import torch

from frugaldiff.config import DiffusionConfig, ModelConfig
from frugaldiff.devices import resolve_device
from frugaldiff.diffusion.objective import DiffusionObjective
from frugaldiff.models.registry import build_model, count_parameters
from frugaldiff.rng import make_generator
from frugaldiff.train.ema import make_ema


def make_train_step(
    model: torch.nn.Module,
    objective: DiffusionObjective,
    batch: int,
    device: torch.device,
    bf16: bool = False,
) -> Callable[[], None]:
    """One training step as train/loop.py runs it: objective, backward, AdamW, EMA update."""
    ema = make_ema(model, 0.999)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    side, channels = model.cfg.image_size, model.cfg.in_channels
    x0 = torch.rand(batch, channels, side, side, device=device, generator=make_generator(0, device))
    x0 = x0 * 2 - 1  # (B, C, H, W) in [-1, 1]
    labels = torch.arange(batch, device=device) % model.cfg.num_classes
    generator = make_generator(1, device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = objective.loss(model, x0, labels, generator)[0].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema.update_parameters(model)

    return step


def timed(step: Callable[[], None], steps: int, device: torch.device) -> float:
    """Seconds per step over `steps` steps (synchronised on a GPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def bench(
    size: str,
    batch: int,
    steps: int,
    warmup: int,
    device: torch.device,
    bf16: bool,
    compiled: bool = False,
) -> dict:
    """One size's step time; `compiled` runs the step with torch.compile'd model forward."""
    model = build_model(ModelConfig(name=size)).to(device)
    objective = DiffusionObjective.from_config(DiffusionConfig(), model.cfg.num_classes)
    if compiled:
        model.forward = torch.compile(model.forward)  # same module and weights, fused kernels
    step = make_train_step(model, objective, batch, device, bf16)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        step()
    seconds = timed(step, steps, device)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    return {
        "size": size,
        "params": count_parameters(model),
        "batch": batch,
        "step_seconds": seconds,
        "images_per_second": batch / seconds,
        "peak_mib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", nargs="+", default=["unet-smoke", "unet-cifar10", "dit-smoke", "dit-cifar10"]
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (as precision: bf16)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time each size with torch.compile and print compiled / eager images/s",
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for size in args.sizes:
        r = bench(size, args.batch, args.steps, args.warmup, device, args.bf16)
        print(
            f"{r['size']:>14}: {r['params'] / 1e6:7.2f}M params, batch {r['batch']}, "
            f"{r['step_seconds'] * 1e3:8.1f} ms/step, {r['images_per_second']:8.1f} images/s, "
            f"peak {r['peak_mib']:.0f} MiB"
        )
        if args.compile:
            start = time.perf_counter()
            c = bench(size, args.batch, args.steps, args.warmup, device, args.bf16, compiled=True)
            print(
                f"{'':>14}  torch.compile: {c['images_per_second']:8.1f} images/s, "
                f"{c['images_per_second'] / r['images_per_second']:.2f}x eager "
                f"(compile + warm-up + timed steps {time.perf_counter() - start:.0f} s)"
            )


if __name__ == "__main__":
    main()
