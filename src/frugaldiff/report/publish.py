"""Publish a tier's measured report under docs/results/<tier>/ with what made it.

Issues 4-6 ask for each study's table and figures to be committed "with the config and commit
that made them". A copy of report/<study>/ alone loses that, so a publication also holds every
run's resolved config, the tier's resolved blocks, the commits and packages read from the
metrics files, the devices and throughput from the training summaries, and the job time per
rule from Snakemake's benchmark files; its README.md inlines the tables and shows the figures,
so a reader sees the result on the repository page without running anything.

Only measured files are copied: nothing here computes or rewrites a number. A publication is
refused when the metrics came from more than one commit or from a dirty tree (pass
allow_dirty to publish anyway; the README then says so), and an existing publication is never
overwritten unless force is given.
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

from frugaldiff.errors import FrugaldiffError
from frugaldiff.io import ensure_writable_dir

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


def _first_packages(tier_dir: Path, tidy: pd.DataFrame) -> dict[str, str]:
    for source in tidy["source"].dropna().unique():
        # sources are as Snakemake named them: absolute, or relative to the project root
        for path in (Path(source), tier_dir.parent.parent / source):
            if path.is_file():
                return json.loads(path.read_text())["provenance"]["packages"]
    return {}


def _study_record(tier_dir: Path, study: str, dest: Path) -> dict[str, Any]:
    """Copy one study's report and its runs' configs into dest; return its provenance record."""
    src = tier_dir / "report" / study
    tidy = pd.read_csv(src / TIDY)
    shutil.copytree(src, dest)
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
    return {"commits": _commits(tidy), "runs": runs, "tidy": tidy}


def _readme(tier: str, records: dict[str, dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [
        f"# Measured results: tier `{tier}`",
        "",
        f"Published {info['published']} from `{info['results']}` by `frugaldiff publish`.",
        f"Commit(s) that made every number: {', '.join(f'`{c}`' for c in info['commits'])}.",
        "Every number below is measured by the harness; columns named *paper* are the papers'",
        "values from `configs/paper_values.yaml`. Configs: `config/` (tier blocks) and",
        "`<study>/configs/<run>.yaml` (each run, fully resolved).",
    ]
    if info["dirty"]:
        lines += ["", "**Warning: published with --allow-dirty; see the commits above.**"]
    packages = ", ".join(f"{k} {v}" for k, v in sorted(info["packages"].items()))
    lines += ["", f"Packages: {packages or 'unknown'}."]
    shared = ", ".join(f"{r} {s:.0f} s" for r, s in sorted(info["shared_job_seconds"].items()))
    lines += [f"Jobs shared by the studies (data, reference statistics): {shared or 'n/a'}."]
    for study, record in records.items():
        dest = Path(study)
        lines += ["", f"## Study `{study}`", ""]
        for table in sorted((info["out"] / study / "tables").glob("*.md")):
            lines += [f"### {table.stem}", "", table.read_text().strip(), ""]
        for figure in sorted((info["out"] / study / "figures").glob("*.png")):
            lines += [f"![{figure.stem}]({dest / 'figures' / figure.name})", ""]
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
    return "\n".join(lines) + "\n"


def publish(
    tier_dir: Path,
    out: Path,
    studies: list[str] | None = None,
    force: bool = False,
    allow_dirty: bool = False,
) -> Path:
    """Copy results/<tier>/report/<study>/ and what made it into out; return out/README.md."""
    tier_dir, out = Path(tier_dir), Path(out)
    chosen = _studies(tier_dir, studies)
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not force):
        raise FrugaldiffError(
            f"{out} already holds a publication; pass --force to replace it (the old one is "
            f"removed only after the new one is complete)"
        )
    ensure_writable_dir(out.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        records = {s: _study_record(tier_dir, s, staging / s) for s in chosen}
        commits = sorted({c for r in records.values() for c in r["commits"]})
        dirty = len(commits) != 1 or any(c.endswith("-dirty") or c == "unknown" for c in commits)
        if dirty and not allow_dirty:
            raise FrugaldiffError(
                f"{tier_dir}: the metrics of {chosen} come from commits {commits}; a publication "
                f"needs one clean commit (rerun from a clean checkout, or pass --allow-dirty)"
            )
        if (tier_dir / "config").is_dir():
            shutil.copytree(tier_dir / "config", staging / "config")
        first_tidy = next(iter(records.values()))["tidy"]
        info = {
            "published": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "results": str(tier_dir),
            "commits": commits,
            "dirty": dirty,
            "packages": _first_packages(tier_dir, first_tidy),
            "shared_job_seconds": _job_seconds(tier_dir),
            "out": staging,
        }
        tier = str(first_tidy["tier"].iloc[0])
        (staging / "README.md").write_text(_readme(tier, records, info))
        provenance = {k: v for k, v in info.items() if k != "out"}
        provenance["runs"] = {s: r["runs"] for s, r in records.items()}
        (staging / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out / "README.md"
