"""Gather every metrics file of a tier into one tidy pandas frame: one row per (sample set, metric).

Tidy (long) form keeps tables and plots one `pivot`/`hue` away from any grouping a study needs;
the provenance of each number travels in the same row (commit, config hash, weights, N).
"""

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from frugaldiff.errors import DataError
from frugaldiff.io import read_json

ID_COLUMNS = (
    "tier",
    "run",
    "method",
    "iteration",
    "solver",
    "steps",
    "w",
    "nfe_per_image",
    "seconds_per_image",
    "n_images",
    "n_reference",
    "reference_split",
)
OPTIONAL_COLUMNS = (
    "study",
    "variant",
    "model",  # model.name of the run
    "mask_ratio",
    "masking",  # unmasked | naive | deferred | none, from the model and mask ratio
    "init_from",
    "distill_stage",  # none | guidance | direct (Meng's baseline, guided at sampling)
    "student_steps",
    "jump_model",
    "train_grid",
    "variance",  # ancestral: large | small | learned
    "spacing",  # trailing | iddpm
    "grid",  # the sample set's grid.png (the first 64 images the metrics were measured on)
)
METRICS = ("fid", "fid_cleanfid", "kid_mean", "kid_std", "inception_score")


def metrics_row(path: Path) -> dict[str, object]:
    """Flatten one metrics JSON (written by `frugaldiff evaluate`) into a wide row."""
    record = read_json(path)
    try:
        row = {key: record[key] for key in ID_COLUMNS}
        row.update({key: record.get(key) for key in OPTIONAL_COLUMNS})
        row.update({key: record["metrics"][key] for key in METRICS})
        row["inception_score_note"] = record["metrics"].get("inception_score_note")
        row["git_commit"] = record["provenance"]["git_commit"]
        row["config_hash"] = record["provenance"]["config_hash"]
        row["train_seed"] = record["provenance"].get("train_seed")
        row["weights_sha256"] = record["provenance"]["weights_sha256"]
    except KeyError as err:
        raise DataError(f"{path}: metrics file lacks key {err}") from err
    row["source"] = str(path)
    return row


def sample_set_label(row: Mapping[str, object] | pd.Series) -> str:
    """'ancestral 16 w=0 (learned Σ, iddpm spacing)': a sample set as tables and legends name it.

    Solver, steps and w identify a set within a run; a variance or a spacing other than the
    defaults is shown too, so two runs' sets that differ only there never read the same.
    """
    label = f"{row['solver']} {int(row['steps'])} w={float(row['w']):g}"
    extras = []
    variance, spacing = row.get("variance"), row.get("spacing")
    if isinstance(variance, str):
        extras.append(f"{variance} Σ")
    if isinstance(spacing, str) and spacing != "trailing":
        extras.append(f"{spacing} spacing")
    return f"{label} ({', '.join(extras)})" if extras else label


def collect_metrics(paths: Iterable[Path]) -> pd.DataFrame:
    """Tidy frame: ID columns + provenance + (metric, value), one row per metric."""
    rows = [metrics_row(Path(p)) for p in paths]
    if not rows:
        raise DataError("no metrics files given to the report")
    wide = pd.DataFrame(rows)
    wide["variant"] = wide["variant"].fillna(wide["method"])
    # 0 = not a distilled student (stage-1 and halving students carry their step count).
    wide["student_steps"] = wide["student_steps"].fillna(0).astype(int)
    keep = [c for c in wide.columns if c not in METRICS]
    tidy = wide.melt(id_vars=keep, value_vars=list(METRICS), var_name="metric", value_name="value")
    return tidy.sort_values(["run", "iteration", "solver", "steps", "w", "metric"]).reset_index(
        drop=True
    )
