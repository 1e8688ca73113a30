"""The one training loop: AdamW, linear warm-up, grad clipping, EMA, fp32/bf16, exact resume.

Every random draw of iteration k (timesteps, noise, label and model dropout) comes from a
generator seeded by (seed, k) and batch k is a
function of (seed, k) (data/loader.py), so a run resumed from state at iteration k continues
bit-identically on the CPU. State is written atomically every `state_every_iters` and on
SIGTERM/SIGUSR1 (SLURM preemption); checkpoints at `ckpt_iters` are kept under state/ and
copied to their declared paths only when the run finishes (declared outputs are written last).
Under torchrun each rank trains its slice of the global batch with averaged gradients and rank 0
alone writes (train/distributed.py says what does and does not depend on the world size).
"""

import dataclasses
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from frugaldiff import preemption
from frugaldiff.config import RunConfig, to_dict
from frugaldiff.data.latents import LatentDataset
from frugaldiff.data.loader import BatchSchedule, load_training_data
from frugaldiff.devices import resolve_device
from frugaldiff.errors import NumericsError
from frugaldiff.io import atomic_write, write_json
from frugaldiff.models.registry import fit_to_data, masking_mode
from frugaldiff.preemption import EventLog, Preempted
from frugaldiff.provenance import config_hash
from frugaldiff.rng import derive_seed, make_generator
from frugaldiff.sharding import shard_for_rank
from frugaldiff.train.distributed import SINGLE_PROCESS, World
from frugaldiff.train.ema import make_ema
from frugaldiff.train.lr_schedule import lr_factor
from frugaldiff.train.records import MetricsLog, counted_cost
from frugaldiff.train.stages import Stage, build_stage
from frugaldiff.train.state import checkpoint_payload, load_torch, save_torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepRecord:
    """What one iteration reports to the caller (the CLI draws a progress bar from it)."""

    iteration: int
    loss: float
    lr: float
    images_per_second: float


class Trainer:
    """Owns model, EMA, optimiser and the objective for one run; `steps()` drives it.

    Every rank of a `world` holds the same model, EMA and optimiser state (the same averaged
    gradients reach each); only the main rank writes them.
    """

    @classmethod
    def for_run(
        cls,
        cfg: RunConfig,
        train_data: Path,
        state_dir: Path,
        halving_teacher: str | None = None,
        student_steps: int = 0,
        world: World = SINGLE_PROCESS,
    ) -> "Trainer":
        """The trainer of run `cfg` on `train_data`, or of one of its halvings (train/stages.py)."""
        dataset = load_training_data(train_data)
        # The data give the model its input channels and size (pixels or VAE latents).
        model_cfg = fit_to_data(cfg.model, dataset.sample_shape, str(train_data))
        cfg = dataclasses.replace(cfg, model=model_cfg)
        return cls(build_stage(cfg, halving_teacher, student_steps), dataset, state_dir, world)

    def __init__(
        self, stage: Stage, dataset: Any, state_dir: Path, world: World = SINGLE_PROCESS
    ) -> None:
        """Train a built `stage` (train/stages.py build_stage) on `dataset`, state in state_dir."""
        if stage.run is None:
            raise ValueError("Trainer: the stage names no run; build it with build_stage")
        cfg = stage.run
        self.dataset = dataset
        self.cfg = cfg
        self.tc = tc = stage.train  # the run's train config, or a halving's (train/stages.py)
        # What the run's masking is (models/registry.py) and, for latents, the VAE sampling
        # decodes with, so a checkpoint says both.
        latent = self.dataset.codec_identity if isinstance(self.dataset, LatentDataset) else None
        self.meta = dataclasses.replace(
            stage.meta,
            masking=masking_mode(cfg.model.name, cfg.diffusion.mask_ratio, cfg.init_from),
            latent=latent,
        )
        self.state_dir = state_dir
        self.world = world
        self.events = EventLog(self.events_path, writes=world.is_main)
        self.metrics = MetricsLog(self.state_dir / "metrics.jsonl", writes=world.is_main)
        self.shard = shard_for_rank(tc.batch_size, world.rank, world.size)  # this rank's rows
        self.device = world.place(resolve_device(tc.device))
        self.batches = BatchSchedule(self.dataset, tc.batch_size, tc.seed, tc.hflip)
        self.model = stage.model.to(self.device)
        self.objective = stage.objective
        if stage.teacher is not None:
            stage.teacher.to(self.device)  # in place: the objective holds the same module
        self.ema = make_ema(self.model, tc.ema_decay)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=tc.lr, betas=tc.adam_betas, weight_decay=tc.weight_decay
        )
        if stage.resume is not None:
            self._continue(stage.resume)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lr_factor(tc.lr_decay, tc.warmup_iters, tc.iterations, tc.lr_final_ratio),
        )
        self.config_dict = to_dict(cfg)
        self.config_hash = config_hash({"run": self.config_dict, "halving": stage.halving_steps})
        self.iteration = 0

    def _continue(self, resume: dict[str, Any]) -> None:
        """Continue an earlier run's optimiser and EMA (train.init_weights 'resume').

        The AdamW moments and step counts go on; this run's lr, betas and weight decay replace
        the saved ones, and the lr schedule built next starts from its first step.
        """
        self.ema.module.load_state_dict(resume["ema"])
        self.ema.n_averaged.fill_(resume["ema_updates"])
        self.optimizer.load_state_dict(resume["optimizer"])
        for group in self.optimizer.param_groups:
            group.update(lr=self.tc.lr, betas=self.tc.adam_betas, weight_decay=self.tc.weight_decay)
            group.pop("initial_lr", None)

    # ---- state -------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.state_dir / "state.pt"

    @property
    def metrics_path(self) -> Path:
        return self.metrics.path

    @property
    def events_path(self) -> Path:
        return self.state_dir / "events.jsonl"

    def ckpt_state_path(self, iteration: int) -> Path:
        return self.state_dir / "ckpt" / f"iter{iteration}.pt"

    def save_state(self) -> None:
        if not self.world.is_main:
            return
        save_torch(
            self.state_path,
            {
                "config_hash": self.config_hash,
                "iteration": self.iteration,
                "model": self.model.state_dict(),
                "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
            },
        )

    def try_resume(self) -> bool:
        """Resume from state/ if it exists and was made by the same resolved config."""
        if not self.state_path.is_file():
            return False
        state = load_torch(self.state_path, "training state")
        if state.get("config_hash") != self.config_hash:
            log.warning("%s was made by another config; starting afresh", self.state_path)
            return False
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.iteration = int(state["iteration"])
        self.metrics.truncate_after(self.iteration)  # a resumed log has no repeats
        self.events.record("resumed", self.iteration)
        log.info("resumed %s at iteration %d", self.cfg.name, self.iteration)
        return True

    # ---- the loop ----------------------------------------------------------------------
    def step(self) -> tuple[float, float]:
        """One optimiser update at self.iteration.

        Returns the mean loss over the global batch and the gradient norm before clipping (the
        global batch's too: AdamW would hide a wrongly scaled gradient, the norm does not).
        """
        tc = self.tc
        images, labels = self.batches.batch(self.iteration)  # (B, 3, H, W), (B,)
        images, labels = self.shard.take(images), self.shard.take(labels)  # (b, 3, H, W), (b,)
        images, labels = images.to(self.device), labels.to(self.device)
        generator = make_generator(derive_seed(tc.seed, "train-step", self.iteration), self.device)
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=tc.precision == "bf16"):
            per_sample, _ = self.objective.loss(
                self.model, images, labels, generator, shard=self.shard
            )
        loss = per_sample.mean()  # this rank's rows
        global_loss = self.world.mean(loss)  # equal shards: the global batch's mean
        if not torch.isfinite(global_loss):  # on every rank alike, so all of them stop
            raise NumericsError(
                f"run {self.cfg.name}: loss is {global_loss.item()} at iteration "
                f"{self.iteration}; stopped. The last good state is {self.state_path} "
                f"(iteration <= {self.iteration}); lower train.lr or check the data"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.world.average_gradients(self.model.parameters())  # the global batch's gradient
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update_parameters(self.model)
        pair = torch.stack([global_loss.float(), grad_norm.float().to(global_loss.device)])
        loss_value, norm_value = pair.tolist()  # one device sync for both
        return loss_value, norm_value

    def steps(self) -> Iterator[StepRecord]:
        """Run to the stage's iterations, yielding after every update."""
        tc = self.tc
        self.world.broadcast_module(self.model)  # all ranks start from rank 0's weights, as DDP
        if self.iteration == 0 and 0 in tc.ckpt_iters:
            # Checkpoint 0 is the initial weights: all a direct run's stage writes (stages.py).
            self._save_checkpoint()
        tick, tick_iter = time.perf_counter(), self.iteration
        while self.iteration < tc.iterations:
            # A signal on any rank stops every rank at the same boundary (one all-reduce).
            signum = preemption.requested()
            if self.world.any(signum is not None):
                self.save_state()
                self.events.record("preempted", self.iteration, signal=signum)
                self.world.barrier()  # no rank exits before rank 0 has written the state
                raise Preempted(
                    f"signal {signum or 'on another rank'}: state saved at iteration "
                    f"{self.iteration} "
                    f"in {self.state_path}; rerun to resume"
                )
            lr = self.scheduler.get_last_lr()[0]
            loss, grad_norm = self.step()
            self.iteration += 1
            now = time.perf_counter()
            rate = (self.iteration - tick_iter) * tc.batch_size / max(now - tick, 1e-9)
            if self.iteration % tc.log_every_iters == 0 or self.iteration == tc.iterations:
                self.metrics.append(
                    {
                        "iteration": self.iteration,
                        "loss": loss,
                        "lr": lr,
                        "images_seen": self.iteration * tc.batch_size,
                        "images_per_second": rate,
                        "grad_norm": grad_norm,
                    }
                )
                tick, tick_iter = now, self.iteration
            if self.iteration in tc.ckpt_iters:
                self._save_checkpoint()
            if self.iteration % tc.state_every_iters == 0 or self.iteration in tc.ckpt_iters:
                self.save_state()
            yield StepRecord(self.iteration, loss, lr, rate)

    def _save_checkpoint(self) -> None:
        """Keep checkpoint `self.iteration` under state/ (published when the run finishes)."""
        if not self.world.is_main:
            return
        save_torch(
            self.ckpt_state_path(self.iteration),
            {
                **checkpoint_payload(self.model, self.ema.module, self.config_dict, self.iteration),
                **self.meta.to_payload(),
                **self._continuation(),
            },
        )

    def _continuation(self) -> dict[str, Any]:
        """The last checkpoint also holds what a follow-up run with init_weights 'resume' needs."""
        if self.iteration != self.tc.ckpt_iters[-1]:
            return {}
        return {
            "optimizer": self.optimizer.state_dict(),
            "ema_updates": int(self.ema.n_averaged.item()),
        }

    def cost(self) -> dict[str, float]:
        """Parameters and counted training FLOPs per image (train/records.py counted_cost)."""
        images, labels = self.batches.batch(0)
        return counted_cost(self.model, self.objective, images, labels)

    def summary(self) -> dict[str, Any]:
        """Measured throughput (median of the logged rates) and the counted cost of the run."""
        median = self.metrics.median_images_per_second()
        return {
            "run": self.cfg.name,
            "iterations": self.iteration,
            "batch_size": self.tc.batch_size,
            "world_size": self.world.size,  # images_per_second is the whole job's
            "device": str(self.device),
            "images_per_second": median,
            "step_seconds": self.tc.batch_size / median if median else float("nan"),
            "preemptions": self.events.count("preempted"),
            **self.cost(),
        }

    def publish(self, ckpt_paths: dict[int, Path], metrics_out: Path, summary_out: Path) -> None:
        """Copy finished checkpoints, the metrics log and the run summary to their paths, last.

        Only the main rank publishes; the others return at once.
        """
        if not self.world.is_main:
            return
        for iteration, target in ckpt_paths.items():
            source = self.ckpt_state_path(iteration)
            with atomic_write(target) as tmp:
                shutil.copyfile(source, tmp)
        self.metrics.publish(metrics_out)
        write_json(summary_out, self.summary())
