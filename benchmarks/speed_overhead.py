"""SpeeD's training-step overhead: step time with the `speed` method block over `baseline`.

Same step as benchmarks/train_step.py (objective + backward + AdamW + EMA update), same model
init and batch; only the timestep sampler and weighting differ (docs/speed.md a: "the overhead is a
lookup table"; target ratio <= 1.02). Timed blocks alternate between the two, in alternating
order, and the median block is reported; on a shared CPU the step ratio is mostly noise, so
the sampler + weighting calls are also timed alone. Nothing is asserted.

    python benchmarks/speed_overhead.py --size unet-smoke --batch 16 --steps 5 --repeats 7
"""

import argparse
import copy
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
from train_step import make_train_step, timed

from frugaldiff.config import DiffusionConfig, ModelConfig, from_dict, load_yaml
from frugaldiff.devices import resolve_device
from frugaldiff.diffusion.objective import DiffusionObjective
from frugaldiff.models.registry import build_model
from frugaldiff.rng import make_generator, seeded_global_rng

METHODS_DIR = Path(__file__).resolve().parents[1] / "configs" / "method"


def method_config(name: str) -> DiffusionConfig:
    path = METHODS_DIR / f"{name}.yaml"
    return from_dict(DiffusionConfig, load_yaml(path)["diffusion"], str(path), "diffusion")


def make_step(
    model: torch.nn.Module, method: str, batch: int, device: torch.device
) -> Callable[[], None]:
    """One training step of `model` (a private copy) under the method block `method`."""
    model = copy.deepcopy(model)
    objective = DiffusionObjective.from_config(method_config(method), model.cfg.num_classes)
    return make_train_step(model, objective, batch, device)


def lookup_seconds(method: str, batch: int, reps: int, device: torch.device) -> float:
    """Seconds per call of the objective's sampler + weighting alone (docs/speed.md j)."""
    objective = DiffusionObjective.from_config(method_config(method), null_label=0)
    generator = make_generator(2)  # a CPU generator, as in training

    def lookup() -> None:
        t = objective.timestep_sampler.sample(batch, generator, device)
        objective.weighting(objective.schedule.logsnr(t))

    return timed(lookup, reps, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="unet-smoke")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=7, help="timed blocks per method")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--lookup-reps", type=int, default=2000, help="sampler + weight calls")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    methods = ("baseline", "speed")
    # Both blocks learn Σ (docs/speed.md (b)): one network with 2C outputs serves both.
    (learn_sigma,) = {method_config(m).learn_sigma for m in methods}
    with seeded_global_rng(0):
        model = build_model(ModelConfig(name=args.size), learn_sigma).to(device)
    steps = {m: make_step(model, m, args.batch, device) for m in methods}
    for m in methods:
        for _ in range(args.warmup):
            steps[m]()
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    for repeat in range(args.repeats):
        for m in methods if repeat % 2 == 0 else methods[::-1]:
            seconds[m].append(timed(steps[m], args.steps, device))
    median = {m: statistics.median(seconds[m]) for m in methods}
    for m in methods:
        print(
            f"{m:>9}: {median[m] * 1e3:8.2f} ms/step (median of {args.repeats} blocks of "
            f"{args.steps}; {args.size}, batch {args.batch})"
        )
    ratio = median["speed"] / median["baseline"]
    print(f"speed / baseline step time: {ratio:.4f} (target <= 1.02)")
    lookup = {m: lookup_seconds(m, args.batch, args.lookup_reps, device) for m in methods}
    print(
        f"sampler + weighting alone: baseline {lookup['baseline'] * 1e6:.1f} us, "
        f"speed {lookup['speed'] * 1e6:.1f} us per call "
        f"({(lookup['speed'] - lookup['baseline']) / median['baseline']:.3%} of a baseline step)"
    )


if __name__ == "__main__":
    main()
