"""The papers' own numbers, read only from configs/paper_values.yaml.

Tables put these beside measured values in columns labelled `paper`, each with its source; no
paper number lives anywhere else in the code base (STYLE.md, smells).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugaldiff.config import load_yaml
from frugaldiff.errors import ConfigError

DEFAULT_PATH = Path(__file__).resolve().parents[3] / "configs" / "paper_values.yaml"


@dataclass(frozen=True)
class PaperValue:
    """One number read in a source."""

    paper: str
    id: str
    metric: str
    value: float
    dataset: str | None
    setting: dict[str, Any]
    source: str


def load_paper_values(path: Path = DEFAULT_PATH) -> dict[str, PaperValue]:
    """All `results` entries keyed by '<paper>/<id>'."""
    data = load_yaml(path)
    values = {}
    for paper, block in data.items():
        if not isinstance(block, dict):
            continue
        for entry in block.get("results", []):
            key = f"{paper}/{entry['id']}"
            values[key] = PaperValue(
                paper=paper,
                id=entry["id"],
                metric=entry["metric"],
                value=float(entry["value"]),
                dataset=entry.get("dataset"),
                setting=entry.get("setting") or {},
                source=entry["source"],
            )
    return values


def paper_value(key: str, path: Path = DEFAULT_PATH) -> PaperValue:
    """One entry by '<paper>/<id>'; ConfigError naming the file if it is absent."""
    values = load_paper_values(path)
    if key not in values:
        raise ConfigError(f"{path}: no paper value {key!r}")
    return values[key]
