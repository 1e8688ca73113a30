"""Publish a tier's measured report under docs/results/<tier>/ with what made it.

Each study's table and figures are committed "with the config and commit that made them". A
copy of report/<study>/ alone loses that, so each published study also holds every run's
resolved config, the tier's resolved blocks, the commits and packages read from the metrics
files, the devices and throughput from the training summaries, and the job time per rule from
Snakemake's benchmark files (<study>/provenance.json). The tier's README.md inlines every
published study's tables and figures, so a reader sees the results on the repository page.

A publication grows one study at a time: a tier whose studies do not fit one session (the cpu
tier on 2 cores) publishes each study from the clean commit that ran it, and publishing a study
keeps the others already there. Each study section names its own commit. Each study also keeps
its runs' cost records (<study>/summaries/), and every publish rebuilds the tier's cost-to-quality
frontier over all published studies from them (report/published_frontier.py).

Only measured files are copied: nothing here computes or rewrites a number. A study is refused
when its metrics came from more than one commit or from a dirty tree (pass allow_dirty to
publish anyway; its section then says so), and a study already published is never replaced
unless force is given.
"""

import csv
import datetime
import json
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from frugaldiff.errors import DataError, FrugaldiffError
from frugaldiff.io import ensure_writable_dir
from frugaldiff.report.published_frontier import (
    FRONTIER_DIR,
    SUMMARIES_DIR,
    build_published_frontier,
    frontier_section,
)

TIDY = "metrics_tidy.csv"


def _studies(tier_dir: Path, studies: list[str] | None) -> list[str]:
    report = tier_dir / "report"
    found = sorted(p.name for p in report.glob("*") if (p / TIDY).is_file())
    if studies is None:
        if not found:
            raise FrugaldiffError(
                f"{report}: no study report (report/<study>/{TIDY}); build it first with "
                f"`snakemake --configfile <tier config> --cores all`"
            )
        return found
    for study in studies:
        if study not in found:
            raise FrugaldiffError(
                f"study {study!r}: {report / study / TIDY} does not exist; build it with "
                f"`snakemake {report / study / TIDY}` (reports found: {found})"
            )
    return studies


def _commits(tidy: pd.DataFrame) -> list[str]:
    return sorted({str(c) for c in tidy["git_commit"].dropna()})


def _job_seconds(run_dir: Path) -> dict[str, float]:
    """Wall seconds per rule summed over the run's Snakemake benchmark files."""
    seconds: dict[str, float] = defaultdict(float)
    for tsv in sorted((run_dir / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(run_dir / "benchmarks").parts[0].removesuffix(".tsv")
        with tsv.open() as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                seconds[rule] += float(row["s"])
    return dict(seconds)


def _copy_cost_records(run_dir: Path, dest: Path) -> None:
    """The run's train and halving summaries (counted FLOPs, step time) for the frontier."""
    records = [run_dir / "train" / "summary.json", *sorted(run_dir.glob("halving/n*/summary.json"))]
    for record in records:
        if record.is_file():
            target = dest / SUMMARIES_DIR / run_dir.name / record.relative_to(run_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(record, target)


def _first_packages(tier_dir: Path, tidy: pd.DataFrame) -> dict[str, str]:
    for source in tidy["source"].dropna().unique():
        # sources are as Snakemake named them: absolute, or relative to the project root
        for path in (Path(source), tier_dir.parent.parent / source):
            if path.is_file():
                return json.loads(path.read_text())["provenance"]["packages"]
    return {}


def _study_record(tier_dir: Path, study: str, dest: Path, allow_dirty: bool) -> dict[str, Any]:
    """Copy one study's report, runs' configs and tier blocks into dest; return its provenance."""
    src = tier_dir / "report" / study
    tidy = pd.read_csv(src / TIDY)
    commits = _commits(tidy)
    dirty = len(commits) != 1 or any(c.endswith("-dirty") or c == "unknown" for c in commits)
    if dirty and not allow_dirty:
        raise FrugaldiffError(
            f"{tier_dir}: the metrics of study {study!r} come from commits {commits}; a "
            f"publication needs one clean commit (rerun from a clean checkout, or pass "
            f"--allow-dirty)"
        )
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".snakemake_timestamp"))
    runs: dict[str, Any] = {}
    for run in sorted(tidy["run"].unique()):
        run_dir = tier_dir / run
        config = run_dir / "config.yaml"
        if not config.is_file():
            raise FrugaldiffError(f"run {run!r} of study {study!r}: {config} is missing")
        (dest / "configs").mkdir(exist_ok=True)
        shutil.copy2(config, dest / "configs" / f"{run}.yaml")
        summary_path = run_dir / "train" / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        runs[run] = {
            "device": summary.get("device"),
            "world_size": summary.get("world_size"),
            "images_per_second": summary.get("images_per_second"),
            "iterations": summary.get("iterations"),
            "job_seconds": _job_seconds(run_dir),
        }
    # the runs' cost records, and those of the runs they start from (a teacher, a masked run)
    parents = tidy["init_from"].dropna() if "init_from" in tidy else pd.Series(dtype=object)
    for run in sorted({*tidy["run"].unique(), *(p for p in parents if isinstance(p, str) and p)}):
        _copy_cost_records(tier_dir / run, dest)
    if (tier_dir / "config").is_dir():
        shutil.copytree(tier_dir / "config", dest / "config")
    return {
        "study": study,
        "tier": str(tidy["tier"].iloc[0]),
        "published": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "results": str(tier_dir),
        "commits": commits,
        "dirty": dirty,
        "packages": _first_packages(tier_dir, tidy),
        "shared_job_seconds": _job_seconds(tier_dir),
        "runs": runs,
    }


def _study_section(out: Path, record: dict[str, Any]) -> list[str]:
    """The README section of one published study: provenance, tables, figures, cost per run."""
    study = record["study"]
    commits = ", ".join(f"`{c}`" for c in record["commits"])
    lines = ["", f"## Study `{study}`", ""]
    lines += [f"Published {record['published']} from `{record['results']}`; commit(s): {commits}."]
    if record["dirty"]:
        lines += ["", "**Warning: published with --allow-dirty; see the commits above.**"]
    packages = ", ".join(f"{k} {v}" for k, v in sorted(record["packages"].items()))
    shared = ", ".join(f"{r} {s:.0f} s" for r, s in sorted(record["shared_job_seconds"].items()))
    lines += [f"Packages: {packages or 'unknown'}."]
    lines += [f"Jobs shared by the studies (data, reference statistics): {shared or 'n/a'}.", ""]
    for table in sorted((out / study / "tables").glob("*.md")):
        lines += [f"### {table.stem}", "", table.read_text().strip(), ""]
    for figure in sorted((out / study / "figures").glob("*.png")):
        lines += [f"![{figure.stem}]({study}/figures/{figure.name})", ""]
    lines += ["### Cost per run (Snakemake benchmark files)", ""]
    lines += ["| run | device | processes | train images/s | job seconds by rule |"]
    lines += ["|---|---|---|---|---|"]
    for run, facts in record["runs"].items():
        ips = facts["images_per_second"]
        jobs = ", ".join(f"{r} {s:.0f}" for r, s in sorted(facts["job_seconds"].items()))
        ips_text = f"{ips:.1f}" if isinstance(ips, int | float) else "n/a"
        lines += [
            f"| {run} | {facts['device'] or 'n/a'} | {facts['world_size'] or 'n/a'} "
            f"| {ips_text} | {jobs or 'n/a'} |"
        ]
    return lines


def _published(out: Path) -> dict[str, dict[str, Any]]:
    """The studies already published under out, by name, from their provenance.json."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/provenance.json"))}


def _readme(out: Path, records: dict[str, dict[str, Any]], frontier: list[str]) -> str:
    tier = next(iter(records.values()))["tier"]
    lines = [
        f"# Measured results: tier `{tier}`",
        "",
        "Written by `frugaldiff publish`, one study at a time; each section names the commit",
        "that made every number in it. Every number below is measured by the harness; columns",
        "named *paper* are the papers' values from `configs/paper_values.yaml`. Configs:",
        "`<study>/config/` (tier blocks) and `<study>/configs/<run>.yaml` (each run, fully",
        "resolved); `<study>/provenance.json` holds the same facts as data.",
    ]
    for record in records.values():
        lines += _study_section(out, record)
    return "\n".join(lines + frontier) + "\n"


def _frontier_lines(out: Path, records: dict[str, dict[str, Any]]) -> list[str]:
    """Rebuild out/frontier/ over every published study; a record it cannot use is named."""
    tier = next(iter(records.values()))["tier"]
    shutil.rmtree(out / FRONTIER_DIR, ignore_errors=True)
    try:
        frontier = build_published_frontier(out, sorted(records), tier)
    except DataError as err:
        return ["", "## Frontier over the published studies", "", f"Not built: {err}"]
    return frontier_section(out, frontier)


def publish(
    tier_dir: Path,
    out: Path,
    studies: list[str] | None = None,
    force: bool = False,
    allow_dirty: bool = False,
) -> Path:
    """Copy results/<tier>/report/<study>/ and what made it into out/<study>; return the README.

    Studies already under out and not chosen are kept; a chosen one already there is replaced
    only with force, and only after every chosen study is staged complete.
    """
    tier_dir, out = Path(tier_dir), Path(out)
    chosen = _studies(tier_dir, studies)
    if out.is_file():
        raise FrugaldiffError(f"{out} is a file; --out names a publication folder")
    existing = _published(out) if out.is_dir() else {}
    if out.is_dir() and any(out.iterdir()) and not existing:
        raise FrugaldiffError(
            f"{out} holds files but no published study (<study>/provenance.json); name an empty "
            f"or new folder"
        )
    again = sorted(set(chosen) & set(existing))
    if again and not force:
        raise FrugaldiffError(
            f"{out} already holds a publication of {again}; pass --force to replace it (the old "
            f"one is removed only after the new one is complete)"
        )
    ensure_writable_dir(out.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        records = {s: _study_record(tier_dir, s, staging / s, allow_dirty) for s in chosen}
        tiers = {r["tier"] for r in [*records.values(), *existing.values()]}
        if len(tiers) != 1:
            raise FrugaldiffError(f"{out}: studies of tiers {sorted(tiers)} cannot share it")
        for study, record in records.items():
            (staging / study / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
        out.mkdir(exist_ok=True)
        for study in chosen:
            if (out / study).exists():
                shutil.rmtree(out / study)
            (staging / study).rename(out / study)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    everything = _published(out)
    readme = out / "README.md"
    readme.write_text(_readme(out, everything, _frontier_lines(out, everything)))
    return readme
