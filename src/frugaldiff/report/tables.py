"""Tables from the tidy frame, each written as CSV, Markdown and LaTeX.

Measured values only; a `paper` column, where a study has one, comes from
configs/paper_values.yaml alone. A metric that could not be computed (IS without the logits
weights) shows its reason, never a number.
"""

from pathlib import Path

import pandas as pd

from frugaldiff.io import atomic_write

TABLE_FORMATS = ("csv", "md", "tex")


def fid_over_training(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, iteration, sample set): FID, clean-fid FID, KID, IS, NFE, s/image."""
    keys = ["run", "method", "student_steps", "iteration", "solver", "steps", "w"]
    sampler = [c for c in ("variance", "spacing") if c in tidy and tidy[c].notna().any()]
    facts = [*sampler, "nfe_per_image", "seconds_per_image", "n_images", "n_reference"]
    wide = tidy.pivot(index=keys, columns="metric", values="value").reset_index()
    wide.columns.name = None
    per_set = tidy.groupby(keys)[[*facts, "inception_score_note"]].first().reset_index()
    wide = per_set.merge(wide, on=keys, how="left")
    # IS without logits weights is a reason, not a number.
    note = wide.pop("inception_score_note")
    wide["inception_score"] = (
        wide["inception_score"].astype(object).where(wide["inception_score"].notna(), note)
    )
    order = [*keys, *facts, "fid", "fid_cleanfid", "kid_mean", "kid_std", "inception_score"]
    return wide[order].sort_values(["run", "iteration", "solver", "steps", "w"])


def write_table(table: pd.DataFrame, out_stem: Path, caption: str) -> list[Path]:
    """Write `table` as out_stem.{csv,md,tex}, atomically; return the paths."""
    paths = []
    for fmt in TABLE_FORMATS:
        target = out_stem.with_suffix(f".{fmt}")
        with atomic_write(target) as tmp:
            if fmt == "csv":
                table.to_csv(tmp, index=False)
            elif fmt == "md":
                tmp.write_text(f"{caption}\n\n{table.to_markdown(index=False, floatfmt='.4g')}\n")
            else:
                latex = table.to_latex(index=False, float_format="%.4g", caption=caption)
                tmp.write_text(latex)
        paths.append(target)
    return paths
