"""`frugaldiff report`: metrics files -> results/<tier>/report/{tables,figures}.

One entry point so the rule declares a fixed set of outputs; each study adds its own table and
figure builders beside the common FID-over-training pair.
"""

from pathlib import Path

from frugaldiff.io import atomic_write
from frugaldiff.report.collect import collect_metrics
from frugaldiff.report.plots import fid_vs_iteration, save_figure
from frugaldiff.report.tables import fid_over_training, write_table


def build_report(metrics_paths: list[Path], out_dir: Path, tier: str) -> list[Path]:
    """Write the tidy frame, tables and figures; return every path written."""
    tidy = collect_metrics(metrics_paths)
    written = []
    tidy_path = out_dir / "metrics_tidy.csv"
    with atomic_write(tidy_path) as tmp:
        tidy.to_csv(tmp, index=False)
    written.append(tidy_path)
    table = fid_over_training(tidy)
    written += write_table(
        table,
        out_dir / "tables" / "fid_over_training",
        f"FID over training, tier {tier} (measured; N images per set in n_images)",
    )
    figure = fid_vs_iteration(tidy, f"FID vs training iteration ({tier} tier)")
    written += save_figure(figure, out_dir / "figures" / "fid_vs_iteration")
    return written
