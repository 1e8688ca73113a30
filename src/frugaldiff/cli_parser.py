"""The argument parser of `frugaldiff`: one subcommand per rule kind, one flag per line.

Kept apart from cli.py (what each command does) so the two stay short; cli.COMMANDS maps each
subcommand name below to its function.
"""

import argparse
from pathlib import Path

DESCRIPTION = "`frugaldiff <subcommand>`: the commands the Snakemake rules call, one flag per line."


def _add_nproc(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="data-parallel processes, one per GPU (0 or 1: this process); N > 1 relaunches "
        "the command under torchrun --standalone with N workers",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frugaldiff", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (the job's cpus)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare-data", help="md5-check the archive, write uint8 splits")
    p.add_argument("--config", type=Path, required=True, help="resolved data config (yaml)")
    p.add_argument("--train-out", type=Path, required=True, help="train split .npz")
    p.add_argument("--test-out", type=Path, required=True, help="test split .npz")
    p.add_argument("--meta-out", type=Path, required=True, help="dataset meta.json")
    p.add_argument("--download-dir", type=Path, required=True)

    p = sub.add_parser("encode-latents", help="VAE posteriors of a split (cached), data.latent")
    p.add_argument("--config", type=Path, required=True, help="resolved data config (yaml)")
    p.add_argument("--data", type=Path, required=True, help="uint8 split .npz")
    p.add_argument("--cache-dir", type=Path, required=True, help="latents cache, keyed by content")
    p.add_argument("--out", type=Path, required=True, help="latents .npz")
    p.add_argument("--meta-out", type=Path, required=True, help="latents provenance .json")

    p = sub.add_parser("train", help="train one run; resumes from --state-dir")
    p.add_argument("--config", type=Path, required=True, help="resolved run config (yaml)")
    p.add_argument("--data", type=Path, required=True, help="train split or latents .npz")
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--ckpt-dir", type=Path, required=True)
    p.add_argument("--metrics-out", type=Path, required=True)
    p.add_argument("--summary-out", type=Path, required=True, help="throughput + cost .json")
    _add_nproc(p)

    p = sub.add_parser("halve", help="one progressive-distillation halving (2N -> N steps)")
    p.add_argument("--config", type=Path, required=True, help="resolved run config (yaml)")
    p.add_argument("--data", type=Path, required=True, help="train split or latents .npz")
    p.add_argument("--teacher", type=Path, required=True, help="the 2N-step model checkpoint")
    p.add_argument("--student-steps", type=int, required=True, help="N")
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="the N-step student checkpoint")
    p.add_argument("--metrics-out", type=Path, required=True)
    p.add_argument("--summary-out", type=Path, required=True)
    _add_nproc(p)

    p = sub.add_parser("sample", help="draw a sample set from a checkpoint")
    p.add_argument("--config", type=Path, required=True, help="resolved run config (yaml)")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--solver", required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--w", type=float, required=True, help="guidance weight, Meng's convention")
    p.add_argument("--out", type=Path, required=True, help="images .npz")
    p.add_argument("--grid", type=Path, required=True, help="PNG grid")
    p.add_argument("--meta", type=Path, required=True, help="sampling metadata .json")
    p.add_argument("--shard-dir", type=Path, help="keep finished batches here; resume from them")

    p = sub.add_parser("reference", help="Inception statistics of a dataset split")
    p.add_argument("--config", type=Path, required=True, help="resolved evaluation config")
    p.add_argument("--data", type=Path, required=True, help="split .npz")
    p.add_argument("--data-meta", type=Path, required=True, help="dataset meta.json")
    p.add_argument("--cache-dir", type=Path, required=True, help="converted weights cache")
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("evaluate", help="FID/KID/IS of a sample set against a reference")
    p.add_argument("--config", type=Path, required=True, help="resolved run config (yaml)")
    p.add_argument("--samples", type=Path, required=True)
    p.add_argument("--sample-meta", type=Path, required=True)
    p.add_argument("--reference", type=Path, required=True)
    p.add_argument("--cache-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser(
        "floor", help="FID/KID of N real images of the other split vs the reference (the floor)"
    )
    p.add_argument("--config", type=Path, required=True, help="resolved evaluation config")
    p.add_argument("--data", type=Path, required=True, help="split .npz (not the reference's)")
    p.add_argument("--reference", type=Path, required=True)
    p.add_argument("--cache-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("report", help="tables and figures from metrics files")
    p.add_argument("--metrics", type=Path, nargs="+", required=True)
    p.add_argument("--summaries", type=Path, nargs="+", required=True, help="train/summary.json")
    p.add_argument("--tier", required=True)
    p.add_argument("--study", required=True, help="baseline | speed | ...")
    p.add_argument("--floor", type=Path, help="the data floor's json (frugaldiff floor)")
    p.add_argument("--out-dir", type=Path, required=True)

    p = sub.add_parser(
        "frontier", help="FID against training and sampling cost over every study of a tier"
    )
    p.add_argument("--metrics", type=Path, nargs="+", required=True)
    p.add_argument("--summaries", type=Path, nargs="+", required=True, help="summary.json files")
    p.add_argument("--tier", required=True)
    p.add_argument("--out-dir", type=Path, required=True)

    p = sub.add_parser(
        "publish", help="copy a tier's report, configs and provenance to docs/results/<tier>"
    )
    p.add_argument("--results", type=Path, required=True, help="results/<tier>")
    p.add_argument("--out", type=Path, required=True, help="e.g. docs/results/<tier>")
    p.add_argument("--study", nargs="+", default=None, help="default: every built report")
    p.add_argument("--force", action="store_true", help="replace an existing publication")
    p.add_argument(
        "--allow-dirty", action="store_true", help="publish metrics of several or dirty commits"
    )

    p = sub.add_parser(
        "explain",
        help="print each run's resolved objects (schedule, sampler, weighting, objective, "
        "model, solvers) and the jobs it starts",
    )
    p.add_argument("--config", type=Path, required=True, help="tier config (yaml)")
    p.add_argument("--blocks", type=Path, default=Path("configs"), help="method blocks' folder")
    p.add_argument("--run", nargs="+", default=None, help="default: every run of the tier")

    p = sub.add_parser(
        "preflight",
        help="train every run of a tier a few steps and sample each kind of set, in minutes",
    )
    p.add_argument("--config", type=Path, required=True, help="tier config (yaml)")
    p.add_argument("--blocks", type=Path, default=Path("configs"), help="method blocks' folder")
    p.add_argument("--runs", nargs="+", default=None, help="default: every run of the tier")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--iterations", type=int, default=2, help="training steps per job")
    p.add_argument(
        "--batch", type=int, default=2, help="training batch; 0: each run's own (GPU memory check)"
    )
    p.add_argument("--scratch", type=Path, help="keep the jobs' files here (default: a tmp dir)")
    p.add_argument("--json", type=Path, help="also write the checks as JSON")
    return parser
