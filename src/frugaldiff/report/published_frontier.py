"""The cost-to-quality frontier of a publication (docs/results/<tier>/), built from what it holds.

A tier whose studies do not fit one session (the cpu tier on 2 cores) is published one study at
a time, each from the clean commit that ran it, and no single results tree ever holds every
study's runs. `snakemake frontier` needs that tree; this module needs only the publication:
each published study keeps its tidy metrics (metrics_tidy.csv) and its runs' cost records
(summaries/<run>/train/summary.json and summaries/<run>/halving/n<N>/summary.json, copied by
`frugaldiff publish`), and the frontier over every published study is rebuilt from them on each
publish. Nothing is recomputed: FID, KID, counted FLOPs and measured seconds are read as
recorded. A study published before cost records were kept is left out and named.
"""

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from frugaldiff.report.frontier import load_run_costs, write_frontier

FRONTIER_DIR = "frontier"
SUMMARIES_DIR = "summaries"


@dataclass
class PublishedFrontier:
    """Which published studies the frontier covers, and which it cannot (no cost records)."""

    included: list[str] = field(default_factory=list)
    missing_costs: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def cost_records(study_dir: Path) -> list[Path]:
    """A published study's training and halving summaries, in a stable order."""
    root = study_dir / SUMMARIES_DIR
    return sorted(root.glob("*/train/summary.json")) + sorted(
        root.glob("*/halving/n*/summary.json")
    )


def _tidy(study_dir: Path) -> pd.DataFrame:
    tidy = pd.read_csv(study_dir / "metrics_tidy.csv")
    if "study" not in tidy:  # published before metrics recorded their study
        tidy["study"] = study_dir.name
    tidy["study"] = tidy["study"].fillna(study_dir.name)
    return tidy


def build_published_frontier(out: Path, studies: list[str], tier: str) -> PublishedFrontier:
    """Rebuild out/frontier/ from the published studies that hold cost records.

    A run published in two studies (a teacher shared through `also_in`) is one point: its rows
    are kept once per metrics file, its cost records once per (run, halving).
    """
    result = PublishedFrontier()
    tidies, summaries = [], []
    for study in studies:
        records = cost_records(out / study)
        if not records:
            result.missing_costs.append(study)
            continue
        result.included.append(study)
        tidies.append(_tidy(out / study))
        summaries += records
    if not result.included:
        return result
    tidy = pd.concat(tidies, ignore_index=True).drop_duplicates(["source", "metric"])
    costs = load_run_costs(summaries).drop_duplicates(["run", "student_steps"])
    target = out / FRONTIER_DIR
    result.written = write_frontier(tidy, costs.reset_index(drop=True), target, tier)
    return result


def frontier_section(out: Path, frontier: PublishedFrontier) -> list[str]:
    """The README section: what the frontier covers, its table, its two figures."""
    lines = ["", "## Frontier over the published studies", ""]
    if frontier.included:
        names = ", ".join(f"`{s}`" for s in frontier.included)
        lines += [
            f"Every model x sample set of {names}: FID against counted training FLOPs and",
            "against sampling NFE, with the Pareto front (no cheaper point has a lower FID)",
            "drawn as a line. Read a point on the front as the best FID this tier bought at",
            "that cost; a point above the line was beaten by a cheaper one.",
            "",
        ]
        table = out / FRONTIER_DIR / "tables" / "frontier.md"
        lines += [table.read_text().strip(), ""]
        for figure in ("fid_vs_training_flops", "fid_vs_sampling_nfe"):
            lines += [f"![{figure}]({FRONTIER_DIR}/figures/{figure}.png)", ""]
    if frontier.missing_costs:
        names = ", ".join(f"`{s}`" for s in frontier.missing_costs)
        lines += [
            f"Not in the frontier: {names}, published before `frugaldiff publish` kept the runs'",
            "cost records (summaries/); publish them again to include them.",
        ]
    return lines
