"""`frugaldiff explain`: the objects a run will build and the jobs it starts, in one listing.

Following one hyper-parameter from YAML to the tensor otherwise means reading the method block,
the run table, the config classes and the builders. This module resolves each run exactly as
the DAG does (`resolve_run`), builds the same schedule, timestep sampler, loss weighting,
objective and model (on PyTorch's meta device: no weights are allocated, so DiT-XL/2 costs
nothing), and the solver of every sample set, and prints them with the parameters they hold.
It also owns the list of a run's sample sets, which the Snakefile's rules use, so the jobs it
prints are the jobs the DAG starts.
"""

from pathlib import Path
from typing import Any

import torch

from frugaldiff.config import DistillConfig, RunConfig, TierConfig, resolve_run
from frugaldiff.config.tier import RunSpec
from frugaldiff.diffusion.schedule import build_schedule_by_name
from frugaldiff.diffusion.timesteps import build_timestep_sampler
from frugaldiff.diffusion.weighting import build_loss_weighting
from frugaldiff.distill.direct import TEACHER_NFE_PER_EXAMPLE
from frugaldiff.distill.progressive import halving_chain
from frugaldiff.distill.sampling import halving_sample_sets
from frugaldiff.models.registry import build_model
from frugaldiff.sampling.solvers import build_solver

SCALARS = (bool, int, float, str)


def halvings_of(spec: RunSpec) -> list[int]:
    """Student step counts of the run's halvings (empty unless it is a stage-1 or direct run)."""
    d = spec.distill
    return halving_chain(d.start_steps, d.end_steps) if d.stage != "none" else []


def sample_set_names(spec: RunSpec) -> list[tuple[str, str]]:
    """(checkpoint, sample set) of every set of a run: "iter<k>" or "n<N>", "<solver>-s-w".

    A halving n draws D and S `same` on its own grid (n steps) and S `half` at 2n steps, where
    it makes the jumps (distill/sampling.py: halving_sample_sets). A direct run's own
    checkpoint (iter0) is its teacher's EMA, untrained: the teacher's run already draws it, so
    only its halvings' sets are listed.
    """
    own = () if spec.distill.stage == "direct" else spec.train.ckpt_iters
    pairs = [(f"iter{k}", f"{s.solver}-s{s.steps}-w{s.w:g}") for k in own for s in spec.sample_sets]
    for n, s in halving_sample_sets(halvings_of(spec), spec.sample_sets):
        pairs.append((f"n{n}", f"{s.solver}-s{s.steps}-w{s.w:g}"))
    return list(dict.fromkeys(pairs))


def describe(obj: object) -> str:
    """Class name and the scalar parameters an object holds, e.g. `SpeeDTimestepSampler(k=5.0)`."""
    fields = {
        k: v for k, v in vars(obj).items() if not k.startswith("_") and isinstance(v, SCALARS)
    }
    return f"{type(obj).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


def _weighting_parameters(dc: Any) -> str:
    """SpeeD's weighting holds its parameters as a table over steps: print the config's."""
    w = dc.loss_weighting
    if w.name != "change_aware":
        return ""
    return f" from ceiling (λ) {w.ceiling:g}, tau {w.tau}, tail_weight {w.tail_weight}"


def _parameters(cfg: RunConfig) -> int:
    with torch.device("meta"):
        model = build_model(cfg.model, cfg.diffusion.learn_sigma)
    return sum(p.numel() for p in model.parameters())


def _halvings(d: DistillConfig) -> str:
    """The halving chain of a distillation run, as both kinds of chain describe it."""
    chain = " -> ".join(str(n) for n in halving_chain(d.start_steps, d.end_steps))
    return (
        f"halvings {d.start_steps} -> {chain} ({d.halving_iterations} iterations each, lr "
        f"{d.halving_lr:g} linear to 0, train_grid {d.train_grid!r})"
    )


def _objective(cfg: RunConfig) -> str:
    d = cfg.distill
    if d.stage == "guidance":
        return (
            f"GuidanceDistillationObjective (stage 1 from {cfg.init_from!r}, w ~ U[{d.w_min:g}, "
            f"{d.w_max:g}], {d.start_steps} steps), then ProgressiveDistillationObjective "
            f"{_halvings(d)}"
        )
    if d.stage == "direct":
        return (
            f"DirectDistillationObjective (Meng's direct baseline: PD of {cfg.init_from!r} "
            f"itself, no stage 1; cond + uncond targets, {TEACHER_NFE_PER_EXAMPLE} teacher NFE "
            f"per example), {_halvings(d)}; sampled with CFG"
        )
    dc = cfg.diffusion
    parts = [f"parameterization {dc.parameterization!r}", f"p_uncond {dc.p_uncond:g}"]
    if dc.mask_ratio > 0:
        parts.append(f"mask_ratio {dc.mask_ratio:g} (loss on kept patches)")
    if dc.learn_sigma:
        parts.append("learned Σ (+ L_vb)")
    if dc.sigma_data != 1.0 or dc.time_input != "t":
        parts.append(f"sigma_data {dc.sigma_data:g}, time_input {dc.time_input!r}")
    return f"DiffusionObjective ({', '.join(parts)})"


def explain_run(tier: TierConfig, run: str, blocks: Path) -> list[str]:
    """The lines `frugaldiff explain` prints for one run."""
    cfg = resolve_run(tier, run, blocks)
    spec = tier.runs[run]
    dc, tc = cfg.diffusion, cfg.train
    schedule = build_schedule_by_name(dc.schedule)
    sampler = build_timestep_sampler(dc.timesteps, schedule, dc.sigma_data)
    weighting = build_loss_weighting(dc.loss_weighting, schedule)
    start = ""
    if cfg.init_from:
        start = f", starts from {cfg.init_from!r} (train.init_weights {tc.init_weights!r})"
    lines = [
        f"run {run}: study {cfg.study}, method {cfg.method}, variant {cfg.variant}{start}",
        f"  schedule      {describe(schedule)}",
        f"  timesteps     {describe(sampler)}"
        + (f", one draw per {dc.timesteps.draw_batch} rows" if dc.timesteps.draw_batch else ""),
        f"  weighting     {describe(weighting)}{_weighting_parameters(dc)}",
        f"  objective     {_objective(cfg)}",
        f"  model         {cfg.model.name}: {_parameters(cfg):,} parameters",
        f"  train         {tc.iterations} iterations x batch {tc.batch_size}, lr {tc.lr:g} "
        f"(warm-up {tc.warmup_iters}, then {tc.lr_decay}), EMA {tc.ema_decay:g}, "
        f"{tc.precision}, checkpoints {list(tc.ckpt_iters)}",
    ]
    for s in cfg.sample_sets:
        solver = build_solver(
            s.solver,
            schedule,
            variance=s.variance,
            spacing=s.spacing,
            sigma_data=dc.sigma_data,
        )
        extra = f", jump_model {s.jump_model}" if s.solver == "stochastic" else ""
        lines.append(
            f"  sample set    {s.solver}-s{s.steps}-w{s.w:g}: {describe(solver)}, "
            f"{s.steps} steps, w {s.w:g}, clip_x0 {s.clip_x0}{extra}"
        )
    sets = sample_set_names(spec)
    halvings = len(halvings_of(spec))
    jobs: list[str] = ["resolve_config 1", "train_model 1"]
    if halvings:
        jobs.append(f"halve_steps {halvings}")
    jobs += [f"generate_samples {len(sets)}", f"compute_metrics {len(sets)}"]
    lines.append(f"  jobs          {', '.join(jobs)} (+ the tier's data, reference and report)")
    return lines


def explain(tier: TierConfig, blocks: Path, runs: list[str] | None = None) -> str:
    """Every chosen run's listing (default: all runs of the tier), in table order."""
    chosen: list[Any] = runs or list(tier.runs)
    out = [f"tier {tier.tier}: {len(tier.runs)} runs, results in {tier.results_dir}/{tier.tier}"]
    for run in chosen:
        out += ["", *explain_run(tier, run, blocks)]
    return "\n".join(out)
