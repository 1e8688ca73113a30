"""Guided teacher vs distilled student sampling: wall-clock ratio beside the NFE ratio.

Meng et al.'s speed-ups (arXiv 2210.03142; docs/guided_distillation.md h, "The 256x figure") are
NFE-based: the CFG teacher costs 2 NFE per step (one batched call on 2B rows), the w-conditioned
student 1. For the same batch of noise, labels and w this times the teacher's guided DDIM at its
step count N0 (the chain's distill.start_steps) and the student's DDIM at N0 and at each
halving's step count, and prints measured NFE and both ratios. Networks are the tier config's
sizes with random weights: timing does not depend on the weights, and every halving student has
the stage-1 student's architecture, so one network stands in for all of them. Nothing is
asserted.

    python benchmarks/distill_speed.py --config configs/smoke.yaml --batch 16
"""

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch

from frugaldiff.config import load_yaml, parse_tier_config, resolve_run
from frugaldiff.devices import resolve_device
from frugaldiff.diffusion.schedule import NoiseSchedule, build_schedule_by_name
from frugaldiff.distill.guided import init_student_from_teacher
from frugaldiff.distill.progressive import halving_chain
from frugaldiff.distill.sampling import student_denoiser
from frugaldiff.models.registry import build_model, count_parameters
from frugaldiff.rng import derive_seed, make_generator, seeded_global_rng
from frugaldiff.sampling.denoisers import clip_denoiser
from frugaldiff.sampling.grids import timestep_grid
from frugaldiff.sampling.guidance import guided_denoiser
from frugaldiff.sampling.networks import CountingNetwork, RowCounter, X0Predictor
from frugaldiff.sampling.noise import randn_per_image
from frugaldiff.sampling.solvers import build_solver

CONFIG_BLOCKS = Path(__file__).resolve().parents[1] / "configs"


def timed_sampling(
    make_denoiser: Callable[[], Callable],
    counter: RowCounter,
    x_T: torch.Tensor,
    steps: int,
    solver_name: str,
    schedule: NoiseSchedule,
    repeats: int,
) -> tuple[float, float]:
    """(seconds per batch, measured NFE per image) of `steps`-step sampling, after one warm-up."""
    solver = build_solver(solver_name, schedule)
    grid = timestep_grid(steps, schedule).to(x_T.device)
    gens = [make_generator(derive_seed(0, "image", i), x_T.device) for i in range(x_T.shape[0])]
    with torch.inference_mode():
        solver.solve(clip_denoiser(make_denoiser()), x_T, grid, gens)  # warm-up, untimed
        if x_T.device.type == "cuda":
            torch.cuda.synchronize()
        rows_before = counter.rows
        start = time.perf_counter()
        for _ in range(repeats):
            solver.solve(clip_denoiser(make_denoiser()), x_T, grid, gens)
        if x_T.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / repeats
    return seconds, (counter.rows - rows_before) / (repeats * x_T.shape[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/smoke.yaml"))
    parser.add_argument("--teacher-run", default="distill-teacher")
    parser.add_argument("--student-run", default="distill-student")
    parser.add_argument("--teacher-steps", type=int, help="default: distill.start_steps (N0)")
    parser.add_argument("--end-steps", type=int, help="default: distill.end_steps")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--w", type=float, default=1.0, help="w != 0: the teacher pays 2 NFE")
    parser.add_argument("--solver", default="ddim", choices=["ddim", "stochastic"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    tier = parse_tier_config(load_yaml(args.config), str(args.config))
    teacher_spec, student_spec = tier.runs[args.teacher_run], tier.runs[args.student_run]
    run = resolve_run(tier, args.student_run, CONFIG_BLOCKS)
    d, param = run.distill, run.diffusion.parameterization
    teacher_steps = args.teacher_steps or d.start_steps
    chain = halving_chain(teacher_steps, args.end_steps or d.end_steps)
    device = resolve_device(args.device)
    with seeded_global_rng(0):  # random weights: timing does not need trained ones
        teacher = build_model(teacher_spec.model).eval()
    student = init_student_from_teacher(
        teacher.state_dict(), student_spec.model, d.w_max, seed=0
    ).eval()
    teacher, student = teacher.to(device), student.to(device)
    arch = teacher.cfg
    schedule = build_schedule_by_name(run.diffusion.schedule)
    labels = torch.arange(args.batch, device=device) % arch.num_classes
    gens = [make_generator(derive_seed(1, "image", i), device) for i in range(args.batch)]
    shape = (arch.in_channels, arch.image_size, arch.image_size)
    x_T = randn_per_image(gens, shape, device=device, dtype=torch.float32)  # (B, C, H, W)

    teacher_rows = RowCounter()
    predict_x0 = X0Predictor(teacher, schedule, param, teacher_rows)
    student_rows = RowCounter()
    network = CountingNetwork(student, student_rows)

    def teacher_denoiser() -> Callable:
        return guided_denoiser(predict_x0, labels, arch.num_classes, args.w)

    def student_den() -> Callable:
        return student_denoiser(network, schedule, param, labels, args.w)

    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
        f"{args.config}: teacher {teacher_spec.model.name} ({count_parameters(teacher) / 1e6:.2f}M "
        f"params), student +w embedding ({count_parameters(student) / 1e6:.2f}M)"
    )
    print(
        f"RANDOM WEIGHTS (timing only; no trained checkpoint is read); batch {args.batch}, "
        f"w={args.w:g}, solver {args.solver} (teacher: guided DDIM), {args.repeats} timed repeats"
    )
    t_sec, t_nfe = timed_sampling(
        teacher_denoiser, teacher_rows, x_T, teacher_steps, "ddim", schedule, args.repeats
    )
    print(
        f"{'model':>22} {'steps':>5} {'NFE/img':>8} {'s/batch':>9} {'wall ratio':>10} "
        f"{'NFE ratio':>9}"
    )
    print(
        f"{'teacher (CFG)':>22} {teacher_steps:>5} {t_nfe:>8g} {t_sec:>9.3f} {1:>10.2f} {1:>9.2f}"
    )
    for steps in [teacher_steps, *chain]:
        s_sec, s_nfe = timed_sampling(
            student_den, student_rows, x_T, steps, args.solver, schedule, args.repeats
        )
        name = "stage-1 student" if steps == teacher_steps else f"{steps}-step student"
        print(
            f"{name:>22} {steps:>5} {s_nfe:>8g} {s_sec:>9.3f} {t_sec / s_sec:>10.2f} "
            f"{t_nfe / s_nfe:>9.2f}"
        )


if __name__ == "__main__":
    main()
