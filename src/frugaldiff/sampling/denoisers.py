"""What a solver calls: a denoiser D(z, t) → x̂, and the wrappers that count or clip it.

Solvers (solvers.py) see only this callable, k-diffusion style, so a guided, distilled or
learned-variance model all sample the same way; NFECounter measures what a sample set really
cost, and ClippedDenoiser is PD's pixel-space clipping, applied at evaluation only.
"""

from collections.abc import Callable

from torch import Tensor

from frugaldiff.sampling.learned_variance import denoise_with_frac

# D(z (B, C, H, W), t (B,) in [0, 1]) -> x̂ (B, C, H, W); t is float32, or float64 when z is.
# A wrapper may set `passes_per_call` (network passes per image per call, 1 if absent), which
# NFECounter reads. A learned-variance denoiser also offers `with_frac(z, t) -> (x̂, frac)`, the
# same x̂ and IDDPM's interpolation frac (B, C, H, W); only AncestralSolver("learned") calls it.
Denoiser = Callable[[Tensor, Tensor], Tensor]


def passes_per_call(denoiser: Denoiser) -> int:
    """Network passes per image that one call of `denoiser` makes (1 unless it says more)."""
    return int(getattr(denoiser, "passes_per_call", 1))


class NFECounter:
    """Counts denoiser calls and the network passes per image (NFE) they actually made.

    A plain denoiser makes 1 pass per call; a guided one (guidance.py) says how many it made.
    """

    def __init__(self, denoiser: Denoiser) -> None:
        self.denoiser = denoiser
        self.calls = 0
        self.nfe = 0

    @property
    def passes_per_call(self) -> int:
        return passes_per_call(self.denoiser)

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        self.nfe += self.passes_per_call
        return self.denoiser(z, t)

    def with_frac(self, z: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Counted like a call; (x̂, frac) from the wrapped learned-variance denoiser."""
        self.calls += 1
        self.nfe += self.passes_per_call
        return denoise_with_frac(self.denoiser, z, t)


class ClippedDenoiser:
    """x̂ clipped to [−limit, limit], for evaluation in pixel space only (PD's sampler clipping).

    The solvers (solvers.py) read only x̂, so ε̂ = (z − α x̂)/σ is implicitly recomputed from the
    clipped x̂. Wrap the *guided* denoiser: clipping before the CFG combination biases it, and
    clipping must never reach training targets (docs/guided_distillation.md i.2). limit = 1 is
    [−1, 1] pixels; a model trained on data ÷ σ_d (EDM) clips at 1/σ_d, the same pixels.
    """

    def __init__(self, denoiser: Denoiser, limit: float = 1.0) -> None:
        self.denoiser = denoiser
        self.limit = float(limit)

    @property
    def passes_per_call(self) -> int:
        return passes_per_call(self.denoiser)

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        return self.denoiser(z, t).clamp(-self.limit, self.limit)  # (B, C, H, W)

    def with_frac(self, z: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """x̂ clipped, frac as the model gave it."""
        x0, frac = denoise_with_frac(self.denoiser, z, t)
        return x0.clamp(-self.limit, self.limit), frac  # (B, C, H, W) each


def clip_denoiser(denoiser: Denoiser, limit: float = 1.0) -> ClippedDenoiser:
    """`denoiser` with x̂ clipped to [−limit, limit] (evaluation only)."""
    return ClippedDenoiser(denoiser, limit)
