"""Guided distillation against closed forms (docs/guided_distillation.md j).

Stage 2: the halving target x̃ is the x̂ whose one DDIM step from t lands on the teacher's two
steps (f); with Gaussian data x ~ N(μ, s²), every DDIM model stays affine in z, so halvings run
exactly and the 1-step student reproduces the 2^k-step teacher. Stage 1: a fresh student is its
conditional teacher; the guided target follows Meng's (1 + w)·c − w·∅ on every channel.
"""

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from frugaldiff.config import ModelConfig, SampleSetConfig
from frugaldiff.diffusion.parameterization import broadcast_like, output_from_x0, x0_from
from frugaldiff.diffusion.schedule import CosineLogSNRSchedule
from frugaldiff.diffusion.weighting import TruncatedSNRWeighting
from frugaldiff.distill.guided import (
    GuidanceDistillationObjective,
    init_student_from_teacher,
    load_guided_model,
)
from frugaldiff.distill.progressive import ProgressiveDistillationObjective, halving_chain
from frugaldiff.distill.sampling import (
    halving_sample_sets,
    jump_model_of,
    jump_model_steps,
    student_denoiser,
)
from frugaldiff.errors import CheckpointError, ConfigError
from frugaldiff.models.registry import build_model
from frugaldiff.models.unet import UNet
from frugaldiff.rng import derive_seed, make_generator
from frugaldiff.sampling.grids import timestep_grid
from frugaldiff.sampling.solvers import DDIMSolver, MengStochasticSolver, ddim_update
from tests.unit.counting import CallCounter

F64 = torch.float64
COSINE = CosineLogSNRSchedule()
MU, STD = 0.3, 0.5
NULL = 10
TINY = ModelConfig(name="unet-tiny")
W_RANGE = (0.0, 4.0)

# x̂ as a function of (z, t, labels, w); FakeNetwork turns it into raw network output.
X0Fn = Callable[[Tensor, Tensor, Tensor, Tensor | None], Tensor]


def coefficients(t: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    alpha, sigma = COSINE.alpha_sigma(t.to(F64))  # (B,), (B,)
    return broadcast_like(alpha.to(z.dtype), z), broadcast_like(sigma.to(z.dtype), z)


def gaussian_x0(z: Tensor, t: Tensor, labels: Tensor, w: Tensor | None = None) -> Tensor:
    """E[x | z_t] for x ~ N(μ, s²) per pixel."""
    a, s = coefficients(t, z)
    return MU + a * STD**2 * (z - a * MU) / (a**2 * STD**2 + s**2)  # (B, C, H, W)


def nonlinear_x0(z: Tensor, t: Tensor, labels: Tensor, w: Tensor | None = None) -> Tensor:
    """A channel-, label- and w-dependent nonlinear x̂."""
    channel = torch.arange(z.shape[1], dtype=z.dtype).reshape(1, -1, 1, 1)
    shift = broadcast_like(labels.to(z.dtype), z) / 7 + channel / 5
    w_term = 0.0 if w is None else 0.05 * broadcast_like(w.to(z.dtype), z) * torch.cos(z)
    return torch.tanh(1.5 * z) * broadcast_like(1 - 0.5 * t.to(z.dtype), z) + shift + w_term


class FakeNetwork:
    """x0_fn as a network of output type `param`, logging (rows, t) of every call."""

    def __init__(self, x0_fn: X0Fn, param: str = "v") -> None:
        self.x0_fn = x0_fn
        self.param = param
        self.calls: list[tuple[int, Tensor]] = []

    def __call__(self, z: Tensor, t: Tensor, labels: Tensor, w: Tensor | None = None) -> Tensor:
        self.calls.append((z.shape[0], t.clone()))
        a, s = coefficients(t, z)
        return output_from_x0(self.param, self.x0_fn(z, t, labels, w), z, a, s)


class AffineGridModel:
    """x̂ = slope_k·z + intercept_k at grid time t_k (param "x"): a Gaussian-data DDIM model."""

    def __init__(self, times: Tensor, slope: Tensor, intercept: Tensor) -> None:
        self.times, self.slope, self.intercept = times, slope, intercept  # (K,) each

    def __call__(self, z: Tensor, t: Tensor, labels: Tensor, w: Tensor | None = None) -> Tensor:
        k = (t[:, None].to(F64) - self.times[None, :]).abs().argmin(1)  # (B,)
        assert torch.allclose(self.times[k], t.to(F64), rtol=0, atol=1e-12), "off-grid call"
        return broadcast_like(self.slope[k], z) * z + broadcast_like(self.intercept[k], z)


def halving(
    teacher: object, student_steps: int, train_grid: str = "student", param: str = "v"
) -> ProgressiveDistillationObjective:
    return ProgressiveDistillationObjective(
        teacher,  # type: ignore[arg-type]
        COSINE,
        student_steps,
        param,
        TruncatedSNRWeighting(),
        W_RANGE,
        train_grid=train_grid,
    )


def teacher_steps(x0_fn: X0Fn, z: Tensor, grid: list[float], labels: Tensor, w: Tensor) -> Tensor:
    """Explicit teacher DDIM along `grid` with the solver module, row by row."""
    rows = []
    for row in range(z.shape[0]):
        lab, ww = labels[row : row + 1], w[row : row + 1]

        def denoise(zz: Tensor, tt: Tensor, lab: Tensor = lab, ww: Tensor = ww) -> Tensor:
            return x0_fn(zz, tt, lab, ww)

        rows.append(
            DDIMSolver(COSINE).solve(denoise, z[row : row + 1], torch.tensor(grid, dtype=F64))
        )
    return torch.cat(rows)  # (B, C, H, W)


def random_unet(generator: torch.Generator) -> UNet:
    """unet-tiny with every parameter random (a fresh one outputs exactly 0)."""
    model = build_model(TINY)
    assert isinstance(model, UNet)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(0.3 * torch.randn(param.shape, generator=generator))
    return model.eval()


def unet_inputs(generator: torch.Generator, batch: int = 4) -> tuple[Tensor, Tensor, Tensor]:
    z = torch.randn(batch, 3, 8, 8, generator=generator)
    t = torch.rand(batch, generator=generator)
    labels = torch.randint(0, NULL, (batch,), generator=generator)
    return z, t, labels


# ---- stage 2: the halving target ---------------------------------------------------------


@pytest.mark.parametrize("x0_fn", [nonlinear_x0, gaussian_x0], ids=["nonlinear", "gaussian"])
def test_target_step_lands_on_two_teacher_ddim_steps(x0_fn: X0Fn) -> None:
    n = 4
    objective = halving(FakeNetwork(x0_fn), n)
    gen = make_generator(0)
    index = torch.tensor([4, 6, 8, 8, 6])  # i = 2, 3, 4: t = 1/2, 3/4, 1
    z = torch.randn(5, 3, 2, 2, generator=gen, dtype=F64)
    labels = torch.tensor([0, 3, 9, 5, 1])
    w = torch.tensor([0.0, 0.3, 4.0, 1.0, 2.0], dtype=F64)
    x_tilde = objective.target(z, index, labels, w)  # (5, 3, 2, 2)
    for row in range(5):
        t = float(index[row]) / (2 * n)
        grid = [t, t - 0.5 / n, t - 1.0 / n]  # t → t′ → t″, in this order (i.1)
        z_teacher = teacher_steps(
            x0_fn, z[row : row + 1], grid, labels[row : row + 1], w[row : row + 1]
        )
        alpha, _ = COSINE.alpha_sigma(torch.tensor(grid, dtype=F64))
        ratio = COSINE.sigma_ratio(
            torch.tensor(grid[0], dtype=F64), torch.tensor(grid[2], dtype=F64)
        )
        z_student = ddim_update(z[row], x_tilde[row], alpha[0], alpha[2], ratio)
        assert (z_student - z_teacher[0]).abs().max() < 1e-10


def test_i1_target_is_the_teacher_x0_at_the_midpoint() -> None:
    n = 4
    objective = halving(FakeNetwork(nonlinear_x0), n)
    z = torch.randn(3, 3, 2, 2, generator=make_generator(1), dtype=F64)
    labels, w = torch.tensor([2, 7, 4]), torch.tensor([0.0, 1.0, 4.0], dtype=F64)
    x_tilde = objective.target(z, torch.full((3,), 2), labels, w)  # t = 1/N, t″ = 0
    t, t_mid = 1.0 / n, 0.5 / n
    z_mid = teacher_steps(nonlinear_x0, z, [t, t_mid], labels, w)  # (3, 3, 2, 2)
    expected = nonlinear_x0(z_mid, torch.full((3,), t_mid, dtype=F64), labels, w)
    assert (x_tilde - expected).abs().max() < 1e-12


def test_fine_grid_first_point_target_is_the_teacher_x0() -> None:
    n = 2
    objective = halving(FakeNetwork(nonlinear_x0), n, train_grid="fine")
    z = torch.randn(2, 3, 2, 2, generator=make_generator(2), dtype=F64)
    labels, w = torch.tensor([1, 8]), torch.tensor([0.5, 3.0], dtype=F64)
    x_tilde = objective.target(z, torch.ones(2, dtype=torch.int64), labels, w)  # t = 1/(2N)
    expected = nonlinear_x0(z, torch.full((2,), 0.5 / n, dtype=F64), labels, w)
    assert (x_tilde - expected).abs().max() < 1e-12


@pytest.mark.parametrize("train_grid", ["student", "fine"])
def test_constant_teacher_gives_that_constant(train_grid: str) -> None:
    constant = torch.tensor([0.3, -0.7, 0.1], dtype=F64).reshape(1, 3, 1, 1)

    def const_x0(z: Tensor, t: Tensor, labels: Tensor, w: Tensor | None = None) -> Tensor:
        return constant.expand_as(z)

    objective = halving(FakeNetwork(const_x0), 4, train_grid)
    index = objective.train_indices()  # every grid point, the t″ = 0 and t′ = 0 ones included
    z = torch.randn(len(index), 3, 2, 2, generator=make_generator(3), dtype=F64)
    labels, w = torch.zeros(len(index), dtype=torch.int64), torch.ones(len(index), dtype=F64)
    x_tilde = objective.target(z, index, labels, w)
    assert (x_tilde - constant).abs().max() < 1e-11


def test_target_makes_two_teacher_calls_of_b_rows_off_the_data() -> None:
    teacher = FakeNetwork(nonlinear_x0)
    objective = halving(teacher, 4)
    z = torch.randn(3, 3, 2, 2, dtype=F64)
    objective.target(z, torch.tensor([2, 4, 8]), torch.tensor([0, 1, 2]), torch.zeros(3))
    assert [rows for rows, _ in teacher.calls] == [3, 3]  # 2 NFE per example (i.11)
    teacher.calls.clear()
    fine = halving(teacher, 4, train_grid="fine")
    fine.target(z, torch.tensor([1, 3, 8]), torch.tensor([0, 1, 2]), torch.zeros(3))
    assert [rows for rows, _ in teacher.calls] == [3, 2]  # j = 1 is done after one step
    assert float(teacher.calls[1][1].min()) > 0  # never evaluated at t = 0


def test_halving_chain_and_step_schedules() -> None:
    assert halving_chain(8, 1) == [4, 2, 1]
    assert halving_chain(8, 2) == [4, 2]
    assert len(halving_chain(1024, 1)) == 10  # log2(N0) halvings
    assert len(halving_chain(8192, 1)) == 13
    for start, end in [(6, 1), (8, 3), (4, 4), (2, 4), (0, 1), (8, 0)]:
        with pytest.raises(ConfigError, match=r"distill\.(start|end)_steps"):
            halving_chain(start, end)
    for n in halving_chain(8, 1):
        student = halving(FakeNetwork(gaussian_x0), n)
        grid = torch.arange(1, n + 1, dtype=F64) / n
        assert torch.equal(student.train_times(), grid)  # i/N, i = 1..N
        assert torch.equal(timestep_grid(n, COSINE)[:-1].flip(0), grid)  # the sampler's grid
        _, t_mid, t_end = student.times(student.train_indices())
        assert torch.allclose(t_mid, grid - 0.5 / n, rtol=0, atol=1e-15)
        assert torch.allclose(t_end, grid - 1.0 / n, rtol=0, atol=1e-15)
        fine = halving(FakeNetwork(gaussian_x0), n, train_grid="fine")
        assert torch.equal(fine.train_times(), torch.arange(1, 2 * n + 1, dtype=F64) / (2 * n))
        _, t_mid, t_end = fine.times(fine.train_indices())
        assert float(t_mid[0]) == 0.0
        assert float(t_end[1]) == 0.0
    with pytest.raises(ConfigError, match="train_grid"):
        halving(FakeNetwork(gaussian_x0), 2, train_grid="coarse")


@pytest.mark.parametrize("train_grid", ["student", "fine"])
def test_gaussian_halvings_make_the_one_step_student_the_teacher(train_grid: str) -> None:
    """Closed-form halvings 8 → 4 → 2 → 1: affine models fitted exactly from x̃ at z = 0, 1."""
    model: object = FakeNetwork(gaussian_x0, "x")
    for n in halving_chain(8, 1):
        objective = halving(model, n, train_grid, param="x")
        index = objective.train_indices()  # (K,)
        k = len(index)
        z = torch.cat([torch.zeros(k), torch.ones(k)]).to(F64).reshape(2 * k, 1, 1, 1)
        zeros = torch.zeros(2 * k, dtype=torch.int64)
        x_tilde = objective.target(z, index.repeat(2), zeros, torch.zeros(2 * k, dtype=F64))
        intercept = x_tilde[:k].flatten()  # (K,)
        model = AffineGridModel(
            objective.train_times(), x_tilde[k:].flatten() - intercept, intercept
        )
    z1 = torch.linspace(-4.5, 4.5, 19, dtype=F64).reshape(19, 1, 1, 1)

    def as_denoiser(net: Callable[..., Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
        return lambda z, t: net(z, t, torch.zeros(len(z), dtype=torch.int64))

    teacher = DDIMSolver(COSINE).solve(
        lambda z, t: gaussian_x0(z, t, torch.zeros(len(z))), z1, timestep_grid(8, COSINE)
    )
    student = DDIMSolver(COSINE).solve(as_denoiser(model), z1, timestep_grid(1, COSINE))  # type: ignore[arg-type]
    assert (student - teacher).abs().max() < 1e-10


def test_stage2_loss_trains_only_the_student_on_its_grid() -> None:
    gen = make_generator(4)
    stage1 = init_student_from_teacher(random_unet(gen).state_dict(), TINY, 4.0, seed=0)
    with torch.no_grad():
        for param in stage1.w_embedder.parameters():  # type: ignore[union-attr]
            param.copy_(0.3 * torch.randn(param.shape, generator=gen))
    teacher = load_guided_model(stage1.state_dict(), TINY, 4.0)
    student = load_guided_model(stage1.state_dict(), TINY, 4.0).train()
    objective = halving(teacher, 2)
    x0, _, labels = unet_inputs(gen)
    per_sample, diag = objective.loss(student, x0.clamp(-1, 1), labels, gen)
    per_sample.mean().backward()
    assert per_sample.shape == (4,)
    assert bool(torch.isfinite(per_sample).all())
    assert set(diag["t"].tolist()) <= {0.5, 1.0}
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert student.conv_out.weight.grad is not None
    assert student.conv_out.weight.grad.any()


# ---- stage 1 -----------------------------------------------------------------------------


def test_fresh_student_is_the_conditional_teacher_bit_for_bit() -> None:
    gen = make_generator(5)
    teacher = random_unet(gen)
    student = init_student_from_teacher(teacher.state_dict(), TINY, 4.0, seed=1).eval()
    z, t, labels = unet_inputs(gen)
    with torch.no_grad():
        expected = teacher(z, t, labels)  # (4, 3, 8, 8)
        assert expected.abs().min() > 0  # a real output, not the zero-init one
        for w in (0.0, 1.0, 4.0):
            assert torch.equal(student(z, t, labels, torch.full((4,), w)), expected)


def test_stage1_loss_vanishes_at_w0_and_no_gradient_reaches_the_teacher() -> None:
    gen = make_generator(6)
    teacher = random_unet(gen)
    student = init_student_from_teacher(teacher.state_dict(), TINY, 4.0, seed=2).train()
    x0, _, labels = unet_inputs(gen)
    x0 = x0.clamp(-1, 1)

    def objective(w_range: tuple[float, float]) -> GuidanceDistillationObjective:
        return GuidanceDistillationObjective(
            teacher, COSINE, "v", TruncatedSNRWeighting(), NULL, w_range
        )

    at_zero, _ = objective((0.0, 0.0)).loss(student, x0, labels, make_generator(7))
    assert at_zero.abs().max() < 1e-10  # the fresh student already is the w = 0 target
    per_sample, diag = objective(W_RANGE).loss(student, x0, labels, make_generator(7))
    assert bool((diag["w"] >= 0).all() and (diag["w"] < 4).all())
    assert bool((per_sample > 0).all())
    per_sample.mean().backward()
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    grad = student.w_embedder.linear_out.weight.grad  # type: ignore[union-attr]
    assert grad is not None
    assert grad.any()


def test_stage1_target_follows_meng_convention_on_every_channel() -> None:
    teacher = FakeNetwork(nonlinear_x0, "v")
    objective = GuidanceDistillationObjective(
        teacher, COSINE, "v", TruncatedSNRWeighting(), NULL, W_RANGE
    )
    z = torch.randn(4, 4, 2, 2, generator=make_generator(8), dtype=F64)
    t = torch.tensor([0.01, 0.3, 0.7, 1.0], dtype=F64)
    labels, w = torch.tensor([0, 3, 5, 9]), torch.tensor([0.0, 0.3, 1.0, 4.0], dtype=F64)
    out = objective.target(z, t, labels, w)  # (4, 4, 2, 2) in v space
    assert [rows for rows, _ in teacher.calls] == [8]  # one call on 2B rows
    null = torch.full_like(labels, NULL)
    cond, uncond = nonlinear_x0(z, t, labels), nonlinear_x0(z, t, null)
    guided = (1 + broadcast_like(w, z)) * cond - broadcast_like(w, z) * uncond
    a, s = coefficients(t, z)
    assert (x0_from(out, z, a, s, "v") - guided).abs().max() < 1e-9  # every channel
    cond_v = output_from_x0("v", cond, z, a, s)
    assert torch.equal(out[0], cond_v[0])  # w = 0: the conditional output, bit for bit


def test_student_w_embedding_is_smooth_and_distinct_over_the_range() -> None:
    gen = make_generator(9)
    student = init_student_from_teacher(random_unet(gen).state_dict(), TINY, 4.0, seed=3).eval()
    with torch.no_grad():
        head = student.w_embedder.linear_out  # type: ignore[union-attr]
        head.weight.copy_(0.5 * torch.randn(head.weight.shape, generator=gen))
    z, t, labels = unet_inputs(gen, batch=1)

    grid = [0.5 * k for k in range(9)]  # w = 0, 0.5, …, 4
    probes = [(0.3, 2.0, 3.7)[k // 3] + 1e-4 * (k % 3) for k in range(9)]  # w, w + δ, w + 2δ
    ws = torch.tensor(grid + probes)  # (18,)
    with torch.no_grad():  # one batched call: rows differ only in w
        out = student(z.expand(18, -1, -1, -1), t.expand(18), labels.expand(18), ws)
    outputs = out.double().flatten(1)  # (18, C·H·W)
    pairwise = torch.cdist(outputs[:9], outputs[:9])
    assert pairwise[~torch.eye(9, dtype=torch.bool)].min() > 1e-3  # each w its own output
    base, plus_one, plus_two = outputs[9:].reshape(3, 3, -1).unbind(1)  # (3, C·H·W) each
    step, double = (plus_one - base).norm(dim=1), (plus_two - base).norm(dim=1)  # (3,)
    assert bool((step > 0).all())
    # First-order smooth: twice the step in w, twice the change in the output.
    assert (double / step - 2.0).abs().max() < 0.15


def test_checkpoint_kinds_are_checked() -> None:
    gen = make_generator(10)
    teacher_state = random_unet(gen).state_dict()
    with pytest.raises(CheckpointError, match="no w embedding"):
        load_guided_model(teacher_state, TINY, 4.0)
    student = init_student_from_teacher(teacher_state, TINY, 4.0, seed=4)
    with pytest.raises(CheckpointError, match="already has a w embedding"):
        init_student_from_teacher(student.state_dict(), TINY, 4.0, seed=4)
    with pytest.raises(ConfigError, match="w_range"):
        GuidanceDistillationObjective(student, COSINE, "v", TruncatedSNRWeighting(), NULL, (4, 0))


# ---- samplers ----------------------------------------------------------------------------


@pytest.mark.parametrize("solver", [DDIMSolver(COSINE), MengStochasticSolver(COSINE)])
def test_student_denoiser_costs_one_pass_per_step(solver: DDIMSolver) -> None:
    network = FakeNetwork(nonlinear_x0, "v")
    labels = torch.tensor([1, 4, 7])
    denoiser = CallCounter(student_denoiser(network, COSINE, "v", labels, 2.0))
    z1 = torch.randn(3, 3, 2, 2, generator=make_generator(11), dtype=F64)
    gens = [make_generator(derive_seed(0, "image", i)) for i in range(3)]
    solver.solve(denoiser, z1, timestep_grid(4, COSINE), gens)
    assert denoiser.calls == 4
    assert [rows for rows, _ in network.calls] == [3, 3, 3, 3]  # 1 NFE per image per step
    # x̂ is the student's own prediction at the w and labels given.
    t = torch.full((3,), 0.5, dtype=F64)
    expected = nonlinear_x0(z1, t, labels, torch.full((3,), 2.0, dtype=F64))
    assert (denoiser.denoiser(z1, t) - expected).abs().max() < 1e-12


def test_jump_model_steps() -> None:
    assert jump_model_steps(8, "half") == 4
    assert jump_model_steps(8, "same") == 8
    assert jump_model_steps(1, "half") == 1  # S at 1 step is D
    with pytest.raises(ConfigError, match="even"):
        jump_model_steps(3, "half")
    with pytest.raises(ConfigError, match="jump_model"):
        jump_model_steps(4, "double")


def test_jump_model_of_names_the_student_that_drives_s() -> None:
    # A 4-step halving drives S at 8 steps (half) or 4 (same); D only on its own grid.
    assert jump_model_of("stochastic", 8, 4, halving=True) == "half"
    assert jump_model_of("stochastic", 4, 4, halving=True) == "same"
    assert jump_model_of("ddim", 4, 4, halving=True) is None
    # The teacher and the stage-1 student are continuous in t: S jumps with themselves.
    assert jump_model_of("stochastic", 8, 8, halving=False) == "same"
    assert jump_model_of("stochastic", 16, None, halving=False) == "same"
    assert jump_model_of("ancestral", 16, None, halving=False) is None
    for solver, steps in (("ddim", 8), ("stochastic", 16), ("stochastic", 2)):
        with pytest.raises(ConfigError, match="own grid"):
            jump_model_of(solver, steps, 4, halving=True)


def test_halving_sample_sets_give_half_to_the_next_halving() -> None:
    sets = (
        SampleSetConfig("ddim", 8, 0.0),
        SampleSetConfig("stochastic", 8, 1.0, jump_model="half"),
        SampleSetConfig("stochastic", 8, 1.0, jump_model="same"),
        SampleSetConfig("ddim", 8, 0.0, clip_x0=False),  # same path as the first: dropped
    )
    got = [(n, s.solver, s.steps, s.w, s.jump_model) for n, s in halving_sample_sets([4, 2], sets)]
    assert got == [
        (4, "ddim", 4, 0.0, "half"),
        (4, "stochastic", 8, 1.0, "half"),
        (4, "stochastic", 4, 1.0, "same"),
        (2, "ddim", 2, 0.0, "half"),
        (2, "stochastic", 4, 1.0, "half"),
        (2, "stochastic", 2, 1.0, "same"),
    ]
    # Each set's checkpoint n is the student jump_model_of finds for it; no S half at 2 steps
    # (the last halving's 1-step student is never trained).
    for n, solver, steps, _, jump in got:
        expected = jump if solver == "stochastic" else None
        assert jump_model_of(solver, steps, n, halving=True) == expected
        if expected == "half":
            assert jump_model_steps(steps, "half") == n
    assert not [g for g in got if g[1] == "stochastic" and g[4] == "half" and g[2] == 2]


@pytest.mark.parametrize(("jump_model", "student_steps"), [("half", 2), ("same", 4)])
def test_s_at_four_steps_calls_only_its_jump_model(jump_model: str, student_steps: int) -> None:
    """S at N = 4: the N/2-step (half) or N-step (same) student makes all N calls, 1 NFE each."""
    networks = {n: FakeNetwork(nonlinear_x0) for n in (2, 4)}
    driver = jump_model_steps(4, jump_model)
    assert driver == student_steps
    labels = torch.tensor([0, 3])
    denoiser = CallCounter(student_denoiser(networks[driver], COSINE, "v", labels, 1.0))
    z1 = torch.randn(2, 3, 2, 2, generator=make_generator(21), dtype=F64)
    gens = [make_generator(derive_seed(0, "image", i)) for i in range(2)]
    MengStochasticSolver(COSINE).solve(denoiser, z1, timestep_grid(4, COSINE), gens)
    assert denoiser.calls == 4
    assert [rows for rows, _ in networks[driver].calls] == [2, 2, 2, 2]  # 1 NFE per step
    other = 4 if driver == 2 else 2
    assert networks[other].calls == []
    # Evaluated at every 1/4: for the 2-step student half of these are off its own grid (d).
    times = [float(t[0]) for _, t in networks[driver].calls]
    assert times == [1.0, 0.75, 0.5, 0.25]


def test_frozen_teacher_refuses_train_mode() -> None:
    teacher = random_unet(make_generator(12))
    objective = halving(teacher, 1)
    teacher.train()
    z, _, labels = unet_inputs(make_generator(13), batch=2)
    with pytest.raises(RuntimeError, match="eval mode"):
        objective.target(z, torch.tensor([2, 2]), labels, torch.zeros(2))
