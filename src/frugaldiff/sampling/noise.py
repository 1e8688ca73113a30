"""Per-image Gaussian noise, so a sample set never depends on batch size or device count.

Following EDM's `generate.py` (Karras et al., arXiv 2206.00364), image i of a sample set owns
one torch.Generator (seeded by `rng.derive_seed(base, i)`), and every random draw for that image,
the starting z_1 and each stochastic solver step, comes from it in order. Splitting a set into
batches of any size therefore reproduces the same images.
"""

from collections.abc import Sequence

import torch
from torch import Tensor


def randn_per_image(
    generators: Sequence[torch.Generator],
    shape: tuple[int, ...],
    device: torch.device | str,
    dtype: torch.dtype,
) -> Tensor:
    """Standard normal noise (B, *shape), row i drawn from generators[i] alone.

    Each row is drawn on its generator's device and then moved to `device`, so CPU generators
    give the same noise whatever device the sampler runs on. dtype is part of the stream: a
    float64 draw is not a float32 draw cast up.
    """
    if len(generators) == 0:
        raise ValueError("randn_per_image needs at least one generator")
    rows = [
        torch.randn(shape, generator=generator, device=generator.device, dtype=dtype)
        for generator in generators
    ]  # B × (*shape)
    return torch.stack(rows).to(device)  # (B, *shape)
