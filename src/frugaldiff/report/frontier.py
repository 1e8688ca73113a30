"""One cost-to-quality frontier over every run of every study of a tier.

No paper of the three compares its method with the others on one cost axis; the harness can,
because every run records the same measurements. Each model a tier trained (every checkpoint,
every halving's student) is one point per sample set: FID (and KID) against

- training cost: counted training FLOPs (FlopCounterMode per image x batch x iterations, from
  train/summary.json) and measured device-seconds (step time x iterations), both cumulative
  over what the model was made from (a fine-tuning run adds its masked pre-training, a stage-1
  student its teacher, a halving every earlier halving);
- sampling cost: network evaluations per image (NFE) and measured seconds per 1,000 images.

A point is on the Pareto front of an axis when no point at a lower or equal cost has a lower
FID. Nothing here computes a metric: FID, KID, FLOPs and seconds are read from the records.
"""

import re
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from frugaldiff.errors import DataError
from frugaldiff.io import read_json
from frugaldiff.report.collect import sample_set_label

HALVING_DIR = re.compile(r"^n(\d+)$")


def load_run_costs(paths: list[Path]) -> pd.DataFrame:
    """train/summary.json of runs and halving/n<N>/summary.json of halvings -> cost rows.

    Columns: run, student_steps (None for a run's own training), flops_per_iteration (counted
    FLOPs per optimiser step), seconds_per_iteration (measured), iterations.
    """
    rows = []
    for path in paths:
        record = read_json(path)
        missing = {"run", "train_flops_per_image", "batch_size", "step_seconds", "iterations"}
        missing -= set(record)
        if missing:
            raise DataError(f"{path}: run summary lacks {sorted(missing)}")
        halving = HALVING_DIR.match(Path(path).parent.name)
        rows.append(
            {
                "run": record["run"],
                "student_steps": int(halving.group(1)) if halving else None,
                "flops_per_iteration": record["train_flops_per_image"] * record["batch_size"],
                # A run that made no update (a direct run's stage) measured no step time and
                # spent none.
                "seconds_per_iteration": record["step_seconds"] if record["iterations"] else 0.0,
                "iterations": record["iterations"],
            }
        )
    columns = ["run", "student_steps", "flops_per_iteration", "seconds_per_iteration"]
    return pd.DataFrame(rows, columns=[*columns, "iterations"])


def _halving_steps(costs: pd.DataFrame, run: str) -> set[int]:
    halvings = costs[(costs["run"] == run) & costs["student_steps"].notna()]
    return set(halvings["student_steps"].astype(int))


def _is_halving(row: pd.Series, costs: pd.DataFrame) -> bool:
    """A halving's student (its checkpoint is halving/n<N>), not a checkpoint of the run."""
    steps = row.get("student_steps")
    return pd.notna(steps) and int(steps) in _halving_steps(costs, row["run"])


def _full(costs: pd.DataFrame, run: str, what: str) -> pd.Series:
    own = costs[(costs["run"] == run) & costs["student_steps"].isna()]
    if own.empty:
        raise DataError(f"{what}: no train/summary.json of run {run!r} among the summaries")
    return own.iloc[0]


def _training_cost(
    row: pd.Series, halving: bool, costs: pd.DataFrame, init: dict[str, str | None]
) -> tuple[float, float]:
    """(FLOPs, device-seconds) that made the model of a metrics row, cumulative."""
    run = row["run"]
    own = _full(costs, run, f"run {run!r}")
    if halving:  # all of stage 1, then every halving down to this student
        flops = own["flops_per_iteration"] * own["iterations"]
        seconds = own["seconds_per_iteration"] * own["iterations"]
        mine = costs[(costs["run"] == run) & costs["student_steps"].notna()]
        done = mine[mine["student_steps"].astype(int) >= int(row["student_steps"])]
        flops += (done["flops_per_iteration"] * done["iterations"]).sum()
        seconds += (done["seconds_per_iteration"] * done["iterations"]).sum()
    else:  # a checkpoint of the run's own training
        flops = own["flops_per_iteration"] * row["iteration"]
        seconds = own["seconds_per_iteration"] * row["iteration"]
    parent = init.get(run)
    while parent:  # what the run started from, in full
        base = _full(costs, parent, f"run {run!r} starts from {parent!r}")
        flops += base["flops_per_iteration"] * base["iterations"]
        seconds += base["seconds_per_iteration"] * base["iterations"]
        parent = init.get(parent)
    return float(flops), float(seconds)


def on_front(costs: pd.Series, fids: pd.Series) -> pd.Series:
    """True where no point of lower or equal cost has a lower FID (sorted by cost, then FID)."""
    order = pd.DataFrame({"cost": costs, "fid": fids}).sort_values(["cost", "fid"])
    best, front = float("inf"), {}
    for index, point in order.iterrows():
        front[index] = point["fid"] < best
        best = min(best, point["fid"])
    return pd.Series(front).reindex(costs.index)


# What identifies one measured model x sample set in the tidy frame (one value per metric).
KEYS = ("study", "run", "init_from", "iteration", "student_steps", "solver", "steps", "w")
KEYS += ("jump_model", "variance", "spacing", "nfe_per_image", "seconds_per_image")


def frontier_table(tidy: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, sample set): FID, KID, training and sampling cost, front flags."""
    tidy = tidy.copy()
    keys = [k for k in KEYS if k in tidy]
    for key in keys:  # no NaN keys in the grouping
        tidy[key] = tidy[key].astype(object).where(tidy[key].notna(), None)
    grouped = tidy.groupby([*keys, "metric"], dropna=False, sort=False)["value"].first()
    wide = grouped.unstack("metric").reset_index()
    wide = wide[wide["fid"].notna()].reset_index(drop=True)
    init = dict(zip(wide["run"], wide.get("init_from", [None] * len(wide)), strict=True))
    init = {r: (i if isinstance(i, str) and i else None) for r, i in init.items()}
    rows = [row for _, row in wide.iterrows()]
    halvings = [_is_halving(row, costs) for row in rows]  # halving/n<N> students
    spent = [_training_cost(r, h, costs, init) for r, h in zip(rows, halvings, strict=True)]
    models = [
        f"n{int(r['student_steps'])}" if h else f"iter{int(r['iteration'])}"
        for r, h in zip(rows, halvings, strict=True)
    ]
    table = pd.DataFrame(
        {
            "study": wide["study"],
            "run": wide["run"],
            "model": models,
            "sampler": [sample_set_label(row) for _, row in wide.iterrows()],
            "FID": wide["fid"].astype(float),
            "KID": wide["kid_mean"].astype(float) if "kid_mean" in wide else float("nan"),
            "train PFLOP": [f / 1e15 for f, _ in spent],
            "train device-h": [s / 3600 for _, s in spent],
            "NFE/img": wide["nfe_per_image"].astype(float),
            "s per 1k img": 1000 * wide["seconds_per_image"].astype(float),
        }
    )
    table["front (train)"] = on_front(table["train PFLOP"], table["FID"])
    table["front (sampling)"] = on_front(table["NFE/img"], table["FID"])
    return table.sort_values(["train PFLOP", "FID"]).reset_index(drop=True)


def frontier_figure(table: pd.DataFrame, x: str, front: str, title: str) -> plt.Figure:
    """FID against one cost axis (log), one colour per study, the Pareto front as a line."""
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.scatterplot(data=table, x=x, y="FID", hue="study", style="study", s=45, ax=ax)
    best = table[table[front]].sort_values(x)
    ax.step(best[x], best["FID"], where="post", color="black", linewidth=1.0, label="Pareto front")
    for _, row in best.iterrows():
        ax.annotate(f"{row['run']} {row['model']}", (row[x], row["FID"]), fontsize="xx-small")
    ax.set_xscale("log")
    ax.set_title(title)
    ax.legend(fontsize="x-small", frameon=False)
    return fig


def build_frontier(
    metrics_paths: list[Path], summary_paths: list[Path], out_dir: Path, tier: str
) -> list[Path]:
    """Write report/frontier/: the table (csv, md, tex) and the two figures; return the paths."""
    from frugaldiff.report.collect import collect_metrics

    tidy = collect_metrics(metrics_paths)
    return write_frontier(tidy, load_run_costs(summary_paths), out_dir, tier)


def write_frontier(tidy: pd.DataFrame, costs: pd.DataFrame, out_dir: Path, tier: str) -> list[Path]:
    """The frontier of a tidy metrics frame and its cost rows: out_dir/{tables,figures}."""
    from frugaldiff.report.plots import save_figure
    from frugaldiff.report.tables import write_table

    table = frontier_table(tidy, costs)
    n_images = sorted({int(n) for n in tidy["n_images"].unique()})
    caption = (
        f"Cost-to-quality frontier, tier {tier}: every model (checkpoint or halving student) x "
        f"sample set of every study; FID and KID from {n_images} samples; training cost counted "
        "(FLOPs) and measured (device-hours), cumulative over the runs a model starts from; "
        "sampling cost as NFE per image and measured seconds per 1,000 images; front = no "
        "point at a lower or equal cost has a lower FID"
    )
    written = write_table(table, out_dir / "tables" / "frontier", caption)
    figures = {
        "fid_vs_training_flops": frontier_figure(
            table, "train PFLOP", "front (train)", f"{tier}: FID vs training PFLOP (counted)"
        ),
        "fid_vs_sampling_nfe": frontier_figure(
            table, "NFE/img", "front (sampling)", f"{tier}: FID vs sampling NFE per image"
        ),
    }
    for name, figure in figures.items():
        written += save_figure(figure, out_dir / "figures" / name)
    return written
