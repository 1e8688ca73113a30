"""The lr multiplier: warm-up ramp, then constant, linear or cosine to a floor."""

import itertools
import math

import pytest
import torch

from frugaldiff.errors import ConfigError
from frugaldiff.train.lr_schedule import lr_factor


def test_constant_is_the_warmup_ramp_then_one() -> None:
    f = lr_factor("constant", warmup_iters=4, iterations=10)
    assert [f(i) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_factor("constant", 0, 10)(0) == 1.0  # no warm-up


def test_linear_with_floor_zero_is_the_original_halving_schedule() -> None:
    f = lr_factor("linear", warmup_iters=0, iterations=8)
    assert [f(i) for i in range(9)] == [1 - i / 8 for i in range(9)]
    g = lr_factor("linear", warmup_iters=0, iterations=8, final_ratio=0.5)
    assert g(0) == 1.0
    assert g(8) == 0.5


def test_cosine_decays_from_peak_after_warmup_to_the_floor() -> None:
    warmup, total, floor = 10, 110, 0.33
    f = lr_factor("cosine", warmup, total, floor)
    assert f(0) == pytest.approx(0.1)
    assert f(warmup - 1) == pytest.approx(1.0)
    assert f(warmup) == pytest.approx(1.0)
    mid = warmup + (total - warmup) // 2
    assert f(mid) == pytest.approx(floor + (1 - floor) * 0.5)
    assert f(total) == pytest.approx(floor)
    assert f(total + 50) == pytest.approx(floor)  # clamped past the end
    values = [f(i) for i in range(warmup, total + 1)]
    assert all(a >= b for a, b in itertools.pairwise(values))  # monotone
    quarter = warmup + (total - warmup) // 4
    assert f(quarter) == pytest.approx(floor + (1 - floor) * (1 + math.cos(math.pi / 4)) / 2)


def test_lambda_lr_follows_the_factor_and_resumes_from_its_state() -> None:
    def scheduler() -> torch.optim.lr_scheduler.LambdaLR:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
        return torch.optim.lr_scheduler.LambdaLR(opt, lr_factor("cosine", 2, 12, 0.33))

    a = scheduler()
    lrs = []
    for _ in range(12):
        a.optimizer.step()
        a.step()
        lrs.append(a.get_last_lr()[0])
    assert lrs[-1] == pytest.approx(2e-4 * 0.33)
    b = scheduler()
    for _ in range(5):
        b.optimizer.step()
        b.step()
    c = scheduler()
    c.load_state_dict(b.state_dict())
    c.optimizer.step()
    c.step()
    assert c.get_last_lr()[0] == pytest.approx(lrs[5])


def test_unknown_decay_or_floor_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"train.lr_decay='cosin'.*cosine"):
        lr_factor("cosin", 0, 10)
    with pytest.raises(ConfigError, match=r"train.lr_final_ratio=1.5"):
        lr_factor("cosine", 0, 10, 1.5)
