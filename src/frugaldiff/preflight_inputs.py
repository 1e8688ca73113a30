"""What `frugaldiff preflight` runs instead of a tier's real jobs (preflight.py).

Each run cut to a few steps at a small (or its own) batch with a distillation chain shortened to
start at 4 steps (`shrink`), synthetic training data of the run's shape (`synthetic_split`), and
one sample set per kind of those the DAG draws (`sample_set_kinds`, `real_sample_sets`): the
inputs that make every job kind start in minutes, and that let a check stand for the real jobs
of its kind when preflight projects their hours.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from frugaldiff.config import RunConfig, SampleSetConfig
from frugaldiff.data.latents import LATENT_FORMAT, VIEWS
from frugaldiff.distill.progressive import halving_chain
from frugaldiff.distill.sampling import halving_sample_sets
from frugaldiff.io import write_npz
from frugaldiff.models.registry import resolve_model_config

PREFLIGHT_START_STEPS = 4  # a distillation chain is shortened to 4 -> 2 -> 1 steps
SAMPLE_STEPS = 4  # sample sets are drawn at min(their steps, this)
SYNTHETIC_VAE = "preflight-synthetic"  # the codec named by a latent run's synthetic latents


def synthetic_split(path: Path, run: RunConfig, count: int, seed: int = 0) -> Path:
    """`count` random training examples of the run's model shape, labels 0..K−1.

    Pixel runs: uniform uint8 images (N, C, S, S). Latent runs: a cached-latents file of
    N(0, 1) posterior means with std 0.1 for both views (N, 2, C, S, S), the format
    encode_latents writes, from a VAE named "preflight-synthetic" that does not exist, so
    such a checkpoint can be trained but not decoded.
    """
    family = resolve_model_config(run.model)
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.int64) % family.num_classes
    shape = (family.in_channels, family.image_size, family.image_size)
    if run.data.latent is None:
        images = rng.integers(0, 256, size=(count, *shape), dtype=np.uint8)
        write_npz(path, images=images, labels=labels)
        return path
    mean = rng.standard_normal((count, len(VIEWS), *shape), dtype=np.float32)
    provenance = {
        "format": LATENT_FORMAT,
        "vae": SYNTHETIC_VAE,
        "config_sha256": SYNTHETIC_VAE,
        "weights_sha256": SYNTHETIC_VAE,
        "scaling_factor": 1.0,
        "shift_factor": 0.0,
    }
    write_npz(
        path,
        mean=mean,
        std=np.full_like(mean, 0.1),
        labels=labels,
        provenance=np.asarray(json.dumps(provenance)),
    )
    return path


def shrink(run: RunConfig, iterations: int, batch: int, device: str) -> RunConfig:
    """`run` cut to `iterations` steps at `batch` on `device`, a 4-step distillation chain.

    `batch` 0 keeps the run's own batch size: on a GPU, the memory check that matters.

    On the CPU a bf16 run trains in fp32: CPU autocast to bf16 is emulated, some 50x slower
    (a 2-step unet-cifar10 stage 1 took 106 s), and the bf16 path that matters is the GPU's.
    """
    precision = "fp32" if device == "cpu" else run.train.precision
    # A direct run's own stage makes no update (train/stages.py): it stays at 0, checkpoint 0.
    own = 0 if run.distill.stage == "direct" else iterations
    train = dataclasses.replace(
        run.train,
        precision=precision,
        iterations=own,
        batch_size=batch or run.train.batch_size,
        warmup_iters=0,
        ckpt_iters=(own,),
        state_every_iters=iterations,
        log_every_iters=1,
        device=device,
    )
    start = min(run.distill.start_steps, PREFLIGHT_START_STEPS)
    distill = dataclasses.replace(
        run.distill,
        start_steps=start,
        end_steps=min(run.distill.end_steps, start // 2),
        halving_iterations=iterations,
    )
    evaluation = dataclasses.replace(run.evaluation, device=device)
    return dataclasses.replace(run, train=train, distill=distill, evaluation=evaluation)


def sample_set_kinds(
    sets: list[SampleSetConfig] | tuple[SampleSetConfig, ...], max_steps: int | None = SAMPLE_STEPS
) -> list[SampleSetConfig]:
    """One set per kind (solver, variance, spacing, clipping, guided or not, jump model).

    `max_steps` caps the steps (at least 2, IDDPM spacing's minimum); None keeps them, as a
    halving's sets must (its student serves only its own grid or twice it).
    """
    kinds: dict[tuple, SampleSetConfig] = {}
    for s in sets:
        key = (*set_kind(s), s.steps)
        if max_steps is not None:
            s = dataclasses.replace(s, steps=max(min(s.steps, max_steps), 2))
            key = key[:-1]
        kinds.setdefault(key, s)
    return list(kinds.values())


def set_kind(s: SampleSetConfig) -> tuple:
    """What makes two sample sets cost the same per image and step (all but steps and w)."""
    return (s.solver, s.variance, s.spacing, s.clip_x0, s.w != 0.0, s.jump_model)


def real_sample_sets(run: RunConfig) -> list[SampleSetConfig]:
    """Every sample set the DAG draws for `run`: each checkpoint's, then each halving's."""
    sets = [s for _ in run.train.ckpt_iters for s in drawn_sets(run)]
    if run.distill.stage != "none":
        chain = halving_chain(run.distill.start_steps, run.distill.end_steps)
        sets += [s for _, s in halving_sample_sets(chain, run.sample_sets)]
    return sets


def drawn_sets(run: RunConfig) -> tuple[SampleSetConfig, ...]:
    """A stage-1 student is drawn on its chain's first grid; others at their own steps.

    A direct run's own checkpoint is its teacher, drawn by the teacher's run (explain.py:
    sample_set_names): none.
    """
    if run.distill.stage == "direct":
        return ()
    if run.distill.stage == "none":
        return run.sample_sets
    start = run.distill.start_steps
    return tuple(dataclasses.replace(s, steps=start) for s in run.sample_sets)
