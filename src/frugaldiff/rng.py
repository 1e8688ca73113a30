"""Seed derivation: the only place seeds are made.

A seed for a purpose is a hash of a base seed and named keys, so e.g. image 17 of a sample set
gets the same noise whatever the batch size or process count (EDM's per-image seeds).
"""

import contextlib
import hashlib
from collections.abc import Iterator

import torch


def derive_seed(base_seed: int, *keys: object) -> int:
    """A 63-bit seed from a base seed and any printable keys (stable across runs and Pythons)."""
    text = "/".join([str(int(base_seed)), *(str(k) for k in keys)])
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh torch.Generator seeded with `seed` on `device`."""
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


@contextlib.contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """Seed torch's global RNG inside the block only, restoring it afterwards.

    Module constructors (nn.Linear, nn.Conv2d) draw their initial weights from the global RNG
    and take no generator; this is the one place that RNG is seeded, so two runs of one config
    start from the same weights.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield
