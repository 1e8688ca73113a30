"""The sample-grid figure of a study: what each run's final model draws, beside its FID.

A FID says how far samples are from the data; a grid says what they look like (noise, colour
blobs, objects), which is what a reader checks first when a number looks surprising. Each
sample set writes its grid (the first 64 images, `sampling/generate.py`); the metrics record
names it (`grid`), so the report shows exactly the images the number was measured on.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from frugaldiff.errors import DataError
from frugaldiff.report.collect import sample_set_label

COLUMNS = 4  # panels per row
PANEL_INCHES = 2.4


def final_sets(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, sample set) at the run's final model, with its FID and grid path.

    The final model is the last checkpoint of a training run, or the fewest-step student of a
    progressive-distillation chain (its halvings carry `student_steps` > 0; the tidy frame
    stores 0 for a training checkpoint).
    """
    fid = tidy[(tidy["metric"] == "fid") & tidy["grid"].notna()].copy()
    rows = []
    for _, run in fid.groupby("run", sort=False):
        steps = run.get("student_steps", pd.Series(0, index=run.index))
        steps = steps.where(steps > 0)
        if steps.notna().any():
            final = run[steps == steps.min()]
        else:
            final = run[run["iteration"] == run["iteration"].max()]
        rows.append(final)
    return pd.concat(rows) if rows else fid


def sample_grids(tidy: pd.DataFrame, title: str) -> plt.Figure:
    """A panel per (run, sample set) of the final models: its grid, titled with run, set, FID."""
    if "grid" not in tidy:
        tidy = tidy.assign(grid=None)
    sets = final_sets(tidy)
    n = max(len(sets), 1)
    cols = min(COLUMNS, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(PANEL_INCHES * cols, (PANEL_INCHES + 0.5) * rows), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, sets.iterrows(), strict=False):
        path = Path(str(row["grid"]))
        if not path.is_file():
            raise DataError(f"{row['source']}: its sample grid {path} is missing")
        ax.imshow(np.asarray(Image.open(path).convert("RGB")), interpolation="nearest")
        stage = (
            f"{int(row['student_steps'])}-step student"
            if row.get("student_steps", 0) > 0
            else f"iter {int(row['iteration']):,}"
        )
        ax.set_title(
            f"{row['run']} ({stage})\n{sample_set_label(row)}\nFID {row['value']:.1f}",
            fontsize=7,
        )
    if sets.empty:
        axes.flat[0].text(0.5, 0.5, "no sample grids recorded", ha="center", va="center")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
