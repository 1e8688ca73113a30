"""What a solver calls: a denoiser D(z, t) → x̂, and the wrapper that clips it.

Solvers (solvers.py) see only this callable, k-diffusion style, so a guided, distilled or
learned-variance model all sample the same way. ClippedDenoiser is PD's pixel-space clipping,
applied at evaluation only. What a sample set cost is measured once, below every denoiser: the
network rows it evaluated (sampling/networks.py RowCounter), NFE = rows ÷ images.
"""

from collections.abc import Callable

from torch import Tensor

# D(z (B, C, H, W), t (B,) in [0, 1]) -> x̂ (B, C, H, W); t is float32, or float64 when z is.
# A learned-variance denoiser also offers `with_frac(z, t) -> (x̂, frac)`, the same x̂ and
# IDDPM's interpolation frac (B, C, H, W); only AncestralSolver("learned") calls it.
Denoiser = Callable[[Tensor, Tensor], Tensor]


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

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        return self.denoiser(z, t).clamp(-self.limit, self.limit)  # (B, C, H, W)

    def with_frac(self, z: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """x̂ clipped, frac as the model gave it."""
        x0, frac = self.denoiser.with_frac(z, t)  # type: ignore[attr-defined]
        return x0.clamp(-self.limit, self.limit), frac  # (B, C, H, W) each


def clip_denoiser(denoiser: Denoiser, limit: float = 1.0) -> ClippedDenoiser:
    """`denoiser` with x̂ clipped to [−limit, limit] (evaluation only)."""
    return ClippedDenoiser(denoiser, limit)
