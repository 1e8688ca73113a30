"""Guided distillation's table and figure (Meng et al. 2023): FID over steps x w x sampler.

Rows: the CFG teacher (DDIM or ancestral, 2 NFE per guided step), the stage-1 student and every
halving's N-step student (deterministic D = ddim, stochastic S = Meng's sampler), each with its
measured NFE per image and wall-clock seconds per 1k images. The paper's 1-step anchors (cited
by DMD) come from configs/paper_values.yaml only.
"""

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from frugaldiff.report.paper_values import load_paper_values

PAPER_ONE_STEP = "meng2023_guided_distillation/cifar10_distilled_1step_fid_cited_by_dmd"
SAMPLER_NAMES = {"ddim": "D", "stochastic": "S", "ancestral": "ancestral"}


def _method(row: pd.Series) -> str:
    if row["init_from"] is None or pd.isna(row["init_from"]):
        return "teacher"
    return f"student ({int(row['student_steps'])}-step)"


def distill_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, sampler, steps, w) at the model's last checkpoint."""
    wide = tidy.pivot_table(
        index=[
            "run",
            "init_from",
            "student_steps",
            "iteration",
            "solver",
            "steps",
            "w",
            "nfe_per_image",
            "seconds_per_image",
            "n_images",
        ],
        columns="metric",
        values="value",
        aggfunc="first",
        dropna=False,
    ).reset_index()
    wide = wide.dropna(subset=["fid"])
    last = wide.groupby(["run", "student_steps"])["iteration"].transform("max")
    wide = wide[wide["iteration"] == last].copy()
    wide["method"] = wide.apply(_method, axis=1)
    wide["sampler"] = wide["solver"].map(SAMPLER_NAMES).fillna(wide["solver"])
    wide["s per 1k images"] = 1000 * wide["seconds_per_image"]
    one_step = load_paper_values()[PAPER_ONE_STEP]
    wide["paper FID"] = [
        one_step.value if (m != "teacher" and s == 1) else None
        for m, s in zip(wide["method"], wide["steps"], strict=True)
    ]
    wide["IS"] = "n/a (no logits weights)"
    columns = [
        "method",
        "sampler",
        "steps",
        "nfe_per_image",
        "w",
        "fid",
        "IS",
        "s per 1k images",
        "n_images",
        "paper FID",
    ]
    table = wide[columns].rename(columns={"nfe_per_image": "NFE", "fid": "FID"})
    return table.sort_values(["w", "method", "sampler", "steps"]).reset_index(drop=True)


def fid_vs_steps(table: pd.DataFrame, title: str) -> plt.Figure:
    """FID against sampler steps, one panel per w; lines per (model kind, sampler)."""
    sns.set_theme(style="whitegrid", context="paper")
    data = table.copy()
    data["model"] = (
        data["method"].where(data["method"] == "teacher", "student") + " " + data["sampler"]
    )
    grid = sns.relplot(
        data=data,
        x="steps",
        y="FID",
        hue="model",
        col="w",
        kind="line",
        marker="o",
        height=3.0,
        aspect=1.1,
        facet_kws={"sharey": False},
    )
    for ax in grid.axes.flat:
        ax.set_xscale("log", base=2)
    grid.figure.suptitle(title, y=1.04)
    return grid.figure
