"""SpeeD's sampler and weighting against docs/speed.md (b)-(d), (j): laws, anchors, fixtures,
loss."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from frugaldiff.config import DiffusionConfig, TimestepConfig, WeightingConfig, from_dict, load_yaml
from frugaldiff.diffusion.objective import DiffusionObjective
from frugaldiff.diffusion.schedule import (
    CosineLogSNRSchedule,
    DiscreteSchedule,
    LinearBetaSchedule,
    StepGrid,
)
from frugaldiff.diffusion.timesteps import SpeeDTimestepSampler, build_timestep_sampler
from frugaldiff.diffusion.weighting import ChangeAwareWeighting, build_loss_weighting
from frugaldiff.errors import ConfigError
from frugaldiff.rng import make_generator

REPO = Path(__file__).resolve().parents[2]
LINEAR = LinearBetaSchedule()
COSINE = CosineLogSNRSchedule()
BANDS = torch.arange(1000) // 50  # 20 bands of 50 steps


def quad_schedule() -> DiscreteSchedule:
    """SpeeD's `quad`: √β linear from √1e-4 to √0.02 (docs/speed.md b)."""
    return DiscreteSchedule(torch.linspace(1e-4**0.5, 0.02**0.5, 1000, dtype=torch.float64) ** 2)


def iddpm_cosine_schedule() -> DiscreteSchedule:
    """IDDPM's cosine: ᾱ(t) = cos²((t + 0.008)/1.008 · π/2), β = 1 − ᾱ_{i+1}/ᾱ_i ≤ 0.999."""
    edges = torch.arange(1001, dtype=torch.float64) / 1000
    alpha_bar = torch.cos((edges + 0.008) / 1.008 * math.pi / 2) ** 2
    return DiscreteSchedule((1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999))


def chi_square_p(steps: torch.Tensor, pmf: torch.Tensor, bands: torch.Tensor = BANDS) -> float:
    """p-value of a χ² test of the step histogram against pmf, pooled into bands."""
    observed = torch.bincount(bands[steps], minlength=int(bands.max()) + 1).double()
    expected = torch.zeros_like(observed).index_add_(0, bands, pmf) * steps.numel()
    keep = expected > 0
    assert float(observed[~keep].sum()) == 0.0  # nothing where the law has no mass
    chi2 = float(((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    return float(stats.chi2.sf(chi2, int(keep.sum()) - 1))


def speed(schedule=LINEAR, **fields) -> SpeeDTimestepSampler:
    return build_timestep_sampler(TimestepConfig(name="speed", **fields), schedule)


@pytest.mark.parametrize(
    ("schedule", "peak", "anchor"),
    [(LINEAR, 219, 642), (quad_schedule(), 411, 829), (iddpm_cosine_schedule(), 495, 959)],
)
def test_anchors_match_speed_md(schedule: DiscreteSchedule, peak: int, anchor: int) -> None:
    grid = StepGrid(schedule)
    assert grid.peak_change_step() == peak
    assert grid.dual_anchor_step() == anchor


def test_anchor_threshold_and_continuous_grid() -> None:
    assert StepGrid(LINEAR).dual_anchor_step(threshold=5e-5) == 700
    # PD's truncated cosine on the T = 1000 grid (our float64 values; IDDPM's cosine is 495/959).
    grid = StepGrid(COSINE)
    assert (grid.peak_change_step(), grid.dual_anchor_step()) == (499, 960)
    assert speed(COSINE).anchor == 960


def test_two_level_pmf_and_masses() -> None:
    pmf = speed().law.pmf
    assert torch.equal(pmf[:700], torch.full((700,), 5 / 3800, dtype=torch.float64))
    assert torch.equal(pmf[700:], torch.full((300,), 1 / 3800, dtype=torch.float64))
    assert float(pmf.sum()) == pytest.approx(1.0, abs=1e-12)


def test_primary_histogram_chi_square_and_tau_mass() -> None:
    sampler = speed(dual=False)
    t = sampler.sample(1_000_000, make_generator(0), "cpu")
    steps = LINEAR.t_to_step(t)
    assert torch.equal(LINEAR.step_to_t(steps), t)  # grid points only
    assert chi_square_p(steps, sampler.law.pmf) > 1e-3
    below = float((steps < 700).double().mean())
    assert abs(below - 3500 / 3800) < 4 * math.sqrt(3500 * 300 / 3800**2 / 1e6)


def test_dual_half_follows_dual_pmf() -> None:
    sampler = speed()
    dual = sampler.dual_pmf() * 3800
    expected = torch.zeros(1000, dtype=torch.float64)
    expected[0], expected[1:58], expected[58:358], expected[358:643] = 5, 10, 6, 5
    torch.testing.assert_close(dual, expected, rtol=0, atol=1e-9)  # docs/speed.md (c)
    n = 100_000
    steps = LINEAR.t_to_step(sampler.sample(n, make_generator(1), "cpu"))
    primaries = sampler.primary_count(n)
    assert primaries == n // 2 + 1
    assert chi_square_p(steps[:primaries], sampler.law.pmf) > 1e-3
    assert chi_square_p(steps[primaries:], sampler.dual_pmf()) > 1e-3
    assert int(steps[primaries:].max()) <= sampler.anchor  # duals never exceed m


@pytest.mark.parametrize(
    ("k", "masses"),
    [(5.0, (0.373, 0.278, 0.307, 0.042)), (2.0, (0.364, 0.268, 0.274, 0.094)),
     (1.0, (0.352, 0.255, 0.233, 0.159))],
)  # fmt: skip
def test_batch_marginal_band_masses(k: float, masses: tuple[float, ...]) -> None:
    """docs/speed.md (c): band masses t < 240 / 240–439 / 440–699 / ≥ 700 of the n = 32 marginal."""
    bands = torch.bucketize(torch.arange(1000), torch.tensor([240, 440, 700]), right=True)
    marginal = speed(k=k).marginal(32)
    formula = torch.zeros(4, dtype=torch.float64).index_add_(0, bands, marginal)
    torch.testing.assert_close(
        formula, torch.tensor(masses, dtype=torch.float64), atol=5e-4, rtol=0
    )
    # Empirically: batches are iid, so per-batch band fractions give an honest standard error.
    sampler, generator = speed(k=k), make_generator(2)
    fractions = (
        torch.stack(
            [
                torch.bincount(
                    bands[LINEAR.t_to_step(sampler.sample(32, generator, "cpu"))], minlength=4
                )
                for _ in range(1500)
            ]
        ).double()
        / 32
    )  # (3000, 4)
    z = (fractions.mean(0) - formula) / (fractions.std(0) / math.sqrt(1500))
    assert bool((z.abs() < 4).all()), z


@pytest.mark.parametrize("n", [1, 2, 3, 4, 32])
def test_batch_layout_primaries_then_duals(n: int) -> None:
    sampler = speed()
    steps = LINEAR.t_to_step(sampler.sample(n, make_generator(3), "cpu"))
    assert steps.shape == (n,)
    primaries = min(n // 2 + 1, n)
    torch.testing.assert_close(steps[primaries:], sampler.dual_of(steps[: n - primaries]))
    assert bool(((steps >= 0) & (steps < 1000)).all())


def test_k1_without_dual_reproduces_uniform_draws() -> None:
    uniform = build_timestep_sampler(TimestepConfig(name="uniform"), LINEAR)
    neutral = speed(k=1.0, dual=False)
    a = uniform.sample(10_000, make_generator(4), "cpu")
    b = neutral.sample(10_000, make_generator(4), "cpu")
    assert torch.equal(a, b)
    # Hence sampler-only with the baseline weighting reproduces the baseline loss exactly.
    x0 = torch.linspace(-1, 1, 4 * 3 * 4 * 4).reshape(4, 3, 4, 4)
    losses = []
    for timesteps in (TimestepConfig(name="uniform"), TimestepConfig("speed", k=1.0, dual=False)):
        cfg = DiffusionConfig("linear_beta", "eps", timesteps, WeightingConfig("snr"), p_uncond=0)
        objective = DiffusionObjective.from_config(cfg, null_label=10)
        losses.append(
            objective.loss(affine, x0, torch.zeros(4, dtype=torch.long), make_generator(5))[0]
        )
    assert torch.equal(losses[0], losses[1])


def test_reproducible_with_generator() -> None:
    sampler = speed()
    a = sampler.sample(64, make_generator(6), "cpu")
    assert torch.equal(a, sampler.sample(64, make_generator(6), "cpu"))
    assert not torch.equal(a, sampler.sample(64, make_generator(7), "cpu"))


def test_change_aware_weights_fixtures_and_range() -> None:
    w = ChangeAwareWeighting(LINEAR, ceiling=0.6, tau=700, tail_weight=1.0).step_weights
    fixtures = torch.tensor([0.4088, 0.6000, 0.4072, 1.0], dtype=torch.float64)  # docs/speed.md (d)
    torch.testing.assert_close(w[[0, 219, 699, 700]], fixtures, atol=1e-4, rtol=0)
    assert float(w[:700].min()) >= 0.4
    assert float(w[:700].max()) <= 0.6
    assert int(torch.argmax(w[:700])) == 219
    assert bool((w[700:] == 1.0).all())
    strong = ChangeAwareWeighting(LINEAR, ceiling=1.0).step_weights
    torch.testing.assert_close(
        strong[[0, 699]], torch.tensor([0.0439, 0.0360]).double(), atol=1e-4, rtol=0
    )
    affine_everywhere = ChangeAwareWeighting(LINEAR, tail_weight=None).step_weights
    assert int(torch.argmin(affine_everywhere)) == 999
    assert float(affine_everywhere.min()) == pytest.approx(0.4, abs=1e-12)


def test_change_aware_maps_logsnr_to_steps_and_multiplies_eps_mse() -> None:
    weighting = build_loss_weighting(WeightingConfig("change_aware"), LINEAR)
    steps = torch.arange(1000)
    logsnr = LINEAR.logsnr(LINEAR.step_to_t(steps))  # (T,) float32
    assert torch.equal(weighting.grid.logsnr_to_steps(logsnr), steps)
    omega = weighting(logsnr)
    assert omega.dtype == torch.float32
    torch.testing.assert_close(
        omega / logsnr.exp(), weighting.step_weights.float(), rtol=1e-6, atol=0
    )
    # λ = 0.5 without the tail rule is the constant ε-weight 0.5, i.e. ω = 0.5·SNR.
    half = build_loss_weighting(
        WeightingConfig("change_aware", ceiling=0.5, tail_weight=None), LINEAR
    )
    torch.testing.assert_close(half(logsnr), 0.5 * logsnr.exp(), rtol=1e-6, atol=0)


def affine(z, t, labels, *, generator=None):
    """A fake network: ε̂ = 0.5 z + 0.1."""
    return 0.5 * z + 0.1


def test_objective_loss_equals_hand_computation() -> None:
    """Three images: two primaries and one dual (two images alone would draw no dual)."""
    cfg = DiffusionConfig(
        schedule="linear_beta",
        parameterization="eps",
        timesteps=TimestepConfig(name="speed"),
        loss_weighting=WeightingConfig(name="change_aware"),
        p_uncond=0.0,
    )
    objective = DiffusionObjective.from_config(cfg, null_label=10)
    x0 = torch.linspace(-1, 1, 3 * 3 * 4 * 4).reshape(3, 3, 4, 4)
    loss, diag = objective.loss(affine, x0, torch.tensor([1, 2, 3]), make_generator(8))

    # By hand, in numpy float64: the sampler's draws, then ε, in the objective's order.
    betas = np.linspace(1e-4, 0.02, 1000)
    alpha_bar = np.cumprod(1 - betas)
    pmf = np.where(np.arange(1000) < 700, 5.0, 1.0) / 3800
    gen = make_generator(8)
    u = torch.rand(2, generator=gen, dtype=torch.float64).numpy()
    primaries = np.searchsorted(np.cumsum(pmf), u, side="right")
    dual = 642 - primaries[0] if primaries[0] < 642 else primaries[0] - 642
    steps = np.array([*primaries, dual])
    eps = torch.randn(x0.shape, generator=gen).double().numpy()
    rate = np.gradient(1 - alpha_bar)
    w = 0.4 + 0.2 * (rate - rate.min()) / (rate.max() - rate.min())
    w[700:] = 1.0
    a = np.sqrt(alpha_bar[steps])[:, None, None, None]
    z = a * x0.double().numpy() + np.sqrt(1 - a**2) * eps
    expected = w[steps] * ((0.5 * z + 0.1 - eps) ** 2).reshape(3, -1).mean(1)

    assert torch.equal(LINEAR.t_to_step(diag["t"]), torch.from_numpy(steps))
    torch.testing.assert_close(loss.double(), torch.from_numpy(expected), rtol=1e-5, atol=1e-6)


def test_continuous_cosine_sampler() -> None:
    sampler = speed(COSINE, dual=False)
    t = sampler.sample(100_000, make_generator(9), "cpu")
    assert t.dtype == torch.float32
    assert float(t.min()) > 0.0
    assert float(t.max()) <= 1.0
    cells = sampler.grid.logsnr_to_steps(COSINE.logsnr(t))  # the cell (k/T, (k+1)/T] of each t
    # Same uniforms as the discrete sampler, so the cells are its steps for the same generator.
    discrete = LINEAR.t_to_step(speed(dual=False).sample(100_000, make_generator(9), "cpu"))
    assert torch.equal(cells, discrete)
    assert chi_square_p(cells, sampler.law.pmf) > 1e-3
    within = cells.double() + 1 - t.double() * 1000  # place in the cell, U[0.01, 0.99]
    assert float(within.min()) >= 0.01 - 1e-4
    assert float(within.max()) <= 0.99 + 1e-4
    assert abs(float(within.mean()) - 0.5) < 4 * math.sqrt(0.98**2 / 12 / 100_000)
    # k = 1 without dual: U(0, 1] in law (20 equal bins).
    flat = speed(COSINE, k=1.0, dual=False).sample(100_000, make_generator(10), "cpu")
    bins = (flat * 20).ceil().long().clamp(1, 20) - 1
    observed = torch.bincount(bins, minlength=20).double()
    assert float(stats.chisquare(observed.numpy()).pvalue) > 1e-3
    # Duals stay at or below the anchor's cell.
    dual = speed(COSINE)
    t_dual = dual.sample(1001, make_generator(11), "cpu")[501:]
    assert float(t_dual.max()) <= (dual.anchor + 1) / 1000


def test_continuous_cosine_weighting_and_objective() -> None:
    weighting = build_loss_weighting(WeightingConfig("change_aware"), COSINE)
    t = (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000  # cell centres
    logsnr = COSINE.logsnr(t.float())
    w = weighting(logsnr) / logsnr.exp()  # SpeeD's ε-weight
    torch.testing.assert_close(w, weighting.step_weights.float(), rtol=1e-5, atol=0)
    assert float(w[:700].min()) >= 0.4 - 1e-6
    assert float(w[:700].max()) <= 0.6 + 1e-6
    assert bool((w[700:] == 1.0).all())
    assert int(torch.argmax(w[:700])) == weighting.grid.peak_change_step() == 499
    cfg = DiffusionConfig(
        schedule="cosine",
        parameterization="v",
        timesteps=TimestepConfig(name="speed"),
        loss_weighting=WeightingConfig(name="change_aware"),
        p_uncond=0.0,
    )
    objective = DiffusionObjective.from_config(cfg, null_label=10)
    x0 = torch.linspace(-1, 1, 8 * 3 * 4 * 4).reshape(8, 3, 4, 4)
    loss, diag = objective.loss(affine, x0, torch.zeros(8, dtype=torch.long), make_generator(12))
    # ω / (1 + SNR) on the v-MSE is SNR·w/(1 + SNR): the ε-weight w on the ε-MSE.
    snr = diag["logsnr"].exp()
    steps = weighting.grid.logsnr_to_steps(diag["logsnr"])
    expected_weight = snr * weighting.step_weights[steps].float() / (1 + snr)
    torch.testing.assert_close(diag["weight"], expected_weight, rtol=1e-5, atol=0)
    assert bool(torch.isfinite(loss).all())


def test_invalid_parameters_raise() -> None:
    with pytest.raises(ConfigError, match=r"timesteps\.k=0\.5"):
        speed(k=0.5)
    with pytest.raises(ConfigError, match=r"timesteps\.tau=1001"):
        speed(tau=1001)
    with pytest.raises(ConfigError, match=r"timesteps\.dual_anchor=1000"):
        speed(dual_anchor=1000)
    for ceiling in (0.4, 5.0):  # 5 is the official code's default (docs/speed.md i.2)
        with pytest.raises(ConfigError, match=r"loss_weighting\.ceiling"):
            build_loss_weighting(WeightingConfig("change_aware", ceiling=ceiling), LINEAR)
    with pytest.raises(ConfigError, match="schedule"):
        build_loss_weighting("change_aware")
    with pytest.raises(ConfigError, match=r"'change_awre'.*'change_aware'"):
        build_loss_weighting("change_awre", LINEAR)


@pytest.mark.parametrize(
    ("block", "sampler", "weighting"),
    [("baseline", "uniform", "snr"), ("speed-sampler", "speed", "snr"),
     ("speed-weighting", "uniform", "change_aware"), ("speed", "speed", "change_aware")],
)  # fmt: skip
def test_method_blocks_form_the_component_ablation(
    block: str, sampler: str, weighting: str
) -> None:
    path = REPO / "configs" / "method" / f"{block}.yaml"
    cfg = from_dict(DiffusionConfig, load_yaml(path)["diffusion"], str(path), "diffusion")
    assert (cfg.schedule, cfg.parameterization) == ("linear_beta", "eps")
    assert (cfg.timesteps.name, cfg.loss_weighting.name) == (sampler, weighting)
    if sampler == "speed":
        assert (cfg.timesteps.k, cfg.timesteps.tau, cfg.timesteps.dual) == (5.0, 700, True)
    if weighting == "change_aware":
        assert (cfg.loss_weighting.ceiling, cfg.loss_weighting.tau) == (0.6, 700)
        assert cfg.loss_weighting.tail_weight == 1.0
    DiffusionObjective.from_config(cfg, null_label=10)  # builds


@pytest.mark.parametrize("paper", ["speed_ffhq256", "speed_metfaces256"])
def test_paper_tiers_run_the_official_only_sample_component(paper: str) -> None:
    """speed-sampler-nodual: the sampler's law without dual steps, beside the dual run."""
    import yaml

    from frugaldiff.config import parse_tier_config, resolve_run

    repo = Path(__file__).resolve().parents[2]
    path = repo / "configs" / "paper" / f"{paper}.yaml"
    tier = parse_tier_config(yaml.safe_load(path.read_text()), str(path))
    nodual = resolve_run(tier, "speed-sampler-nodual", repo / "configs").diffusion.timesteps
    dual = resolve_run(tier, "speed-sampler", repo / "configs").diffusion.timesteps
    assert (nodual.name, nodual.dual, dual.dual) == ("speed", False, True)
    assert (nodual.k, nodual.tau) == (dual.k, dual.tau)


def test_ffhq_lambda_sweep_runs_at_the_official_k5() -> None:
    import yaml

    from frugaldiff.config import parse_tier_config, resolve_run

    repo = Path(__file__).resolve().parents[2]
    path = repo / "configs" / "paper" / "speed_ffhq256.yaml"
    tier = parse_tier_config(yaml.safe_load(path.read_text()), str(path))
    for run, ceiling in (("speed-lambda05", 0.5), ("speed-lambda08", 0.8), ("speed-lambda1", 1.0)):
        diffusion = resolve_run(tier, run, repo / "configs").diffusion
        assert (diffusion.timesteps.k, diffusion.loss_weighting.ceiling) == (5.0, ceiling), run
