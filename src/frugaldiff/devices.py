"""Device choice: a job that asks for a GPU fails clearly when there is none.

Silently training on the CPU after asking for CUDA would turn an hour into a week; "auto" is the
only setting that falls back (issue 7, faults).
"""

import torch

from frugaldiff.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """'auto' → cuda if available else cpu; 'cuda' without a GPU → ConfigError."""
    if name not in DEVICES:
        raise ConfigError(f"device={name!r}; expected one of {list(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device='cuda' but torch sees no GPU (torch.cuda.is_available() is False); "
            "set device: auto or cpu in the tier config to allow the CPU"
        )
    return torch.device(name)
