"""Stage 2 of guided distillation: one progressive-distillation halving, N·2 → N steps.

Salimans & Ho (arXiv 2202.00512, Alg. 2; docs/guided_distillation.md f): at t = i/N the teacher
makes two DDIM steps t → t′ = t − 0.5/N → t″ = t − 1/N, and the student regresses the x̃ whose
single DDIM step from t lands on the teacher's z_{t″}:
    x̃ = (z_{t″} − (σ_{t″}/σ_t) z_t) / (α_{t″} − (σ_{t″}/σ_t) α_t),
or the teacher's x̂ at t′ when t″ = 0 (i = 1). HalvingTargets holds that math once; the
w-conditioned chain (Meng et al., arXiv 2210.03142; first teacher the stage-1 student's EMA,
later ones the previous student's raw weights) trains on it here, and the direct baseline
(distill/direct.py) builds it twice per example, once per label, with no w.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from frugaldiff.diffusion.objective import Model
from frugaldiff.diffusion.parameterization import (
    broadcast_like,
    check_parameterization,
    output_from_x0,
)
from frugaldiff.diffusion.schedule import NoiseSchedule
from frugaldiff.diffusion.weighting import LossWeighting
from frugaldiff.distill.guided import check_w_range, per_sample_loss, sample_guidance_weights
from frugaldiff.distill.teacher import FrozenTeacher, TeacherNetwork, working_dtype
from frugaldiff.errors import ConfigError
from frugaldiff.sampling.grids import timestep_grid
from frugaldiff.sampling.solvers import ddim_update
from frugaldiff.sharding import BatchShard

# Where a student's halving draws its training times (docs/guided_distillation.md d):
# "student": its own grid i/N (PD); "fine": the teacher's grid j/(2N), which the N-step student
# needs when it serves as Meng's S sampler's jump model at 2N steps (`jump_model: half`).
TRAIN_GRIDS = ("student", "fine")


def _is_power_of_two(n: int) -> bool:
    return isinstance(n, int) and n >= 1 and n & (n - 1) == 0


def halving_chain(start_steps: int, end_steps: int) -> list[int]:
    """Student step counts of successive halvings: halving_chain(8, 1) == [4, 2, 1].

    start_steps is the first teacher's sampler steps N₀; one halving per entry, each student
    the next one's teacher (docs/guided_distillation.md f, "Schedule"). Both must be powers of two
    with end_steps < start_steps.
    """
    for key, value in (("start_steps", start_steps), ("end_steps", end_steps)):
        if not _is_power_of_two(value):
            raise ConfigError(f"distill.{key}={value!r}; expected a power of two (1, 2, 4, ...)")
    if not end_steps < start_steps:
        raise ConfigError(
            f"distill.end_steps={end_steps} >= distill.start_steps={start_steps}; "
            "expected fewer student steps than teacher steps"
        )
    chain, steps = [], start_steps
    while steps > end_steps:
        steps //= 2
        chain.append(steps)
    return chain


@dataclass
class NoisedBatch:
    """One draw of a halving's training rows: grid indices, times, z_t and its coefficients."""

    index: Tensor  # (b,) int64 fine-grid indices j
    t: Tensor  # (b,) float64 t_j
    logsnr: Tensor  # (b,) float64 λ(t_j)
    z: Tensor  # (b, C, H, W) z_t = α_t x + σ_t ε, in x0's dtype
    alpha: Tensor  # (b, 1, 1, 1) α_t, in x0's dtype
    sigma: Tensor  # (b, 1, 1, 1) σ_t, in x0's dtype


class HalvingTargets:
    """PD's halving targets from a frozen 2·student_steps teacher (Alg. 2), with no loss.

    `teacher` is the previous model (frozen here), called as teacher(z, t, labels, w) when a w
    is given and teacher(z, t, labels) when it is None (a plain CFG model), with the student's
    `parameterization`. The objectives below and in direct.py add the loss; this class owns the
    grid, its draws and x̃, so both chains regress exactly the same target.
    """

    def __init__(
        self,
        teacher: TeacherNetwork,
        schedule: NoiseSchedule,
        student_steps: int,
        parameterization: str,
        *,
        train_grid: str,
    ) -> None:
        if not (isinstance(student_steps, int) and student_steps >= 1):
            raise ConfigError(f"distill.student_steps={student_steps!r}; expected an int >= 1")
        if train_grid not in TRAIN_GRIDS:
            raise ConfigError(
                f"stochastic.train_grid={train_grid!r}; expected one of {list(TRAIN_GRIDS)}"
            )
        self.schedule = schedule
        self.student_steps = student_steps
        self.parameterization = check_parameterization(parameterization)
        self.train_grid = train_grid
        self.teacher = FrozenTeacher(teacher, schedule, parameterization)
        # The teacher's grid, ascending: fine_t[j] = j/(2N) (respaced as the sampler does for a
        # discrete schedule), so student, teacher and samplers all meet on the same t values.
        self.fine_t = timestep_grid(2 * student_steps, schedule).flip(0)  # (2N + 1,) float64

    def train_indices(self) -> Tensor:
        """Fine-grid indices j (K,) int64 the student is trained at: 2, 4, …, 2N or 1, …, 2N."""
        step = 2 if self.train_grid == "student" else 1
        return torch.arange(step, 2 * self.student_steps + 1, step)  # (K,)

    def train_times(self) -> Tensor:
        """The times t (K,) float64, ascending, that the student is trained at."""
        return self.fine_t[self.train_indices()]  # (K,)

    def sample_indices(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """One fine-grid index per example (B,) int64 on the generator's device, uniform over
        `train_indices` (PD: i ~ UniformInt{1..N}, j = 2i)."""
        choices = self.train_indices().to(generator.device)  # (K,)
        pick = torch.randint(
            0, choices.numel(), (batch_size,), generator=generator, device=generator.device
        )  # (B,)
        return choices[pick]  # (B,)

    def times(self, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(t, t′, t″) (B,) float64 for fine indices j (B,): t_j, t_{j−1}, t_{j−2}, floored at 0.

        Ends at t′ then t″ (docs/guided_distillation.md (i) 1: never the other way round).
        """
        fine_t = self.fine_t.to(index.device)  # (2N + 1,)
        return fine_t[index], fine_t[(index - 1).clamp(min=0)], fine_t[(index - 2).clamp(min=0)]

    def _ddim(self, z: Tensor, x0: Tensor, t_from: Tensor, t_to: Tensor) -> Tensor:
        """One unclipped DDIM step per row (B, C, H, W); float64 coefficients, cast to z's dtype."""
        alpha_from, _ = self.schedule.alpha_sigma(t_from)  # (B,) float64
        alpha_to, _ = self.schedule.alpha_sigma(t_to)  # (B,)
        ratio = self.schedule.sigma_ratio(t_from, t_to)  # (B,) σ_to/σ_from, softplus form

        def bc(v: Tensor) -> Tensor:
            return broadcast_like(v.to(z.dtype), z)  # (B, 1, 1, 1)

        return ddim_update(z, x0, bc(alpha_from), bc(alpha_to), bc(ratio))  # (B, C, H, W)

    def _x0_off_data(self, z: Tensor, t: Tensor, labels: Tensor, w: Tensor | None) -> Tensor:
        """Teacher x̂ (B, C, H, W) at rows with t > 0; rows at t = 0 (already data) get z back.

        The teacher is never called at t = 0, which is off every sampler grid (i.7).
        """
        keep = t > 0  # (B,)
        if bool(keep.all()):
            return self.teacher.x0(z, t, labels, w)  # (B, C, H, W)
        x0 = z.clone()  # (B, C, H, W)
        if bool(keep.any()):
            x0[keep] = self.teacher.x0(
                z[keep], t[keep], labels[keep], None if w is None else w[keep]
            )
        return x0

    def target(self, z: Tensor, index: Tensor, labels: Tensor, w: Tensor | None = None) -> Tensor:
        """x̃ (B, C, H, W) for z_t (B, C, H, W) at fine indices j (B,), labels (B,), w (B,).

        w None: the teacher takes no w (a plain CFG model at `labels`, null label included).
        Two batched teacher calls, unclipped, in z's working dtype: 2 NFE per example (rows at
        the fine grid's j = 1 need only the first). A step that reaches t = 0 returns x̂, as the
        samplers do: at t″ = 0 (PD's i = 1) x̃ is the teacher's x̂ at t′; at t′ = 0 (the fine
        grid's j = 1) it is the teacher's x̂ at t.
        """
        dtype = working_dtype(z)
        z = z.to(dtype)  # (B, C, H, W)
        t, t_mid, t_end = self.times(index)  # (B,) float64 each
        mid_is_data = broadcast_like(t_mid == 0, z)  # (B, 1, 1, 1)
        end_is_data = broadcast_like(t_end == 0, z)  # (B, 1, 1, 1)

        x0_t = self.teacher.x0(z, t, labels, w)  # (B, C, H, W)
        z_mid = torch.where(mid_is_data, x0_t, self._ddim(z, x0_t, t, t_mid))  # (B, C, H, W)
        x0_mid = self._x0_off_data(z_mid, t_mid, labels, w)  # (B, C, H, W)
        z_end = self._ddim(z_mid, x0_mid, t_mid, t_end)  # (B, C, H, W)
        z_end = torch.where(end_is_data, x0_mid, z_end)
        z_end = torch.where(mid_is_data, z_mid, z_end)  # (B, C, H, W)

        alpha_t, _ = self.schedule.alpha_sigma(t)  # (B,) float64
        alpha_end, _ = self.schedule.alpha_sigma(t_end)  # (B,)
        ratio = self.schedule.sigma_ratio(t, t_end)  # (B,) σ_{t″}/σ_t
        denominator = alpha_end - ratio * alpha_t  # (B,) > 0; ~1.5e-3 at t = 1, N = 1024 (i.5)
        r = broadcast_like(ratio.to(dtype), z)  # (B, 1, 1, 1)
        d = broadcast_like(denominator.to(dtype), z)  # (B, 1, 1, 1)
        x_tilde = (z_end - r * z) / d  # (B, C, H, W)
        return torch.where(end_is_data, z_end, x_tilde)  # (B, C, H, W)

    def output_target(self, x_tilde: Tensor, z: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """x̃ (B, C, H, W) as the student's output type: x̃, ε̃ = (z − α x̃)/σ or ṽ = α ε̃ − σ x̃.

        σ_t >= σ_{1/(2N)} on the training grid, so the division is safe (f).
        """
        return output_from_x0(self.parameterization, x_tilde, z.to(x_tilde.dtype), alpha, sigma)

    def draw(
        self, x0: Tensor, generator: torch.Generator, shard: BatchShard
    ) -> tuple[NoisedBatch, Tensor]:
        """Grid indices, then ε, for the global batch, sliced to `shard`'s rows of x0 (b, ...).

        Returns the noised rows and the student's time input t (b,) in x0's working dtype, as
        the solvers pass it. Draw order (indices, ε) is fixed: a resumed run redraws the same.
        """
        batch = shard.global_size
        index = shard.take(self.sample_indices(batch, generator)).to(x0.device)  # (b,)
        eps = shard.noise_like(x0, generator)  # (b, C, H, W)
        t = self.fine_t.to(x0.device)[index]  # (b,) float64
        alpha, sigma = self.schedule.alpha_sigma(t)  # (b,), (b,)
        a = broadcast_like(alpha.to(x0.dtype), x0)  # (b, 1, 1, 1)
        s = broadcast_like(sigma.to(x0.dtype), x0)  # (b, 1, 1, 1)
        noised = NoisedBatch(index, t, self.schedule.logsnr(t), a * x0 + s * eps, a, s)
        return noised, t.to(working_dtype(x0))


class ProgressiveDistillationObjective(HalvingTargets):
    """Stage-2 loss of one halving of the w-conditioned chain (Meng et al., (f)).

    The teacher is called as teacher(z, t, labels, w); teacher and student see the same labels
    and the same w ~ U[w_range] per example. The loss contract is DiffusionObjective's; the
    student is called as `student(z, t, labels, w, generator=generator)` at grid times only.
    2 teacher NFE per example (HalvingTargets.target).
    """

    def __init__(
        self,
        teacher: TeacherNetwork,
        schedule: NoiseSchedule,
        student_steps: int,
        parameterization: str,
        weighting: LossWeighting,
        w_range: tuple[float, float],
        *,
        train_grid: str,
    ) -> None:
        super().__init__(teacher, schedule, student_steps, parameterization, train_grid=train_grid)
        self.weighting = weighting
        self.w_range = check_w_range(w_range)

    def loss(
        self,
        model: Model,
        x0: Tensor,
        labels: Tensor,
        generator: torch.Generator,
        shard: BatchShard | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-sample losses (b,) and diagnostics (t, logsnr, weight, w) for x0 in [-1, 1].

        x0 (b, C, H, W) and labels (b,) are the rows `shard` of the global batch (None: the
        whole batch); indices, ε and w are drawn for the global batch and sliced (sharding.py).
        """
        shard = shard or BatchShard.whole(x0.shape[0])
        rows, t_in = self.draw(x0, generator, shard)
        w = shard.take(
            sample_guidance_weights(shard.global_size, self.w_range, generator, x0.device)
        )  # (b,)
        x_tilde = self.target(rows.z, rows.index, labels, w)  # (b, C, H, W), no grad
        target = self.output_target(x_tilde, rows.z, rows.alpha, rows.sigma)  # (b, C, H, W)
        out = model(rows.z, t_in, labels, w, generator=shard.network_generator(generator))
        per_sample, weight = per_sample_loss(
            out, target, rows.logsnr.to(target.dtype), self.parameterization, self.weighting
        )
        return per_sample, {"t": t_in, "logsnr": rows.logsnr, "weight": weight, "w": w}
