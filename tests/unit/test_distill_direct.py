"""Meng et al.'s direct baseline against closed forms (docs/guided_distillation.md l, j).

Each halving builds the PD target twice per example, along the CFG teacher's conditional and its
unconditional trajectory; row for row that is the w-chain's PD target with the teacher fixed to
that label, and one student DDIM step with it lands on the teacher's two steps. The loss regresses
both of the student's outputs.
"""

import pytest
import torch
from torch import Tensor, nn

from frugaldiff.config import ModelConfig
from frugaldiff.diffusion.parameterization import broadcast_like
from frugaldiff.diffusion.weighting import TruncatedSNRWeighting
from frugaldiff.distill.direct import (
    TEACHER_NFE_PER_EXAMPLE,
    DirectDistillationObjective,
    load_cfg_model,
)
from frugaldiff.distill.guided import load_guided_model, per_sample_loss
from frugaldiff.errors import CheckpointError
from frugaldiff.models.registry import build_model
from frugaldiff.rng import make_generator
from frugaldiff.sampling.solvers import ddim_update
from frugaldiff.sharding import BatchShard

from .test_distill import COSINE, F64, NULL, TINY, FakeNetwork, halving, nonlinear_x0, teacher_steps


def direct(
    teacher: object, student_steps: int, train_grid: str = "fine"
) -> DirectDistillationObjective:
    return DirectDistillationObjective(
        teacher,  # type: ignore[arg-type]
        COSINE,
        student_steps,
        "v",
        TruncatedSNRWeighting(),
        NULL,
        train_grid=train_grid,
    )


def label_only_x0(z: Tensor, t: Tensor, labels: Tensor, w: Tensor | None = None) -> Tensor:
    """nonlinear_x0 of a plain CFG teacher: x̂ depends on the label, never on a w."""
    assert w is None, "a direct teacher is called without w"
    return nonlinear_x0(z, t, labels)


def test_direct_targets_are_the_pd_targets_at_each_label() -> None:
    n = 4
    objective = direct(FakeNetwork(label_only_x0), n)
    z = torch.randn(5, 3, 2, 2, generator=make_generator(10), dtype=F64)
    index = torch.tensor([1, 2, 5, 8, 6])  # fine grid: j = 1 and PD's i = 1 cases included
    labels = torch.tensor([0, 3, 9, 5, 1])
    null = torch.full_like(labels, NULL)
    x_cond, x_uncond = objective.targets(z, index, labels)  # (5, 3, 2, 2) each

    # The w-chain's PD target (one implementation) with a teacher that ignores its w input.
    def fixed(zz: Tensor, tt: Tensor, lab: Tensor, ww: Tensor | None = None) -> Tensor:
        return nonlinear_x0(zz, tt, lab)

    reference = halving(FakeNetwork(fixed), n, train_grid="fine")
    zeros = torch.zeros(5, dtype=F64)
    assert torch.allclose(x_cond, reference.target(z, index, labels, zeros), rtol=0, atol=1e-12)
    assert torch.allclose(x_uncond, reference.target(z, index, null, zeros), rtol=0, atol=1e-12)
    assert (x_cond - x_uncond).abs().min() > 1e-3  # the label matters: two distinct targets

    # Closed form, per output: one DDIM step with x̃ from t lands on two teacher DDIM steps.
    for x_tilde, lab in ((x_cond, labels), (x_uncond, null)):
        for row in (3, 4):  # t = 1 and 3/4
            t = float(index[row]) / (2 * n)
            grid = [t, t - 0.5 / n, t - 1.0 / n]
            z_teacher = teacher_steps(fixed, z[row : row + 1], grid, lab[row : row + 1], zeros[:1])
            alpha, _ = COSINE.alpha_sigma(torch.tensor(grid, dtype=F64))
            ratio = COSINE.sigma_ratio(
                torch.tensor(grid[0], dtype=F64), torch.tensor(grid[2], dtype=F64)
            )
            z_student = ddim_update(z[row], x_tilde[row], alpha[0], alpha[2], ratio)
            assert (z_student - z_teacher[0]).abs().max() < 1e-10


def test_direct_target_costs_four_teacher_nfe_per_example() -> None:
    teacher = FakeNetwork(label_only_x0)
    z = torch.randn(3, 3, 2, 2, dtype=F64)
    direct(teacher, 4).targets(z, torch.tensor([2, 4, 8]), torch.tensor([0, 1, 2]))
    rows = sum(r for r, _ in teacher.calls)
    assert rows == TEACHER_NFE_PER_EXAMPLE * 3 == 12  # 2 steps x (cond + uncond)
    assert len(teacher.calls) == 2  # both trajectories batched into each teacher call


class TwoOutputs(nn.Module):
    """A v output of a constant per kind of row: `cond` for real labels, `uncond` for ∅."""

    def __init__(self) -> None:
        super().__init__()
        self.cond = nn.Parameter(torch.tensor(0.1, dtype=F64))
        self.uncond = nn.Parameter(torch.tensor(-0.2, dtype=F64))

    def forward(
        self, z: Tensor, t: Tensor, labels: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        is_null = broadcast_like((labels == NULL).to(z.dtype), z)  # (B, 1, 1, 1)
        return z * 0 + self.cond * (1 - is_null) + self.uncond * is_null  # (B, C, H, W)


def test_direct_loss_regresses_both_outputs() -> None:
    objective = direct(FakeNetwork(label_only_x0), 4)
    student = TwoOutputs()
    x0 = torch.rand(6, 3, 2, 2, generator=make_generator(11), dtype=F64) * 2 - 1
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    per_sample, diag = objective.loss(student, x0, labels, make_generator(12))
    assert per_sample.shape == (6,)
    # By hand, from the same draws: ½(cond regression + uncond regression) per example.
    rows, t_in = objective.draw(x0, make_generator(12), BatchShard.whole(6))
    x_cond, x_uncond = objective.targets(rows.z, rows.index, labels)
    null = torch.full_like(labels, NULL)
    by_hand = []
    for x_tilde, lab in ((x_cond, labels), (x_uncond, null)):
        target = objective.output_target(x_tilde, rows.z, rows.alpha, rows.sigma)
        out = student(rows.z, t_in, lab)
        by_hand.append(per_sample_loss(out, target, rows.logsnr, "v", objective.weighting)[0])
    assert torch.allclose(diag["loss_cond"], by_hand[0], rtol=1e-12, atol=0)
    assert torch.allclose(diag["loss_uncond"], by_hand[1], rtol=1e-12, atol=0)
    assert torch.allclose(per_sample, 0.5 * (by_hand[0] + by_hand[1]), rtol=1e-12, atol=0)
    per_sample.mean().backward()
    for param in (student.cond, student.uncond):  # both outputs are trained
        assert param.grad is not None
        assert param.grad.abs() > 0


def test_cfg_and_w_conditioned_states_are_kept_apart() -> None:
    plain = build_model(TINY).state_dict()
    model = load_cfg_model(plain, TINY, "teacher.pt")
    assert model.w_embedder is None
    assert all(torch.equal(v, plain[k]) for k, v in model.state_dict().items())
    guided = load_guided_model({**plain, **_w_embedder_state(TINY)}, TINY, 4.0).state_dict()
    with pytest.raises(CheckpointError, match=r"student\.pt: .*w-conditioned"):
        load_cfg_model(guided, TINY, "student.pt")


def _w_embedder_state(cfg: ModelConfig) -> dict[str, Tensor]:
    model = build_model(cfg)
    model.attach_guidance_embedding(4.0)  # type: ignore[operator]
    return {k: v for k, v in model.state_dict().items() if k.startswith("w_embedder.")}
