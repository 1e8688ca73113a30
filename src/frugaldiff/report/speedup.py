"""SpeeD's speed-up: iterations the baseline needs for its final FID ÷ iterations a variant needs.

The iteration at which a variant first reaches the baseline's final FID is interpolated linearly
on a log-iteration axis between the two checkpoints that bracket it (FID curves are close to
linear in log-iterations). A variant that never gets there is "not reached"; one that is already
better at its first checkpoint gets a lower bound ("≥"). With several seeds per variant, FID and
speed-up are given as mean ± standard deviation over seeds.
"""

import itertools
import math

import numpy as np
import pandas as pd

from frugaldiff.report.collect import sample_set_label
from frugaldiff.report.paper_values import load_paper_values

BASELINE_METHOD = "baseline"
VARIANT_ORDER = (  # the paper's ablation, and the official only_sample component
    "baseline",
    "speed-sampler-nodual",
    "speed-sampler",
    "speed-weighting",
    "speed",
)
SPEEDUP_CLAIM = "wang2024_speed/claim_speedup_abstract"


def iterations_to_reach(
    iterations: list[int], fids: list[float], target: float
) -> tuple[float, str]:
    """(iterations needed, qualifier) with qualifier '' (interpolated), '<=' or 'not reached'."""
    pairs = sorted(zip(iterations, fids, strict=True))
    if pairs[0][1] <= target:
        return float(pairs[0][0]), "<="
    for (i1, f1), (i2, f2) in itertools.pairwise(pairs):
        if f2 <= target < f1:
            frac = (f1 - target) / (f1 - f2)
            return math.exp(math.log(i1) + frac * (math.log(i2) - math.log(i1))), ""
    return math.nan, "not reached"


def _format(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "n/a"
    if len(finite) == 1:
        return f"{finite[0]:.3g}"
    return f"{np.mean(finite):.3g} ± {np.std(finite, ddof=1):.2g}"


def speedup_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, sample set): FID at each checkpoint, speed-up vs the baseline."""
    fid = tidy[tidy["metric"] == "fid"]
    claim = load_paper_values()[SPEEDUP_CLAIM]
    rows = []
    for _, group in fid.groupby(["solver", "steps", "w"]):
        base = group[group["method"] == BASELINE_METHOD]
        if base.empty:
            continue
        per_seed = base.groupby("train_seed")
        targets = {seed: g.sort_values("iteration")["value"].iloc[-1] for seed, g in per_seed}
        final_iters = {seed: g["iteration"].max() for seed, g in per_seed}

        def order(item: tuple[str, pd.DataFrame]) -> tuple[int, str]:
            known = item[0] in VARIANT_ORDER
            return (VARIANT_ORDER.index(item[0]) if known else len(VARIANT_ORDER), item[0])

        for method, variant in sorted(group.groupby("method"), key=order):
            sampler = sample_set_label(variant.iloc[0])
            row: dict[str, object] = {"variant": method, "sampler": sampler}
            # The backbone each row trained: the paper's component ablation (Table 5) trains a
            # latent U-Net on FFHQ, so a component row on another backbone is a trend of that
            # backbone, not a Table 5 cell (docs/speed.md (k)); older metrics lack the field.
            models = sorted(variant["model"].dropna().unique()) if "model" in variant else []
            row["model"] = ", ".join(models) if models else "n/a (not recorded)"
            for iteration, at in variant.groupby("iteration"):
                row[f"FID@{iteration}"] = _format(at["value"].tolist())
            speedups, marks = [], set()
            for seed, seed_rows in variant.groupby("train_seed"):
                if seed not in targets:
                    continue
                needed, mark = iterations_to_reach(
                    seed_rows["iteration"].tolist(), seed_rows["value"].tolist(), targets[seed]
                )
                speedups.append(final_iters[seed] / needed if math.isfinite(needed) else math.nan)
                marks.add(mark)
            if "not reached" in marks and not any(math.isfinite(s) for s in speedups):
                row["speed-up (measured)"] = "not reached"
            else:
                prefix = "≥ " if "<=" in marks else ""
                row["speed-up (measured)"] = prefix + _format(speedups)
            row["seeds"] = variant["train_seed"].nunique()
            is_full_speed = method == "speed"
            row["speed-up (paper claim)"] = f"{claim.value:g}" if is_full_speed else ""
            rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        table.attrs["paper_source"] = claim.source
    return table
