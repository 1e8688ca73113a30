"""The combined study: the three methods used together, which none of their papers measures.

Two comparisons, each at one seed and one budget per run (docs/combined.md):

1. SpeeD x masking. SpeeD's sampler and weighting (arXiv 2405.17403 Sec. 3.3-3.4) on a MicroDiT
   with deferred masking (arXiv 2407.15811 Sec. 3.2) at r = 0.5 / 0.75, against each alone and
   the unmasked baseline, every masked run followed by its unmasked fine-tuning.
   `speed_masking_table` gives one row per (method, masking, r) with its final FID (after the
   fine-tuning where there is one) and its whole training cost; `additivity_table` asks, per r,
   whether the two savings add: the FID they would give if their effects on FID added,
   FID(SpeeD) + FID(masked) - FID(baseline), beside the measured FID of the combination.
2. Teachers. Guided distillation (arXiv 2210.03142) of a SpeeD-trained CFG teacher against the
   same distillation of the baseline teacher, trained for the same iterations and batch:
   `teacher_table` gives each (model, sampler, steps, w) of both chains side by side.

Nothing here measures: FIDs, KIDs, FLOPs and seconds come from the metrics files and run
summaries, and a comparison whose runs are missing is left out, never filled in.
"""

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from frugaldiff.models.registry import MASKING_VARIANTS
from frugaldiff.report.distill import distill_table

BASELINE_TEACHER = "cfg-teacher"  # the method of the distill study's CFG teacher


def _final_rows(tidy: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The `metric` rows of each run's last checkpoint, indexed by run (one sample set each)."""
    rows = tidy[tidy["metric"] == metric]
    return rows.sort_values("iteration").groupby("run").tail(1).set_index("run")


def _costs(summaries: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """run -> (counted training FLOPs, measured device-seconds) of its own training."""
    costs = {}
    for _, row in summaries.iterrows():
        needed = ("train_flops_per_image", "batch_size", "step_seconds", "iterations")
        if any(key not in row or pd.isna(row[key]) for key in needed):
            continue
        flops = row["train_flops_per_image"] * row["batch_size"] * row["iterations"]
        costs.setdefault(row["run"], (float(flops), float(row["step_seconds"] * row["iterations"])))
    return costs


def speed_masking_table(tidy: pd.DataFrame, summaries: pd.DataFrame) -> pd.DataFrame:
    """One row per MicroDiT pre-training run: method, masking, r, FID before / after FT, cost."""
    patch = tidy[tidy["masking"].isin(MASKING_VARIANTS)] if "masking" in tidy else tidy.iloc[:0]
    fid, kid = _final_rows(patch, "fid"), _final_rows(patch, "kid_mean")
    costs = _costs(summaries)
    rows = []
    for run, row in fid[fid["init_from"].isna()].iterrows():
        tuned = fid[fid["init_from"] == run]
        ft_run = tuned.index[0] if len(tuned) else None
        final = ft_run or run
        spent = [costs.get(r, (float("nan"), float("nan"))) for r in (run, ft_run) if r]
        iterations = int(row["iteration"]) + (int(tuned["iteration"].iloc[0]) if ft_run else 0)
        rows.append(
            {
                "method": row["method"],
                "masking": row["masking"],
                "mask_ratio": float(row["mask_ratio"]),
                "run": run,
                "fine-tuned by": ft_run or "",
                "iterations": iterations,
                "FID before FT": row["value"] if ft_run else None,
                "FID": fid.loc[final, "value"],
                "KID": kid.loc[final, "value"] if final in kid.index else None,
                "train PFLOP": sum(f for f, _ in spent) / 1e15,
                "train device-h": sum(s for _, s in spent) / 3600,
                "n_images": int(fid.loc[final, "n_images"]),
            }
        )
    columns = ["method", "masking", "mask_ratio", "run", "fine-tuned by", "iterations"]
    columns += ["FID before FT", "FID", "KID", "train PFLOP", "train device-h", "n_images"]
    table = pd.DataFrame(rows, columns=columns)
    if table.empty:
        return table
    base = table[(table["method"] == "baseline") & (table["mask_ratio"] == 0)]["FID"]
    table["FID - baseline"] = table["FID"] - base.iloc[0] if len(base) == 1 else None
    return table.sort_values(["mask_ratio", "masking", "method"]).reset_index(drop=True)


def additivity_table(table: pd.DataFrame, method: str = "speed") -> pd.DataFrame:
    """Per masked setting: do SpeeD's and masking's effects on FID add?

    additive prediction = FID(method, unmasked) + FID(baseline, masked) - FID(baseline,
    unmasked); interaction = measured FID(method, masked) - prediction (< 0: better together
    than their separate effects suggest). Settings with a run missing are left out.
    """

    def fid(m: str, masking: str, r: float) -> float | None:
        hit = table[
            (table["method"] == m) & (table["masking"] == masking) & (table["mask_ratio"] == r)
        ]
        return float(hit["FID"].iloc[0]) if len(hit) == 1 else None

    base, alone = fid("baseline", "unmasked", 0.0), fid(method, "unmasked", 0.0)
    columns = ["masking", "mask_ratio", "FID baseline", f"FID {method}", "FID masked"]
    columns += [f"FID {method} + masked", "additive prediction", "interaction"]
    columns += [f"{method} gain unmasked", f"{method} gain masked"]
    rows = []
    masked = table[table["mask_ratio"] > 0][["masking", "mask_ratio"]].drop_duplicates()
    for _, setting in masked.iterrows():
        masking, r = setting["masking"], float(setting["mask_ratio"])
        mask_only, both = fid("baseline", masking, r), fid(method, masking, r)
        if None in (base, alone, mask_only, both):
            continue
        predicted = alone + mask_only - base
        values = [masking, r, base, alone, mask_only, both, predicted, both - predicted]
        rows.append(dict(zip(columns, [*values, base - alone, mask_only - both], strict=True)))
    return pd.DataFrame(rows, columns=columns)


def teacher_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Both distillation chains side by side: FID per (model, sampler, steps, w) per teacher.

    A chain is a CFG teacher (a run without init_from that some student starts from) and its
    students; its column `FID (<teacher's method>)`. With the baseline teacher and one other, a
    last column `<other> - cfg-teacher` is the other chain's FID minus the baseline's (< 0: the
    other teacher's model is better).
    """
    distill = tidy[~tidy["masking"].isin(MASKING_VARIANTS)] if "masking" in tidy else tidy
    if distill.empty:
        return pd.DataFrame()
    init = distill.groupby("run")["init_from"].first()
    teachers = sorted(set(init.dropna()) & set(init.index[init.isna()]))
    if not teachers:
        return pd.DataFrame()
    method = distill.groupby("run")["method"].first()
    chain = {t: method[t] for t in teachers}
    chain.update({run: method[parent] for run, parent in init.dropna().items() if parent in chain})
    table = distill_table(distill[distill["run"].isin(chain)])
    table["teacher"] = table["run"].map(chain)
    wide = table.pivot_table(
        index=["method", "sampler", "steps", "NFE", "w"],
        columns="teacher",
        values="FID",
        aggfunc="first",
    )
    wide.columns = [f"FID ({c})" for c in wide.columns]
    wide = wide.reset_index()
    others = sorted({chain[t] for t in teachers} - {BASELINE_TEACHER})
    if len(teachers) == 2 and len(others) == 1:
        other = others[0]
        wide[f"{other} - {BASELINE_TEACHER}"] = (
            wide[f"FID ({other})"] - wide[f"FID ({BASELINE_TEACHER})"]
        )
    return wide


def speed_masking_figure(table: pd.DataFrame, additivity: pd.DataFrame, title: str) -> plt.Figure:
    """(a) final FID per masking setting and method, the additive prediction marked; (b) FID
    against measured training device-hours."""
    sns.set_theme(style="whitegrid", context="paper")
    fig, (bars, cost) = plt.subplots(1, 2, figsize=(10.0, 3.8))
    data = table.copy()
    data["setting"] = [
        "unmasked" if r == 0 else f"{m} r={r:g}"
        for m, r in zip(data["masking"], data["mask_ratio"], strict=True)
    ]
    order = list(dict.fromkeys(data["setting"]))
    sns.barplot(data=data, x="setting", y="FID", hue="method", order=order, ax=bars)
    for _, row in additivity.iterrows():
        x = order.index(f"{row['masking']} r={row['mask_ratio']:g}")
        bars.scatter([x], [row["additive prediction"]], marker="_", s=400, color="black", zorder=3)
    if len(additivity):
        bars.plot([], [], marker="_", color="black", linestyle="", label="additive prediction")
    bars.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    bars.set_xlabel("")
    bars.set_title("final FID (after unmasked fine-tuning)")
    sns.scatterplot(
        data=data, x="train device-h", y="FID", hue="method", style="setting", s=60, ax=cost
    )
    cost.set_title("FID vs measured training device-hours")
    cost.legend(fontsize="x-small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def teacher_figure(table: pd.DataFrame, title: str) -> plt.Figure:
    """Students' FID against steps, one line per teacher and sampler, one panel per w."""
    sns.set_theme(style="whitegrid", context="paper")
    fid_columns = [c for c in table.columns if c.startswith("FID (")]
    long = table.melt(
        id_vars=["method", "sampler", "steps", "w"],
        value_vars=fid_columns,
        var_name="teacher",
        value_name="FID",
    ).dropna(subset=["FID"])
    long["teacher"] = long["teacher"].str.removeprefix("FID (").str.removesuffix(")")
    long["curve"] = long["teacher"] + ", " + long["sampler"]
    long = long[long["method"] != "teacher"]
    grid = sns.relplot(
        data=long, x="steps", y="FID", hue="curve", col="w", kind="line", marker="o", height=3.0
    )
    for ax in grid.axes.flat:
        ax.set_xscale("log", base=2)
    grid.figure.suptitle(title, y=1.04)
    return grid.figure
