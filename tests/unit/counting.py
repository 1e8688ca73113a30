"""A test's view of how often a solver calls its denoiser (the product measures NFE in rows)."""

from torch import Tensor

from frugaldiff.sampling.denoisers import Denoiser


class CallCounter:
    """Wraps a denoiser D(z, t) and counts its calls, `with_frac` included."""

    def __init__(self, denoiser: Denoiser) -> None:
        self.denoiser = denoiser
        self.calls = 0

    def __call__(self, z: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        return self.denoiser(z, t)

    def with_frac(self, z: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        self.calls += 1
        return self.denoiser.with_frac(z, t)  # type: ignore[attr-defined]
