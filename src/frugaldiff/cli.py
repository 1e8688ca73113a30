"""`frugaldiff <subcommand>`: the commands the Snakemake rules call, one flag per line.

Each subcommand parses paths, builds objects, calls one library function and returns an exit
code: 0 done, 2 bad input (a FrugaldiffError, printed as one line), 3 preempted (state saved;
rerun to resume). Hyper-parameters come from resolved config files, never from flags.
`train` and `halve` take `--nproc N`: N > 1 re-executes the command under torchrun (DDP, one
node); the job's exit code is then torchrun's, non-zero if any worker failed or was preempted.
"""

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from frugaldiff import preemption
from frugaldiff.cli_parser import build_parser
from frugaldiff.errors import FrugaldiffError
from frugaldiff.preemption import Preempted

if TYPE_CHECKING:  # the CLI imports torch-heavy modules only inside commands
    from frugaldiff.train.loop import Trainer

log = logging.getLogger("frugaldiff")

EXIT_BAD_INPUT = 2
EXIT_PREEMPTED = 3


def cmd_prepare_data(args: argparse.Namespace) -> None:
    from frugaldiff.config import DataConfig, from_dict, load_yaml
    from frugaldiff.data.prepare import prepare_dataset

    cfg = from_dict(DataConfig, load_yaml(args.config), str(args.config))
    meta = prepare_dataset(
        cfg,
        args.train_out,
        args.test_out,
        args.meta_out,
        args.download_dir,
        workers=args.threads,  # decoding processes (ImageNet-256); None: this job's CPUs
        progress=_progress(f"preparing {cfg.dataset} (chunks)"),
    )
    print(f"prepared {meta}")


def cmd_encode_latents(args: argparse.Namespace) -> None:
    from frugaldiff.config import DataConfig, from_dict, load_yaml
    from frugaldiff.data.latents import encode_latents
    from frugaldiff.errors import ConfigError
    from frugaldiff.io import write_json

    cfg = from_dict(DataConfig, load_yaml(args.config), str(args.config))
    if cfg.latent is None:
        raise ConfigError(f"{args.config}: data.latent is not set; nothing to encode")
    meta = encode_latents(
        cfg.latent, args.data, args.out, args.cache_dir, progress=_progress("encoding")
    )
    write_json(args.meta_out, meta)
    how = "reused the cache" if meta["reused"] else "encoded"
    print(f"{how}: {meta['num_images']} latents {meta['latent_shape']} -> {args.out}")


def _drive(trainer: "Trainer", desc: str) -> None:
    """Resume if possible, then run the trainer to its end under a progress bar (rank 0's)."""
    trainer.try_resume()
    quiet = None if trainer.world.is_main else True
    bar = tqdm(total=trainer.tc.iterations, initial=trainer.iteration, desc=desc, disable=quiet)
    for record in trainer.steps():
        bar.update(1)
        bar.set_postfix(loss=f"{record.loss:.4f}", img_s=f"{record.images_per_second:.0f}")
    bar.close()


def cmd_train(args: argparse.Namespace) -> None:
    from frugaldiff.config import load_run_config
    from frugaldiff.train.distributed import joined_world
    from frugaldiff.train.loop import Trainer

    cfg = load_run_config(args.config)
    with joined_world(cfg.train.device) as world:
        trainer = Trainer.for_run(cfg, args.data, args.state_dir, world=world)
        _drive(trainer, cfg.name)
        ckpt_paths = {k: args.ckpt_dir / f"iter{k}.pt" for k in cfg.train.ckpt_iters}
        trainer.publish(ckpt_paths, args.metrics_out, args.summary_out)
    if world.is_main:
        print(f"trained {cfg.name} to iteration {trainer.iteration} on {world.size} process(es)")


def cmd_halve(args: argparse.Namespace) -> None:
    from frugaldiff.config import load_run_config
    from frugaldiff.train.distributed import joined_world
    from frugaldiff.train.loop import Trainer

    cfg = load_run_config(args.config)
    with joined_world(cfg.train.device) as world:
        trainer = Trainer.for_run(
            cfg, args.data, args.state_dir, str(args.teacher), args.student_steps, world=world
        )
        _drive(trainer, f"{cfg.name} n{args.student_steps}")
        trainer.publish({trainer.tc.iterations: args.out}, args.metrics_out, args.summary_out)
    if world.is_main:
        print(f"halved {cfg.name} to {args.student_steps} steps on {world.size} process(es)")


def cmd_sample(args: argparse.Namespace) -> None:
    from frugaldiff.config import SampleSetConfig, load_run_config
    from frugaldiff.io import write_json
    from frugaldiff.sampling.generate import SampleRequest, generate_samples

    cfg = load_run_config(args.config)
    matching = [
        s for s in cfg.sample_sets if (s.solver, s.steps, s.w) == (args.solver, args.steps, args.w)
    ]
    sample_set = matching[0] if matching else SampleSetConfig(args.solver, args.steps, args.w)
    request = SampleRequest(
        checkpoint=args.checkpoint,
        sample_set=sample_set,
        num_images=cfg.evaluation.sample_images,
        seed=cfg.evaluation.sample_seed,
        batch_size=cfg.evaluation.sample_batch_size,
        device=cfg.evaluation.device,
    )
    meta = generate_samples(
        request, args.out, args.grid, progress=_progress("sampling"), shard_dir=args.shard_dir
    )
    write_json(args.meta, meta)
    print(f"sampled {meta['num_images']} images, {meta['nfe_per_image']:g} NFE/image")


def cmd_reference(args: argparse.Namespace) -> None:
    from frugaldiff.config import EvaluationConfig, from_dict, load_yaml
    from frugaldiff.evaluate.pipeline import reference_from_dataset

    cfg = from_dict(EvaluationConfig, load_yaml(args.config), str(args.config))
    provenance = reference_from_dataset(cfg, args.data, args.data_meta, args.out, args.cache_dir)
    print(f"reference statistics of {provenance['n_images']} images -> {args.out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from frugaldiff.config import load_run_config
    from frugaldiff.evaluate.pipeline import evaluate_sample_set

    cfg = load_run_config(args.config)
    record = evaluate_sample_set(
        cfg, args.samples, args.sample_meta, args.reference, args.out, args.cache_dir
    )
    print(f"FID {record['metrics']['fid']:.4f} ({record['n_images']} images)")


def cmd_floor(args: argparse.Namespace) -> None:
    from frugaldiff.config import EvaluationConfig, from_dict, load_yaml
    from frugaldiff.evaluate.pipeline import data_floor

    cfg = from_dict(EvaluationConfig, load_yaml(args.config), str(args.config))
    record = data_floor(cfg, args.data, args.reference, args.out, args.cache_dir)
    fid, n, split = record["metrics"]["fid"], record["n_images"], record["split"]
    print(f"floor FID {fid:.4f} ({n} {split} images)")


def cmd_report(args: argparse.Namespace) -> None:
    from frugaldiff.report.build import build_report

    written = build_report(
        args.metrics, args.summaries, args.out_dir, args.tier, args.study, floor=args.floor
    )
    print("\n".join(str(p) for p in written))


def cmd_publish(args: argparse.Namespace) -> None:
    from frugaldiff.report.publish import publish

    print(publish(args.results, args.out, args.study, args.force, args.allow_dirty))


def cmd_preflight(args: argparse.Namespace) -> None:
    import dataclasses
    import tempfile

    from frugaldiff.config import load_yaml, parse_tier_config
    from frugaldiff.io import write_json
    from frugaldiff.preflight import Preflight, format_checks

    tier = parse_tier_config(load_yaml(args.config), str(args.config))
    with tempfile.TemporaryDirectory(prefix="frugaldiff-preflight-") as scratch:
        preflight = Preflight(
            tier,
            args.blocks,
            args.scratch or Path(scratch),
            device=args.device,
            iterations=args.iterations,
            batch=args.batch,
            report=lambda c: log.info("preflight %s / %s: %.2f s", c.run, c.job, c.seconds),
        )
        checks = preflight.run_all(args.runs)
    print(format_checks(checks, preflight.device, tuple(preflight.notes)))
    if args.json:
        records = [dataclasses.asdict(c) for c in checks]
        notes = preflight.notes
        write_json(args.json, {"device": preflight.device, "checks": records, "notes": notes})


def cmd_frontier(args: argparse.Namespace) -> None:
    from frugaldiff.report.frontier import build_frontier

    for path in build_frontier(args.metrics, args.summaries, args.out_dir, args.tier):
        log.info("wrote %s", path)


def cmd_explain(args: argparse.Namespace) -> None:
    from frugaldiff.config import load_yaml, parse_tier_config
    from frugaldiff.errors import ConfigError
    from frugaldiff.explain import explain

    tier = parse_tier_config(load_yaml(args.config), str(args.config))
    unknown = [run for run in args.run or [] if run not in tier.runs]
    if unknown:
        raise ConfigError(
            f"--run {unknown[0]!r} is not a run of {args.config}; expected one of "
            f"{sorted(tier.runs)}"
        )
    print(explain(tier, args.blocks, args.run))


def _progress(desc: str) -> Callable:
    return lambda iterable: tqdm(iterable, desc=desc, disable=None)


def _launch_or_check(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Relaunch under torchrun for --nproc N > 1 (never returns), after checking that N fits.

    Inside a torchrun worker WORLD_SIZE decides, and a different explicit --nproc is an error.
    """
    from frugaldiff.config import load_run_config
    from frugaldiff.errors import ConfigError
    from frugaldiff.train import distributed

    nproc = getattr(args, "nproc", 1)
    if nproc < 0:
        raise ConfigError(f"--nproc {nproc}; expected a process count >= 0")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if distributed.under_torchrun():
        if nproc > 1 and nproc != world_size:
            raise ConfigError(f"--nproc {nproc} inside torchrun's world of {world_size} workers")
        return
    if nproc > 1:
        cfg = load_run_config(args.config)
        distributed.check_launch(nproc, cfg.train.device, cfg.train.batch_size)
        distributed.relaunch_under_torchrun(nproc, argv)


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "prepare-data": cmd_prepare_data,
    "encode-latents": cmd_encode_latents,
    "train": cmd_train,
    "halve": cmd_halve,
    "sample": cmd_sample,
    "reference": cmd_reference,
    "evaluate": cmd_evaluate,
    "floor": cmd_floor,
    "report": cmd_report,
    "publish": cmd_publish,
    "preflight": cmd_preflight,
    "explain": cmd_explain,
    "frontier": cmd_frontier,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    preemption.install()  # before torch: a SIGTERM while starting must not kill the job
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    import torch

    from frugaldiff.train.distributed import threads_per_process

    if args.threads:
        torch.set_num_threads(threads_per_process(args.threads))

    try:
        _launch_or_check(args, argv)
        COMMANDS[args.command](args)
    except Preempted as err:
        print(f"frugaldiff {args.command}: preempted: {err}", file=sys.stderr)
        return EXIT_PREEMPTED
    except FrugaldiffError as err:
        print(f"frugaldiff {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
