"""Sampling with IDDPM's learned variance: respaced β' and β̃', `learned` reproducing `large` /
`small` at frac = 1 / 0, NFE and clipping, CFG's frac, the tier's variance key (docs/speed.md (b),
(g)).
"""

import pytest
import torch
from torch import Tensor

from frugaldiff.diffusion.learned_variance import LearnedRangeTerm
from frugaldiff.diffusion.schedule import LinearBetaSchedule
from frugaldiff.errors import ConfigError
from frugaldiff.rng import derive_seed, make_generator
from frugaldiff.sampling.denoisers import clip_denoiser
from frugaldiff.sampling.grids import timestep_grid
from frugaldiff.sampling.guidance import guided_denoiser
from frugaldiff.sampling.learned_variance import respaced_log_variances
from frugaldiff.sampling.noise import randn_per_image
from frugaldiff.sampling.solvers import AncestralSolver, build_solver
from tests.unit.counting import CallCounter

F64 = torch.float64
LINEAR = LinearBetaSchedule()


def test_respaced_betas_of_the_full_grid_are_the_schedules() -> None:
    t = timestep_grid(1000, LINEAR)  # (1001,) 1 .. 0
    lam = LINEAR.logsnr(t).tolist()
    pairs = [respaced_log_variances(lam[i], lam[i + 1]) for i in range(999)]  # steps 999 .. 1
    log_beta = torch.tensor([p[0] for p in pairs], dtype=F64).flip(0)  # steps 1 .. 999
    log_tilde = torch.tensor([p[1] for p in pairs], dtype=F64).flip(0)
    torch.testing.assert_close(log_beta.exp(), LINEAR.betas[1:], rtol=1e-9, atol=0)
    term = LearnedRangeTerm(LINEAR)
    torch.testing.assert_close(log_tilde, term.log_small[1:], rtol=1e-9, atol=1e-9)


class FracDenoiser:
    """x̂ = 0.8 z (any fixed map) with a constant frac, through the `with_frac` interface."""

    def __init__(self, frac: float) -> None:
        self.frac = frac

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        return 0.8 * z

    def with_frac(self, z: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        return self(z, t), torch.full_like(z, self.frac)


def _draw(solver: AncestralSolver, denoiser, steps: int = 25) -> Tensor:
    gens = [make_generator(derive_seed(4, "image", i)) for i in range(3)]
    x_T = randn_per_image(gens, (3, 4, 4), "cpu", torch.float32)
    return solver.solve(denoiser, x_T, timestep_grid(steps, LINEAR), gens)


@pytest.mark.parametrize(("frac", "fixed"), [(1.0, "large"), (0.0, "small")])
def test_learned_with_frac_one_or_zero_is_large_or_small(frac: float, fixed: str) -> None:
    learned = _draw(AncestralSolver(LINEAR, "learned"), FracDenoiser(frac))
    reference = _draw(AncestralSolver(LINEAR, fixed), FracDenoiser(frac))
    torch.testing.assert_close(learned, reference, rtol=1e-5, atol=1e-6)
    swapped = "small" if fixed == "large" else "large"
    other = _draw(AncestralSolver(LINEAR, swapped), FracDenoiser(frac))
    assert not torch.allclose(learned, other, rtol=1e-3, atol=1e-3)


def test_learned_calls_once_per_step_and_clips_only_x0() -> None:
    counter = CallCounter(clip_denoiser(FracDenoiser(3.0), limit=0.5))
    x0 = _draw(AncestralSolver(LINEAR, "learned"), counter, steps=5)
    assert counter.calls == 5
    assert float(x0.abs().max()) == 0.5  # the last step returns the clipped x̂
    z = torch.full((1, 1, 2, 2), 4.0)
    assert torch.equal(counter.with_frac(z, torch.ones(1))[1], torch.full_like(z, 3.0))


def test_learned_needs_a_variance_and_only_ancestral_has_it() -> None:
    with pytest.raises(ConfigError, match=r"diffusion\.learn_sigma"):
        _draw(AncestralSolver(LINEAR, "learned"), lambda z, t: 0.8 * z)
    with pytest.raises(ConfigError, match="solver 'ddim' has no variance"):
        build_solver("ddim", LINEAR, variance="learned")
    with pytest.raises(ConfigError, match="'learned'"):
        AncestralSolver(LINEAR, "medium")


def test_guidance_guides_x0_and_takes_frac_from_the_conditional_rows() -> None:
    class Predictor:
        def __call__(self, z: Tensor, t: Tensor, labels: Tensor) -> Tensor:
            return self.with_frac(z, t, labels)[0]

        def with_frac(self, z: Tensor, t: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
            shift = labels.to(z.dtype).reshape(-1, 1, 1, 1)
            return z + shift, torch.sigmoid(z) + shift  # labels move both

    z, t = torch.randn(2, 3, 4, 4, generator=make_generator(5)), torch.rand(2)
    labels = torch.ones(2, dtype=torch.long)
    denoiser = guided_denoiser(Predictor(), labels, 10, 2.0)
    x0, frac = denoiser.with_frac(z, t)
    torch.testing.assert_close(x0, denoiser(z, t), rtol=0, atol=0)  # the same guided x̂
    torch.testing.assert_close(x0, z + 1 + 2.0 * (1 - 10), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(frac, torch.sigmoid(z) + 1, rtol=0, atol=0)  # conditional, unguided


def test_tier_configs_check_the_variance_key() -> None:
    import yaml

    from frugaldiff.config import parse_tier_config, resolve_run
    from tests.unit.test_config import REPO, smoke

    tier = parse_tier_config(smoke(), "smoke.yaml")
    for name in ("speed-baseline", "speed-sampler", "speed-weighting", "speed"):
        run = resolve_run(tier, name, REPO / "configs")
        assert run.diffusion.learn_sigma  # configs/method/*.yaml, docs/speed.md (b)
        assert [s.variance for s in run.sample_sets] == ["learned"]
    data = smoke()
    data["runs"]["speed-baseline"]["diffusion"] = {"learn_sigma": False}
    with pytest.raises(ConfigError, match=r"sample_sets\[0\]\.variance='learned'.*learn_sigma"):
        resolve_run(parse_tier_config(data, "s.yaml"), "speed-baseline", REPO / "configs")
    data = smoke()
    data["runs"]["speed"]["sample_sets"] = [{"solver": "ddim", "steps": 4, "variance": "learned"}]
    with pytest.raises(ConfigError, match=r"runs\.speed\.sample_sets\[0\]\.variance"):
        parse_tier_config(data, "s.yaml")
    for paper in ("ffhq256", "metfaces256", "imagenet256"):
        runs = yaml.safe_load((REPO / "configs" / "paper" / f"speed_{paper}.yaml").read_text())
        for spec in runs["runs"].values():
            for s in spec["sample_sets"]:  # docs/speed.md (g): 250-step ancestral, learned, no clip
                assert (s["solver"], s["steps"], s["variance"], s["clip_x0"]) == (
                    "ancestral",
                    250,
                    "learned",
                    False,
                )
