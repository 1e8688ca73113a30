"""`frugaldiff preflight`: start every job kind of a tier in minutes, before its hours-long run.

A cifar10 tier trains its teacher for hours before the distillation stage starts; a stage-1
student, a halving or a fine-tuning run that cannot start (a model size that does not fit its
mask ratio, bf16 on a new device, a sampler the checkpoint cannot serve) would only show then.
Preflight resolves every run exactly as the DAG does, trains each for a few steps at a small
batch on synthetic images of the tier's shape, wired as the DAG wires them (init_from, stage 1
from the teacher, two halvings of a chain shortened to start at 4 steps), and draws a few images
with each kind of sample set of each run at a few steps. It prints seconds and, on CUDA, peak
memory per job: a first measurement of a new machine, never a result. FID is not computed (the
smoke tier runs the evaluation path end to end). With `--batch 0` (each run's own batch) every
check also projects the hours of the real jobs it stands for: training from its last step's
time × the run's iterations; sampling from its seconds per image and step (a batch of up to 64
images) × every real sample set of its kind (images × steps); evaluation from the Inception
network's measured images/s × every image the tier's FIDs encode. Latent tiers (the paper
tiers) train on synthetic latents of their shape, so DiT-XL/2 at its own batch is a real
memory check, but their sampling is not checked: decoding needs the VAE's weights. Everything
is written to a scratch folder, which keeps each run's published checkpoint only: the resumable
training state beside it (weights, EMA, optimiser: three times the checkpoint) is deleted as soon
as the checkpoint is out, so a cifar10-sized preflight needs a few GB of disk, not ten.
"""

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from frugaldiff.config import RunConfig, SampleSetConfig, TierConfig, resolve_run
from frugaldiff.devices import resolve_device
from frugaldiff.distill.progressive import halving_chain
from frugaldiff.distill.sampling import halving_sample_sets
from frugaldiff.errors import ConfigError, FrugaldiffError
from frugaldiff.preflight_inputs import (
    drawn_sets,
    real_sample_sets,
    sample_set_kinds,
    set_kind,
    shrink,
    synthetic_split,
)
from frugaldiff.sampling.generate import SampleRequest, generate_samples
from frugaldiff.train.loop import Trainer


@dataclass(frozen=True)
class JobCheck:
    """One job preflight ran: what, how long, and its peak accelerator memory (CUDA only)."""

    run: str
    job: str  # "train", "halve n2", "sample ddim-s4-w0"
    seconds: float
    peak_gib: float | None
    step_seconds: float | None = None  # training jobs: the last step's wall time
    # At the run's own batch (--batch 0) only: step_seconds × the run's full iterations, in
    # hours; the checked halvings of a chain share the whole chain's projection between them.
    projected_hours: float | None = None


def run_order(tier: TierConfig, names: list[str] | None = None) -> list[str]:
    """The runs to check, each after the run it starts from (init_from), in table order.

    Naming a run brings in the runs it starts from, so every check starts as the DAG would.
    """
    wanted = list(tier.runs) if names is None else names
    unknown = sorted(set(wanted) - set(tier.runs))
    if unknown:
        raise ConfigError(f"preflight --runs {unknown}: not runs; expected of {sorted(tier.runs)}")
    order: list[str] = []

    def visit(name: str) -> None:
        init = tier.runs[name].init_from
        if init is not None:
            visit(init)
        if name not in order:
            order.append(name)

    for name in wanted:
        visit(name)
    return order


class Preflight:
    """Runs the checks of one tier in `scratch`, keeping each run's last checkpoint."""

    def __init__(
        self,
        tier: TierConfig,
        blocks_dir: Path,
        scratch: Path,
        *,
        device: str = "auto",
        iterations: int = 2,
        batch: int = 2,
        images: int = 2,
        report: Callable[[JobCheck], None] = lambda check: None,
    ) -> None:
        self.tier, self.blocks_dir, self.scratch = tier, blocks_dir, scratch
        self.device = str(resolve_device(device))
        self.iterations, self.batch, self.images = iterations, batch, images
        self.report = report
        self.checks: list[JobCheck] = []
        self.notes: list[str] = []  # what was not checked, and why
        self.final: dict[str, Path] = {}  # run -> its checkpoint, for the runs that start from it

    def run_all(self, names: list[str] | None = None) -> list[JobCheck]:
        """Check the named runs (all by default) and the runs they start from."""
        order = run_order(self.tier, names)
        for name in order:
            self.check_run(name)
        if self.batch == 0 and self.tier.data.latent is None:
            self._evaluation(order)
        return self.checks

    def _evaluation(self, runs: list[str]) -> None:
        """Time the Inception network on a batch; project every FID image of the checked runs.

        The images: each real sample set's, plus the reference statistics and the data floor
        (computed once per tier). The features are of random images: speed, not a metric.
        """
        from frugaldiff.evaluate.features import InceptionFeatures

        ev = self.tier.evaluation
        images = np.random.default_rng(0).integers(
            0, 256, size=(ev.feature_batch_size * 2, 3, 16, 16), dtype=np.uint8
        )
        sets = sum(len(real_sample_sets(resolve_run(self.tier, r, self.blocks_dir))) for r in runs)
        reference = ev.reference_images or 0
        total = sets * ev.sample_images + reference + ev.sample_images
        with self._measured("(tier)", "evaluate (Inception)") as timing:
            extractor = InceptionFeatures(
                self.scratch / "inception", device=self.device, batch_size=ev.feature_batch_size
            )
            extractor.features(images[: ev.feature_batch_size], source="preflight warm-up")
            start = time.perf_counter()
            extractor.features(images[ev.feature_batch_size :], source="preflight")
            rate = ev.feature_batch_size / (time.perf_counter() - start)
            timing["projected_hours"] = total / rate / 3600
        self.notes.append(
            f"evaluation: {sets} sample sets x {ev.sample_images} images + reference "
            f"{reference or 'all of the split'} + floor {ev.sample_images} = {total:,} Inception "
            f"images at {rate:.1f} images/s" + ("" if reference else " (reference not counted)")
        )

    def check_run(self, name: str) -> None:
        full = resolve_run(self.tier, name, self.blocks_dir)
        run = shrink(full, self.iterations, self.batch, self.device)
        init = run.init_from
        run = dataclasses.replace(run, init_checkpoint=str(self.final[init]) if init else None)
        folder = self.scratch / name
        data = synthetic_split(folder / "train.npz", run, max(2 * run.train.batch_size, 16))
        ckpt = self._train(run, data, folder / "train", None, 0, full.train.iterations)
        self.final[name] = ckpt
        if run.data.latent is not None:
            self.notes.append(
                f"{name}: sampling not checked (a latent run decodes with its VAE, whose "
                "weights preflight does not load)"
            )
            return
        for sample_set in sample_set_kinds(drawn_sets(run)):
            self._sample(run, ckpt, sample_set, folder, full)
        if run.distill.stage == "none":
            return
        teacher = ckpt
        chain = halving_chain(run.distill.start_steps, run.distill.end_steps)[:2]
        full_chain = halving_chain(full.distill.start_steps, full.distill.end_steps)
        share = full.distill.halving_iterations * len(full_chain) / len(chain)
        for n in chain:
            teacher = self._train(run, data, folder / f"halve-n{n}", teacher, n, share)
            sets = [s for _, s in halving_sample_sets([n], run.sample_sets)]
            for sample_set in sample_set_kinds(sets, max_steps=None):
                self._sample(run, teacher, sample_set, folder / f"halve-n{n}")

    def _train(
        self,
        run: RunConfig,
        data: Path,
        out: Path,
        teacher: Path | None,
        student_steps: int,
        full_iterations: float,
    ) -> Path:
        """Train `run` (a halving to `student_steps` when `teacher`); its checkpoint's path."""
        job = f"halve n{student_steps}" if teacher else "train"
        with self._measured(run.name, job) as timing:
            halving_teacher = str(teacher) if teacher else None
            trainer = Trainer.for_run(run, data, out / "state", halving_teacher, student_steps)
            last = time.perf_counter()
            for _ in trainer.steps():  # each record's loss is read on the host: synchronised
                now = time.perf_counter()
                timing["step_seconds"], last = now - last, now
            if self.batch == 0:
                # No step at all: a direct run's stage, whose full run has 0 iterations too.
                step = timing.get("step_seconds", 0.0)
                timing["projected_hours"] = step * full_iterations / 3600
            ckpt = out / "ckpt.pt"
            trainer.publish({trainer.tc.iterations: ckpt}, out / "metrics.jsonl", out / "s.json")
        shutil.rmtree(out / "state")  # preflight never resumes; the checkpoint is all it reads
        return ckpt

    def _sample(
        self,
        run: RunConfig,
        ckpt: Path,
        sample_set: SampleSetConfig,
        out: Path,
        full: RunConfig | None = None,
    ) -> None:
        """Draw a few images of `sample_set`; with `full` at batch 0, project its kind's jobs.

        The projection covers every real set of `full` of the same kind (set_kind), each at
        its own steps and `sample_images`; a halving's checks project nothing (their student's
        sets are counted in the stage-1 run's sets through real_sample_sets).
        """
        name = f"{sample_set.solver}-s{sample_set.steps}-w{sample_set.w:g}"
        project = self.batch == 0 and full is not None
        images = min(run.evaluation.sample_batch_size, 64) if project else self.images
        request = SampleRequest(ckpt, sample_set, images, 0, images, self.device)
        with self._measured(run.name, f"sample {name}") as timing:
            start = time.perf_counter()
            generate_samples(request, out / f"{name}.npz", out / f"{name}.png")
            per_image_step = (time.perf_counter() - start) / (images * sample_set.steps)
            if project:
                kind = set_kind(sample_set)
                work = sum(
                    full.evaluation.sample_images * s.steps
                    for s in real_sample_sets(full)
                    if set_kind(s) == kind
                )
                timing["projected_hours"] = per_image_step * work / 3600

    @contextlib.contextmanager
    def _measured(self, run: str, job: str) -> Iterator[dict[str, float]]:
        """Time the block and record a JobCheck; the block may add JobCheck fields to the dict."""
        cuda = self.device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        timing: dict[str, float] = {}
        try:
            yield timing
        except FrugaldiffError as err:
            raise ConfigError(f"preflight {run} / {job}: {err}") from err
        except Exception as err:
            err.add_note(f"preflight: in {run} / {job}")
            raise
        if cuda:
            torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        check = JobCheck(run, job, time.perf_counter() - start, peak, **timing)
        self.checks.append(check)
        self.report(check)


def format_checks(checks: list[JobCheck], device: str, notes: tuple[str, ...] = ()) -> str:
    """A plain-text table of the checks, one job per line, with the totals and `notes`."""
    lines = [
        f"preflight on {device}: {len(checks)} jobs",
        f"{'run':<28} {'job':<28} seconds   GiB  step s  proj. h",
    ]

    def cell(value: float | None, width: int, digits: int) -> str:
        return f"{value:{width}.{digits}f}" if value is not None else " " * (width - 1) + "-"

    for c in checks:
        lines.append(
            f"{c.run:<28} {c.job:<28} {c.seconds:7.2f} {cell(c.peak_gib, 5, 2)} "
            f"{cell(c.step_seconds, 7, 3)} {cell(c.projected_hours, 8, 2)}"
        )
    lines.append(f"total {sum(c.seconds for c in checks):.1f} s")
    for what, picked in (
        ("training", [c for c in checks if c.job == "train" or c.job.startswith("halve")]),
        ("sampling", [c for c in checks if c.job.startswith("sample")]),
        ("evaluation", [c for c in checks if c.job.startswith("evaluate")]),
    ):
        projected = [c.projected_hours for c in picked if c.projected_hours is not None]
        if projected:
            lines.append(
                f"projected {what} at the runs' own batches and budgets: {sum(projected):.2f} "
                "device-hours"
            )
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)
