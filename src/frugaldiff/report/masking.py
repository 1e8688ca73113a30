"""MicroDiT's masking ablation: FID per (variant, mask ratio), before and after fine-tuning.

Rows are pre-training runs (no init_from); a fine-tuning run (init_from = a pre-training run)
adds its FID to that row. Cost columns come from each run's train/summary.json: measured
images/s and step time, and training FLOPs per image counted by torch's FlopCounterMode.
The paper columns hold the three Fig. 4 cells read from configs/paper_values.yaml (text-to-image
at 256², so only the trend is comparable; docs/microdit.md (j)).
"""

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from frugaldiff.report.paper_values import load_paper_values

PAPER_KEYS = {  # (variant, mask ratio) -> paper_values.yaml entry
    ("deferred", 0.75): "sehwag2024_microdit/mask75_deferred",
    ("naive", 0.75): "sehwag2024_microdit/mask75_naive",
    ("unmasked", 0.0): "sehwag2024_microdit/mask0_unmasked",
}


def masked_table(tidy: pd.DataFrame, summaries: pd.DataFrame) -> pd.DataFrame:
    """One row per pre-training run: variant, r, FID, FID after FT, cost, paper FID."""
    fid = tidy[tidy["metric"] == "fid"]
    final = fid.sort_values("iteration").groupby("run").tail(1).set_index("run")
    values = load_paper_values()
    cost = summaries.set_index("run")
    rows = []
    for run, row in final[final["init_from"].isna()].iterrows():
        tuned = final[final["init_from"] == run]
        # The recorded masking mode, not the free-text label (older metrics have only that).
        mode = row["masking"] if isinstance(row.get("masking"), str) else row["variant"]
        key = PAPER_KEYS.get((mode, float(row["mask_ratio"])))
        paper = values.get(key) if key else None
        rows.append(
            {
                "variant": mode,
                "mask_ratio": row["mask_ratio"],
                "run": run,
                "iterations": int(row["iteration"]),
                "FID": row["value"],
                "FID after FT": tuned["value"].iloc[0] if len(tuned) else None,
                "n_images": int(row["n_images"]),
                "images/s": cost.loc[run, "images_per_second"] if run in cost.index else None,
                "step ms": 1e3 * cost.loc[run, "step_seconds"] if run in cost.index else None,
                "train GFLOP/img": cost.loc[run, "train_flops_per_image"] / 1e9
                if run in cost.index
                else None,
                "params": int(cost.loc[run, "parameters"]) if run in cost.index else None,
                "paper FID (text-to-image)": paper.value if paper else None,
            }
        )
    return pd.DataFrame(rows).sort_values(["mask_ratio", "variant"]).reset_index(drop=True)


def fid_vs_mask_ratio(table: pd.DataFrame, title: str) -> plt.Figure:
    """FID against mask ratio per variant; fine-tuned FIDs dashed; paper points hollow."""
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    long = table.melt(
        id_vars=["variant", "mask_ratio"], value_vars=["FID", "FID after FT"], var_name="stage"
    ).dropna(subset=["value"])
    sns.lineplot(
        data=long, x="mask_ratio", y="value", hue="variant", style="stage", markers=True, ax=ax
    )
    paper = table.dropna(subset=["paper FID (text-to-image)"])
    ax.scatter(
        paper["mask_ratio"],
        paper["paper FID (text-to-image)"],
        facecolors="none",
        edgecolors="black",
        label="paper (text-to-image, 256²)",
    )
    ax.set_xlabel("mask ratio r")
    ax.set_ylabel(f"FID ({', '.join(str(n) for n in sorted(table['n_images'].unique()))} samples)")
    ax.set_title(title)
    ax.legend(fontsize="small", frameon=False)
    return fig


def fid_vs_training_cost(table: pd.DataFrame, title: str) -> plt.Figure:
    """FID against counted training GFLOP per image, one point per (variant, r)."""
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    sns.scatterplot(
        data=table, x="train GFLOP/img", y="FID", hue="variant", style="mask_ratio", s=60, ax=ax
    )
    ax.set_xlabel("training GFLOP per image (counted)")
    ax.set_title(title)
    ax.legend(fontsize="small", frameon=False)
    return fig
