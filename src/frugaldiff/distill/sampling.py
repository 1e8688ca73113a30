"""Sampling a distilled, w-conditioned student: 1 network pass per step (Meng et al. 2023).

The student takes w as an input, so the solvers' denoiser D(z, t) → x̂ is one call on B rows,
not the CFG teacher's 2B (docs/guided_distillation.md c, h: "student: 1"). It plugs into DDIMSolver
("D") and MengStochasticSolver ("S") on timestep_grid(N, schedule). Stage-2 students are
discrete: sample them on their own grid only (docs/guided_distillation.md (i) 7), except S with
`jump_model: half`, where the N/2-step student drives an N-step S sampler (jump_model_of,
halving_sample_sets).
"""

import dataclasses

import torch
from torch import Tensor

from frugaldiff.config import JUMP_MODELS, SampleSetConfig
from frugaldiff.diffusion.parameterization import broadcast_like, check_parameterization, x0_from
from frugaldiff.diffusion.schedule import NoiseSchedule
from frugaldiff.distill.teacher import TeacherNetwork
from frugaldiff.errors import ConfigError


class StudentDenoiser:
    """D(z, t) → x̂ (B, C, H, W) of a w-conditioned student for fixed labels (B,) and w.

    One call on B rows per step: 1 NFE, as the network's rows count it. x̂ is unclipped;
    wrap it in denoisers.clip_denoiser for evaluation in pixel space.
    """

    def __init__(
        self,
        student: TeacherNetwork,
        schedule: NoiseSchedule,
        parameterization: str,
        labels: Tensor,
        w: float,
    ) -> None:
        if labels.ndim != 1:
            raise ValueError(f"labels: expected shape (B,); found {tuple(labels.shape)}")
        self.student = student
        self.schedule = schedule
        self.parameterization = check_parameterization(parameterization)
        self.labels = labels  # (B,)
        self.w = float(w)

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        if z.shape[0] != self.labels.shape[0]:
            raise ValueError(f"z has {z.shape[0]} rows but labels has {self.labels.shape[0]}")
        w = torch.full_like(t, self.w)  # (B,) same w along the whole trajectory (i.8)
        out = self.student(z, t, self.labels, w)  # (B, C, H, W)
        out = out.to(torch.float64 if z.dtype == torch.float64 else torch.float32)
        alpha, sigma = self.schedule.alpha_sigma(t.to(torch.float64))  # (B,), (B,)
        a = broadcast_like(alpha.to(out.dtype), z)  # (B, 1, 1, 1)
        s = broadcast_like(sigma.to(out.dtype), z)  # (B, 1, 1, 1)
        return x0_from(out, z.to(out.dtype), a, s, self.parameterization)  # (B, C, H, W)


def student_denoiser(
    student: TeacherNetwork,
    schedule: NoiseSchedule,
    parameterization: str,
    labels: Tensor,
    w: float,
) -> StudentDenoiser:
    """The 1-NFE denoiser of `student` (called as student(z, t, labels, w)) for labels and w."""
    return StudentDenoiser(student, schedule, parameterization, labels, w)


def jump_model_steps(sampler_steps: int, jump_model: str) -> int:
    """Steps of the student whose checkpoint drives S at `sampler_steps` steps.

    `same`: the sampler_steps-step student itself. `half`: the sampler_steps/2-step student,
    which must have been distilled with train_grid "fine" (it is then evaluated at odd
    multiples of 1/N, Meng's "slightly different time steps", d). At N = 1, S is D and makes
    no jump, so both give the 1-step student.
    """
    if jump_model not in JUMP_MODELS:
        raise ConfigError(
            f"stochastic.jump_model={jump_model!r}; expected one of {list(JUMP_MODELS)}"
        )
    if not (isinstance(sampler_steps, int) and sampler_steps >= 1):
        raise ConfigError(f"sampling.steps={sampler_steps!r}; expected an int >= 1")
    if jump_model == "same" or sampler_steps == 1:
        return sampler_steps
    if sampler_steps % 2:
        raise ConfigError(
            f"sampling.steps={sampler_steps} with stochastic.jump_model='half': expected an even "
            "number of steps (the jump model has steps/2)"
        )
    return sampler_steps // 2


def jump_model_of(
    solver: str, sampler_steps: int, student_steps: int | None, halving: bool
) -> str | None:
    """Which jump model a sample set of a checkpoint uses (meta.json's `jump_model`), or None.

    Only S makes 2/N jumps, so other solvers get None. A halving's `student_steps`-step student
    drives S at its own step count (`same`) or at twice it (`half`: it makes every 2/N jump of
    the 2·student_steps-step sampler and its last 1/N step, docs/guided_distillation.md d); any
    other step count is off its grid (docs/guided_distillation.md (i) 7): ConfigError. The teacher
    and the stage-1 student are continuous in t, so S jumps with the sampled network itself: `same`.
    """
    is_s = solver == "stochastic"
    if not halving or sampler_steps == student_steps:
        return "same" if is_s else None
    if is_s and student_steps is not None and sampler_steps == 2 * student_steps:
        return "half"
    allowed = f"steps={student_steps}, or S (jump_model 'half') at steps={2 * (student_steps or 0)}"
    raise ConfigError(
        f"a {student_steps}-step student is sampled on its own grid only ({allowed}); "
        f"got solver={solver!r}, steps={sampler_steps}"
    )


def halving_sample_sets(
    chain: list[int], sample_sets: tuple[SampleSetConfig, ...]
) -> list[tuple[int, SampleSetConfig]]:
    """(student steps n, sample set) to draw from each halving's n-step checkpoint, in order.

    The stage-1 run's sample sets give the (solver, w) pairs: D and S `same` run on the
    student's own grid (n steps), S `half` at 2n steps with the n-step student making the
    jumps (jump_model_steps(2n, "half") == n). So no `half` set has the last halving's step
    count: its N/2-step student is never trained. One set per (n, solver, steps, w).
    """
    pairs: dict[tuple[int, str, int, float], tuple[int, SampleSetConfig]] = {}
    for n in chain:
        for s in sample_sets:
            half = s.solver == "stochastic" and s.jump_model == "half"
            steps = 2 * n if half else n
            pairs.setdefault((n, s.solver, steps, s.w), (n, dataclasses.replace(s, steps=steps)))
    return list(pairs.values())
