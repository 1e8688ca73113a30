"""Guided distillation's table and figures (Meng et al. 2023): FID over steps x w x sampler.

Rows: the CFG teacher (DDIM or ancestral, 2 NFE per guided step), the stage-1 student and every
halving's N-step student (deterministic D = ddim, stochastic S = Meng's sampler, with its jump
model and the halving's train grid, docs/guided_distillation.md d), and Meng's "direct PD"
baseline's halvings (D, guided like the teacher: 2 NFE per step, docs/guided_distillation.md l),
each with its measured NFE per image and wall-clock seconds per 1k images. Figures: FID vs
steps per w, and the FID/IS trade-off over w (h); IS exists only with the logits weights, else
FID and KID vs w are drawn and the title says so. The paper's 1-step anchors (cited by DMD)
come from paper_values only.
"""

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from frugaldiff.report.paper_values import load_paper_values

PAPER_ONE_STEP = "meng2023_guided_distillation/cifar10_distilled_1step_fid_cited_by_dmd"
SAMPLER_NAMES = {"ddim": "D", "stochastic": "S", "ancestral": "ancestral"}
IS_UNAVAILABLE = "n/a (no logits weights)"
# (h): "FID–IS trade-off over w at 1, 4, 8 steps"; the ancestral teacher is always drawn.
TRADEOFF_STEPS = (1, 4, 8)


DIRECT = "direct PD"  # Meng et al.'s baseline: PD of the CFG teacher itself, no stage 1


def _method(row: pd.Series) -> str:
    if not row["init_from"]:
        return "teacher"
    kind = DIRECT if row["distill_stage"] == "direct" else "student"
    return f"{kind} ({int(row['student_steps'])}-step)"


def _optional(value: object) -> object:
    """A recorded optional field, or "" where the row has none (NaN / None)."""
    return "" if not isinstance(value, str) and pd.isna(value) else value


def distill_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, model, sampler, jump model, steps, w) at the model's last checkpoint."""
    tidy = tidy.copy()
    for column in ("init_from", "distill_stage", "jump_model", "train_grid"):  # no NaN keys
        if column not in tidy:
            tidy[column] = None
        tidy[column] = tidy[column].map(_optional).astype(object)
    keys = [
        "run",
        "init_from",
        "distill_stage",
        "student_steps",
        "iteration",
        "solver",
        "jump_model",
        "train_grid",
        "steps",
        "w",
        "nfe_per_image",
        "seconds_per_image",
        "n_images",
    ]
    # groupby, not pivot_table(dropna=False): that reindexes to the product of every key's
    # values (millions of rows for the cifar10 tier's unique seconds_per_image).
    grouped = tidy.groupby([*keys, "metric"], dropna=False, sort=False)["value"].first()
    wide = grouped.unstack("metric").reset_index()
    wide = wide.dropna(subset=["fid"])
    last = wide.groupby(["run", "student_steps"])["iteration"].transform("max")
    wide = wide[wide["iteration"] == last].copy()
    wide["method"] = wide.apply(_method, axis=1)
    wide["sampler"] = wide["solver"].map(SAMPLER_NAMES).fillna(wide["solver"])
    wide["s per 1k images"] = 1000 * wide["seconds_per_image"]
    one_step = load_paper_values()[PAPER_ONE_STEP]
    # Meng's 1-step anchor is their two-stage student's, never the direct baseline's.
    wide["paper FID"] = [
        one_step.value if (m.startswith("student") and s == 1) else None
        for m, s in zip(wide["method"], wide["steps"], strict=True)
    ]
    # Measured IS where the logits weights gave one, else the reason; never a made-up value.
    inception = wide["inception_score"] if "inception_score" in wide else pd.Series(dtype=float)
    wide["IS"] = [v if pd.notna(v) else IS_UNAVAILABLE for v in inception.reindex(wide.index)]
    wide["KID"] = wide["kid_mean"] if "kid_mean" in wide else float("nan")
    columns = [
        "run",
        "method",
        "sampler",
        "jump_model",
        "train_grid",
        "steps",
        "nfe_per_image",
        "w",
        "fid",
        "KID",
        "IS",
        "s per 1k images",
        "n_images",
        "paper FID",
    ]
    table = wide[columns].rename(
        columns={
            "nfe_per_image": "NFE",
            "fid": "FID",
            "jump_model": "jump model",
            "train_grid": "train grid",
        }
    )
    table.columns.name = None
    order = ["w", "method", "sampler", "jump model", "steps", "run"]
    return table.sort_values(order).reset_index(drop=True)


def _line_labels(table: pd.DataFrame, with_steps: bool) -> pd.Series:
    """A legend label per row: model kind, sampler (S with its jump model), maybe steps and run.

    The run is named only when the table holds several student runs (e.g. the cifar10 tier's
    `half`/`fine` and `same`/`student` chains), so their lines never merge.
    """
    students = table.loc[table["method"] != "teacher", "run"].unique()
    labels = []
    for _, row in table.iterrows():
        kind = row["method"] if with_steps else row["method"].split(" (")[0]
        label = f"{kind} {row['sampler']}"
        if row["sampler"] == "S" and row["jump model"]:
            label += f" {row['jump model']}"
        if with_steps:
            label += f", {int(row['steps'])} steps"
        if row["method"] != "teacher" and len(students) > 1:
            label = f"{row['run']}: {label}"
        labels.append(label)
    return pd.Series(labels, index=table.index)


def fid_vs_steps(table: pd.DataFrame, title: str) -> plt.Figure:
    """FID against sampler steps, one panel per w; lines per (model kind, sampler, jump model)."""
    sns.set_theme(style="whitegrid", context="paper")
    data = table.copy()
    data["model"] = _line_labels(data, with_steps=False)
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


def fid_is_tradeoff(
    table: pd.DataFrame, title: str, steps: tuple[int, ...] = TRADEOFF_STEPS
) -> plt.Figure:
    """FID against IS over w, one curve per (model, steps, sampler); (h)'s trade-off figure.

    Curves: rows at `steps` (all rows if none are) plus the ancestral teacher. Where no row has
    a measured IS (no logits weights offline), FID, and KID where measured, are drawn against
    w instead, and the title says so: IS is never invented.
    """
    data = table.copy()
    keep = data["steps"].isin(steps)
    if keep.any():
        data = data[keep | (data["sampler"] == "ancestral")]
    data["curve"] = _line_labels(data, with_steps=True)
    data["IS value"] = pd.to_numeric(data["IS"], errors="coerce")
    data = data.sort_values(["curve", "w"])
    sns.set_theme(style="whitegrid", context="paper")
    if data["IS value"].notna().any():
        data = data[data["IS value"].notna()]
        fig, ax = plt.subplots(figsize=(6.0, 4.0))
        sns.lineplot(data=data, x="IS value", y="FID", hue="curve", marker="o", sort=False, ax=ax)
        for _, row in data.iterrows():
            ax.annotate(
                f"w={row['w']:g}", (row["IS value"], row["FID"]), fontsize="x-small", alpha=0.7
            )
        ax.set_xlabel("IS")
        ax.set_ylabel("FID")
        ax.set_title(f"{title}: FID vs IS over w")
        ax.legend(fontsize="x-small", frameon=False)
        return fig
    metrics = ["FID"] + (["KID"] if data["KID"].notna().any() else [])
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sns.lineplot(data=data, x="w", y=metric, hue="curve", marker="o", sort=False, ax=ax)
        ax.set_xlabel("w (guidance weight)")
        ax.set_ylabel(metric)
        ax.legend(fontsize="x-small", frameon=False)
    shown = " and ".join(metrics)
    fig.suptitle(f"{title}: IS {IS_UNAVAILABLE}, so {shown} vs w instead", y=1.02)
    return fig
