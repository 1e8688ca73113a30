"""Figures from the tidy frame (seaborn), each written as PNG and PDF.

FID against training iteration, one line per run and sample set, log-scaled iterations: the
shape of SpeeD's README curve and the first thing a reader checks.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: jobs run on cluster nodes without a display

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from frugaldiff.io import atomic_write
from frugaldiff.report.collect import sample_set_label

FIGURE_FORMATS = ("png", "pdf")


def save_figure(fig: plt.Figure, out_stem: Path) -> list[Path]:
    """Write `fig` as out_stem.{png,pdf} atomically and close it."""
    paths = []
    for fmt in FIGURE_FORMATS:
        target = out_stem.with_suffix(f".{fmt}")
        with atomic_write(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
        paths.append(target)
    plt.close(fig)
    return paths


def fid_vs_iteration(tidy: pd.DataFrame, title: str, floor: float | None = None) -> plt.Figure:
    """FID (torch-fidelity pipeline) vs training iteration, hue = run, style = sample set.

    `floor`: the data floor's FID (real held-out images at the same N), drawn as a grey line.
    """
    fid = tidy[tidy["metric"] == "fid"].copy()
    fid["sample set"] = fid.apply(sample_set_label, axis=1)
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    sns.lineplot(
        data=fid,
        x="iteration",
        y="value",
        hue="run",
        style="sample set",
        markers=True,
        dashes=False,
        ax=ax,
    )
    iterations = sorted(fid["iteration"].unique())
    if len(iterations) > 1 and iterations[0] > 0:
        ax.set_xscale("log")
        ax.set_xticks(iterations, [f"{int(i):,}" for i in iterations])
        ax.minorticks_off()
    if floor is not None:
        ax.axhline(floor, color="0.4", linestyle="--", linewidth=1, label="real images (floor)")
    n_images = sorted(fid["n_images"].unique())
    ax.set_xlabel("training iteration")
    ax.set_ylabel(f"FID ({', '.join(str(n) for n in n_images)} samples)")
    ax.set_title(title)
    ax.legend(fontsize="small", frameon=False)
    return fig
