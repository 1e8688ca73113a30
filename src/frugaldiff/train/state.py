"""Checkpoints (DAG outputs) and resumable training state (undeclared, under state/).

Both are plain dicts of tensors and config dicts saved with torch.save and read back with
weights_only=True: no pickled modules (STYLE.md, after EDM). Writes are atomic, so a job killed
while saving keeps its previous good state.
"""

from pathlib import Path
from typing import Any

import torch

from frugaldiff.errors import CheckpointError
from frugaldiff.io import atomic_write

CHECKPOINT_FORMAT = 1


def save_torch(path: Path | str, payload: dict[str, Any]) -> None:
    """torch.save `payload` atomically (temp file beside `path`, then rename)."""
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)


def load_torch(path: Path | str, what: str = "checkpoint") -> dict[str, Any]:
    """Load a dict saved by save_torch on the CPU; CheckpointError naming the path otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(f"{path}: unreadable {what} ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: {what} is not a dict")
    return payload


def checkpoint_payload(
    model: torch.nn.Module, ema: torch.nn.Module, run_config: dict[str, Any], iteration: int
) -> dict[str, Any]:
    """What a checkpoint holds: raw and EMA weights plus the resolved run config."""
    return {
        "format": CHECKPOINT_FORMAT,
        "iteration": iteration,
        "run_config": run_config,
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "ema": {k: v.detach().clone() for k, v in ema.state_dict().items()},
    }


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read a checkpoint and check it has the keys the samplers need."""
    payload = load_torch(path)
    missing = {"format", "iteration", "run_config", "model", "ema"} - set(payload)
    if missing:
        raise CheckpointError(f"{path}: not a frugaldiff checkpoint (missing {sorted(missing)})")
    if payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {payload['format']}, expected {CHECKPOINT_FORMAT}"
        )
    return payload
