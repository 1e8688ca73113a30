"""`frugaldiff report`: a study's metrics files -> results/<tier>/report/<study>/.

Every study writes the same fixed set of files, so one rule declares them: the tidy frame, the
FID-over-training table, a summary table in the shape of the study's paper table (SpeeD's
speed-up for `speed`; the FID-over-training table itself for `baseline`) and the FID-vs-iteration
figure. Studies add their own summary builder to STUDY_SUMMARIES.
"""

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from frugaldiff.errors import ConfigError
from frugaldiff.io import atomic_write
from frugaldiff.report.collect import collect_metrics
from frugaldiff.report.plots import fid_vs_iteration, save_figure
from frugaldiff.report.speedup import speedup_table
from frugaldiff.report.tables import fid_over_training, write_table

STUDY_SUMMARIES: dict[str, tuple[str, Callable[[pd.DataFrame], pd.DataFrame]]] = {
    "baseline": ("FID over training (measured)", fid_over_training),
    "speed": (
        "SpeeD: FID per checkpoint and speed-up = baseline iterations to its final FID / "
        "variant iterations to the same FID (log-iteration interpolation); paper column: the "
        "abstract's ~3x claim",
        speedup_table,
    ),
}


def build_report(metrics_paths: list[Path], out_dir: Path, tier: str, study: str) -> list[Path]:
    """Write the study's tidy frame, tables and figure under out_dir; return every path."""
    if study not in STUDY_SUMMARIES:
        raise ConfigError(f"study={study!r}; expected one of {sorted(STUDY_SUMMARIES)}")
    tidy = collect_metrics(metrics_paths)
    written = []
    tidy_path = out_dir / "metrics_tidy.csv"
    with atomic_write(tidy_path) as tmp:
        tidy.to_csv(tmp, index=False)
    written.append(tidy_path)
    written += write_table(
        fid_over_training(tidy),
        out_dir / "tables" / "fid_over_training",
        f"FID over training, study {study}, tier {tier} (measured; N images per set in n_images)",
    )
    caption, builder = STUDY_SUMMARIES[study]
    written += write_table(builder(tidy), out_dir / "tables" / "summary", f"{caption}; tier {tier}")
    figure = fid_vs_iteration(tidy, f"{study}: FID vs training iteration ({tier} tier)")
    written += save_figure(figure, out_dir / "figures" / "fid_vs_iteration")
    return written
