"""Draw a sample set from a checkpoint: N images, balanced classes, per-image seeds.

Image i has label i mod num_classes and its own generator seeded by (seed, i) (EDM's
generate.py), so a sample set is identical whatever the batch size or device count. NFE is
measured, not assumed: the network rows evaluated divided by the images drawn (a guided step
costs 2, Meng's "N×2").
"""

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from frugaldiff import preemption
from frugaldiff.config import RunConfig, SampleSetConfig, from_dict, to_dict
from frugaldiff.data.images import image_grid, to_uint8
from frugaldiff.data.vae import pixel_decoder
from frugaldiff.devices import resolve_device
from frugaldiff.diffusion.preconditioning import InputScaling
from frugaldiff.diffusion.schedule import build_schedule_by_name
from frugaldiff.distill.guided import load_guided_model
from frugaldiff.distill.sampling import jump_model_of, student_denoiser
from frugaldiff.errors import ConfigError
from frugaldiff.io import atomic_write
from frugaldiff.models.registry import build_model
from frugaldiff.npz_stream import stream_npz
from frugaldiff.preemption import Preempted
from frugaldiff.rng import derive_seed, make_generator
from frugaldiff.sampling.denoisers import clip_denoiser
from frugaldiff.sampling.guidance import guided_denoiser
from frugaldiff.sampling.networks import CountingNetwork, RowCounter, X0Predictor
from frugaldiff.sampling.noise import randn_per_image
from frugaldiff.sampling.shards import ShardStore
from frugaldiff.sampling.solvers import build_solver
from frugaldiff.train.checkpoint_meta import CheckpointMeta
from frugaldiff.train.state import load_checkpoint

log = logging.getLogger(__name__)

GRID_IMAGES = 64  # the PNG grid beside a sample set: its first 64 images, 8 per row


@dataclass(frozen=True)
class SampleRequest:
    """A sample set to draw: which images, from which checkpoint, how."""

    checkpoint: Path
    sample_set: SampleSetConfig
    num_images: int
    seed: int
    batch_size: int
    device: str


class SampleSetDrawer:
    """Loads a checkpoint's EMA weights once and draws batches of a sample set.

    A plain checkpoint is sampled with classifier-free guidance at w (2 NFE per step when
    w != 0); so is a direct-chain student (`direct` in the checkpoint, no `guidance_w_max`:
    Meng's baseline keeps the teacher's cond/uncond structure), with D on its own grid only. A
    w-conditioned student (stage 1 or a halving, `guidance_w_max` in the checkpoint) takes w
    as an input (1 NFE per step), and a halving's student only on its own step grid, or by S
    at twice its steps (`jump_model` half: it makes that sampler's 2/N jumps).
    """

    def __init__(self, request: SampleRequest) -> None:
        payload = load_checkpoint(request.checkpoint)
        self.request = request
        self.run = from_dict(RunConfig, payload["run_config"], f"{request.checkpoint}:run_config")
        self.device = resolve_device(request.device)
        meta = CheckpointMeta.from_payload(payload)
        self.w_max = meta.guidance_w_max
        self.student_steps = meta.student_steps
        self.iteration = int(payload["iteration"])
        self.halving = meta.halving
        sample_set = request.sample_set
        if meta.direct and sample_set.solver == "stochastic":  # tier.py refuses it too
            raise ConfigError(
                f"{request.checkpoint}: sample_sets[].solver='stochastic' on a direct-chain "
                "student; Meng's S is defined for w-conditioned students only: use 'ddim'"
            )
        try:
            # S `half`: a halving drawn at twice its steps makes the jumps of that sampler (d).
            self.jump_model = jump_model_of(
                sample_set.solver, sample_set.steps, self.student_steps, self.halving
            )
        except ConfigError as err:
            raise ConfigError(f"{request.checkpoint}: {err}") from err
        # The grid a halving's times were drawn from, recorded beside every number (d).
        self.train_grid = self.run.distill.train_grid if self.halving else None
        if self.jump_model == "half" and self.train_grid == "student":  # tier.py refuses it too
            raise ConfigError(
                f"{request.checkpoint}: S jump_model half would evaluate this "
                f"{self.student_steps}-step student at odd multiples of 1/{sample_set.steps}, off "
                "its train_grid 'student'; distil with train_grid: fine or use jump_model: same"
            )
        learn_sigma = self.run.diffusion.learn_sigma
        if sample_set.variance == "learned" and not learn_sigma:
            raise ConfigError(
                f"{request.checkpoint}: sample set variance 'learned' needs a checkpoint "
                "trained with diffusion.learn_sigma: true; this one has no learned variance"
            )
        if self.w_max is None:
            self.model = build_model(self.run.model, learn_sigma)
            self.model.load_state_dict(payload["ema"])
        else:
            self.model = load_guided_model(payload["ema"], self.run.model, self.w_max)
        self.model.to(self.device).eval()
        # Latent runs decode x̂ with their VAE, so evaluation still sees uint8 images.
        self.decode = pixel_decoder(self.run.data.latent, meta.latent, request.checkpoint)
        self.schedule = build_schedule_by_name(self.run.diffusion.schedule)
        # EDM hook (diffusion/preconditioning.py, docs/microdit.md (g)): a run trained on data ÷ σ_d
        # with time input c_noise is sampled in those units: the network gets c_noise, x̂ is
        # clipped at ±1/σ_d (pixels in [-1, 1]) and the solver's result is multiplied by σ_d
        # before decoding; heun's σ-grid sits at σ_d. The plain VP core is σ_d = 1, time t.
        self.inputs = InputScaling.from_config(self.run.diffusion, self.schedule)
        self.solver = build_solver(
            request.sample_set.solver,
            self.schedule,
            variance=request.sample_set.variance,
            spacing=request.sample_set.spacing,
            sigma_data=self.inputs.sigma_data,
        )
        self.timesteps = self.solver.default_timesteps(request.sample_set.steps).to(self.device)
        self.counter = RowCounter()
        self.predict_x0 = X0Predictor(
            self.model,
            self.schedule,
            self.run.diffusion.parameterization,
            self.counter,
            self.inputs,
            learn_sigma,
        )

    def denoiser(self, labels: torch.Tensor) -> Callable:
        """Guided teacher denoiser, or the student's own 1-NFE denoiser, for these labels."""
        w = self.request.sample_set.w
        if self.w_max is None:
            return guided_denoiser(self.predict_x0, labels, self.model.cfg.num_classes, w)
        network = CountingNetwork(self.model, self.counter)
        return student_denoiser(
            network, self.schedule, self.run.diffusion.parameterization, labels, w
        )

    def batch(self, index: range) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images (b, C, H, W) and labels (b,) of the images numbered `index`."""
        arch, sample_set = self.model.cfg, self.request.sample_set
        labels = torch.tensor([i % arch.num_classes for i in index], device=self.device)
        gens = [
            make_generator(derive_seed(self.request.seed, "image", i), self.device) for i in index
        ]
        shape = (arch.in_channels, arch.image_size, arch.image_size)
        x_T = randn_per_image(gens, shape, device=self.device, dtype=torch.float32)  # (b, C, H, W)
        denoiser = self.denoiser(labels)
        if sample_set.clip_x0:
            denoiser = clip_denoiser(denoiser, limit=self.inputs.clip_limit)  # EDM hook
        with torch.inference_mode():
            x0 = self.solver.solve(denoiser, x_T, self.timesteps, gens)  # (b, C, H, W)
            images = self.decode(self.inputs.to_data_units(x0))  # (b, 3, H', W') in [-1, 1]
        return to_uint8(images), labels.cpu().numpy()

    def ranges(self) -> Iterator[range]:
        """The image index ranges of successive batches."""
        n, b = self.request.num_images, self.request.batch_size
        for start in range(0, n, b):
            yield range(start, min(start + b, n))


def request_fingerprint(request: SampleRequest) -> dict[str, Any]:
    """What makes two requests draw the same images: checkpoint identity, set, seed, batching."""
    stat = Path(request.checkpoint).stat()
    return {
        "checkpoint": str(request.checkpoint),
        "checkpoint_bytes": stat.st_size,
        "checkpoint_mtime_ns": stat.st_mtime_ns,
        "sample_set": to_dict(request.sample_set),
        "num_images": request.num_images,
        "seed": request.seed,
        "batch_size": request.batch_size,
    }


def generate_samples(
    request: SampleRequest,
    out_npz: Path,
    out_grid: Path,
    progress: Callable[[Iterator[range]], Iterable[range]] = iter,
    shard_dir: Path | None = None,
) -> dict[str, Any]:
    """Draw the whole set, write images.npz and a PNG grid (atomically); return its metadata.

    `progress` wraps the batch loop (the CLI passes tqdm). With `shard_dir`, each batch is kept
    there as it finishes and a SIGTERM/SIGUSR1 stops at the next batch boundary (Preempted);
    a rerun loads the finished shards and draws only the rest. Images are streamed into
    images.npz batch by batch (npz_stream.py), so a set larger than RAM (50k at 256² is 9.8 GB)
    never has to be held whole; only the grid's first 64 images and the labels are kept.
    """
    drawer = SampleSetDrawer(request)
    shards = ShardStore(shard_dir, request_fingerprint(request)) if shard_dir else None
    firsts, labels = [], []
    rows, wall, resumed, batches = 0, 0.0, 0, 0
    with stream_npz(out_npz) as npz, contextlib.ExitStack() as member:
        images = None  # the images member, opened once the first batch gives the image shape
        for index in progress(drawer.ranges()):
            done = shards.load(index) if shards else None
            if done is None:
                if (signum := preemption.requested()) is not None:
                    raise Preempted(
                        f"signal {signum}: {batches} batches of {request.num_images} images "
                        f"kept in {shard_dir}; rerun to resume"
                    )
                start_time, start_rows = time.perf_counter(), drawer.counter.rows
                batch_images, batch_labels = drawer.batch(index)
                done = (
                    batch_images,
                    batch_labels,
                    drawer.counter.rows - start_rows,
                    time.perf_counter() - start_time,
                )
                if shards:
                    shards.save(index, *done)
            else:
                resumed += 1
            if images is None:
                shape = (request.num_images, *done[0].shape[1:])  # (N, C, H, W) uint8
                images = member.enter_context(npz.rows("images", shape, np.dtype(np.uint8)))
            images.write(done[0])
            if sum(len(f) for f in firsts) < GRID_IMAGES:
                firsts.append(done[0][:GRID_IMAGES])
            labels.append(done[1])
            rows += done[2]
            wall += done[3]
            batches += 1
        member.close()  # the images member is complete (its row count checked) before labels
        npz.add("labels", np.concatenate(labels))
    num_images = request.num_images
    meta = {
        "checkpoint": str(request.checkpoint),
        "iteration": drawer.iteration,
        "student_steps": drawer.student_steps,
        "guidance_w_max": drawer.w_max,
        "solver": request.sample_set.solver,
        "steps": request.sample_set.steps,
        "w": request.sample_set.w,
        "clip_x0": request.sample_set.clip_x0,
        "variance": request.sample_set.variance,
        "spacing": request.sample_set.spacing,
        "jump_model": drawer.jump_model,
        "train_grid": drawer.train_grid,
        "num_images": num_images,
        "seed": request.seed,
        "nfe_per_image": rows / num_images,
        "wall_seconds": wall,
        "seconds_per_image": wall / num_images,
        "resumed_batches": resumed,
    }
    grid = image_grid(np.concatenate(firsts)[:GRID_IMAGES], columns=8)
    with atomic_write(out_grid) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    if shards:
        shards.remove()
    return meta
