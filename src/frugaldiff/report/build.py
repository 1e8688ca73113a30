"""`frugaldiff report`: a study's metrics and run summaries -> results/<tier>/report/<study>/.

Every study writes metrics_tidy.csv, tables/ (each table as CSV, Markdown and LaTeX) and
figures/ (PNG and PDF): the common FID-over-training table and figure, plus the tables and
figures in the shape of the study's paper (STUDY_BUILDERS; SpeeD's speed-up table, MicroDiT's
masking ablation).
"""

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from frugaldiff.errors import ConfigError, DataError
from frugaldiff.io import atomic_write, read_json
from frugaldiff.report.collect import collect_metrics
from frugaldiff.report.combined import (
    additivity_table,
    speed_masking_figure,
    speed_masking_table,
    teacher_figure,
    teacher_table,
)
from frugaldiff.report.distill import distill_table, fid_is_tradeoff, fid_vs_steps
from frugaldiff.report.grids import sample_grids
from frugaldiff.report.masking import fid_vs_mask_ratio, fid_vs_training_cost, masked_table
from frugaldiff.report.plots import fid_vs_iteration, save_figure
from frugaldiff.report.speedup import speedup_table
from frugaldiff.report.tables import fid_over_training, write_table

Tables = dict[str, tuple[str, pd.DataFrame]]  # name -> (caption, table)
Figures = dict[str, plt.Figure]
StudyBuilder = Callable[[pd.DataFrame, pd.DataFrame, str], tuple[Tables, Figures]]


def baseline_study(
    tidy: pd.DataFrame, summaries: pd.DataFrame, tier: str
) -> tuple[Tables, Figures]:
    return {}, {}


def speed_study(tidy: pd.DataFrame, summaries: pd.DataFrame, tier: str) -> tuple[Tables, Figures]:
    caption = (
        "SpeeD: FID per checkpoint and speed-up = baseline iterations to its final FID / variant "
        "iterations to the same FID (log-iteration interpolation); paper column: the abstract's "
        "claim; model: the backbone each row trained (the paper's component ablation, Table 5, "
        "trains a latent U-Net on FFHQ: component rows on another backbone are trends of that "
        f"backbone, not Table 5 cells); tier {tier}"
    )
    return {"speedup": (caption, speedup_table(tidy))}, {}


def masked_study(tidy: pd.DataFrame, summaries: pd.DataFrame, tier: str) -> tuple[Tables, Figures]:
    table = masked_table(tidy, summaries)
    caption = (
        "MicroDiT masking ablation: FID after pre-training and after unmasked fine-tuning, "
        "measured cost; paper column: Fig. 4 (text-to-image, 256², trend only); "
        f"tier {tier}"
    )
    figures = {
        "fid_vs_mask_ratio": fid_vs_mask_ratio(table, f"masked: FID vs mask ratio ({tier})"),
        "fid_vs_training_cost": fid_vs_training_cost(table, f"masked: FID vs cost ({tier})"),
    }
    return {"masked_fid_vs_ratio": (caption, table)}, figures


def distill_study(tidy: pd.DataFrame, summaries: pd.DataFrame, tier: str) -> tuple[Tables, Figures]:
    table = distill_table(tidy)
    caption = (
        "Guided distillation: FID over steps x w x sampler (D deterministic, S stochastic, with "
        "its jump model: half = the N/2-step student makes the 2/N jumps, same = the N-step "
        "student; and the halving's train grid) with measured NFE and seconds per 1k images; "
        "direct PD = Meng's baseline, PD of the CFG teacher without stage 1, guided at 2 NFE "
        f"per step; paper column: 1-step FID cited by DMD (students only); tier {tier}"
    )
    figures = {
        "fid_vs_steps": fid_vs_steps(table, f"distill: FID vs steps per w ({tier})"),
        "fid_is_tradeoff": fid_is_tradeoff(table, f"distill: trade-off over w ({tier})"),
    }
    return {"distill_fid_is": (caption, table)}, figures


def combined_study(
    tidy: pd.DataFrame, summaries: pd.DataFrame, tier: str
) -> tuple[Tables, Figures]:
    tables: Tables = {}
    figures: Figures = {}
    masking = speed_masking_table(tidy, summaries)
    if not masking.empty:
        additivity = additivity_table(masking)
        tables["speed_x_masking"] = (
            "Combined: SpeeD's sampler + weighting on MicroDiT with deferred masking, against "
            "each alone and the unmasked baseline (same seed and iterations); FID after unmasked "
            f"fine-tuning where a run has one, whole training cost (measured); tier {tier}",
            masking,
        )
        tables["speed_x_masking_additivity"] = (
            "Combined: do the effects add? additive prediction = FID(SpeeD) + FID(masked) - "
            "FID(baseline); interaction = measured FID of both - prediction (< 0: better "
            f"together); tier {tier}",
            additivity,
        )
        figures["speed_x_masking"] = speed_masking_figure(
            masking, additivity, f"combined: SpeeD x deferred masking ({tier})"
        )
    teachers = teacher_table(tidy)
    if not teachers.empty:
        tables["teacher_comparison"] = (
            "Combined: guided distillation of a SpeeD-trained CFG teacher vs the baseline "
            "teacher (same iterations and batch, same distillation), FID per model, sampler, "
            f"steps and w (measured NFE); tier {tier}",
            teachers,
        )
        figures["teacher_comparison"] = teacher_figure(
            teachers, f"combined: students of a SpeeD vs a baseline teacher ({tier})"
        )
    return tables, figures


STUDY_BUILDERS: dict[str, StudyBuilder] = {
    "combined": combined_study,
    "distill": distill_study,
    "baseline": baseline_study,
    "speed": speed_study,
    "masked": masked_study,
}


def load_summaries(paths: list[Path]) -> pd.DataFrame:
    """train/summary.json of each run -> one frame (run, images_per_second, FLOPs, ...)."""
    rows = [read_json(p) for p in paths]
    for path, row in zip(paths, rows, strict=True):
        if "run" not in row:
            raise DataError(f"{path}: run summary lacks key 'run'")
    return pd.DataFrame(rows, columns=None if rows else ["run"])


def load_floor(path: Path) -> pd.DataFrame:
    """The data floor's record (rule data_floor) -> a one-row table of what it measured."""
    record = read_json(path)
    try:
        metrics = record["metrics"]
        row = {
            "images": f"{record['n_images']} real {record['split']} images",
            "reference": f"{record['n_reference']} {record['reference_split']} images",
            "fid": metrics["fid"],
            "kid_mean": metrics["kid_mean"],
            "kid_std": metrics["kid_std"],
        }
    except KeyError as err:
        raise DataError(f"{path}: data floor record lacks key {err}") from err
    return pd.DataFrame([row])


def build_report(
    metrics_paths: list[Path],
    summary_paths: list[Path],
    out_dir: Path,
    tier: str,
    study: str,
    floor: Path | None = None,
) -> list[Path]:
    """Write the study's tidy frame, tables and figures under out_dir; return every path.

    `floor` (the data_floor record) adds its table and a line at its FID on the FID figure: the
    FID of real images at the samples' N, below which no model of the tier can be read.
    """
    if study not in STUDY_BUILDERS:
        raise ConfigError(f"study={study!r}; expected one of {sorted(STUDY_BUILDERS)}")
    tidy = collect_metrics(metrics_paths)
    summaries = load_summaries(summary_paths)
    written = []
    tidy_path = out_dir / "metrics_tidy.csv"
    with atomic_write(tidy_path) as tmp:
        tidy.to_csv(tmp, index=False)
    written.append(tidy_path)
    floor_table = load_floor(floor) if floor is not None else None
    floor_note = (
        ""
        if floor_table is None
        else f"; floor: FID {floor_table['fid'].iloc[0]:.2f} of "
        f"{floor_table['images'].iloc[0]} vs the same reference"
    )
    tables: Tables = {
        "fid_over_training": (
            f"FID over training, study {study}, tier {tier} (measured; N images in n_images"
            f"{floor_note})",
            fid_over_training(tidy),
        )
    }
    if floor_table is not None:
        tables["data_floor"] = (
            f"Data floor, tier {tier}: FID and KID of real held-out images at the samples' N "
            "against the reference statistics (the best a perfect generator can expect at this N)",
            floor_table,
        )
    floor_fid = None if floor_table is None else float(floor_table["fid"].iloc[0])
    figures: Figures = {
        "fid_vs_iteration": fid_vs_iteration(
            tidy, f"{study}: FID vs training iteration ({tier})", floor=floor_fid
        ),
        "sample_grids": sample_grids(tidy, f"{study}: samples of each run's final model ({tier})"),
    }
    extra_tables, extra_figures = STUDY_BUILDERS[study](tidy, summaries, tier)
    tables.update(extra_tables)
    figures.update(extra_figures)
    for name, (caption, table) in tables.items():
        written += write_table(table, out_dir / "tables" / name, caption)
    for name, figure in figures.items():
        written += save_figure(figure, out_dir / "figures" / name)
    return written
