"""Data-parallel training under torchrun: the process group, rank-0 writes, and the launcher.

`frugaldiff train|halve --nproc N` re-executes itself under `torch.distributed.run --standalone`
(one node); each of the N workers joins a process group from torchrun's RANK, WORLD_SIZE and
LOCAL_RANK (nccl on CUDA, one GPU per local rank; gloo on the CPU). A `World` of size 1 makes
every collective a no-op, so one process runs the same code it ran before this module existed.

World-size independent (the same result for any N, up to float summation order): the global
batch `train.batch_size` and batch k's images (rank r trains on the contiguous rows
[r·B/N, (r+1)·B/N)); every per-example draw (t, ε, label dropout, token masks, w), which the
objectives make for the global batch and slice (sharding.py); the loss (the mean of the ranks'
means is the global mean, shards being equal); the gradient (averaged over ranks, clipped
after); hence the update, the EMA, the logged loss and gradient norm. Not independent: draws in the
network (UNet dropout) are sized by the local rows, so with dropout > 0 runs match only in
distribution; bf16 autocast and GPU kernels round differently for other batch shapes; and the
measured images/s (of the whole job) grows with N.

Gradients are averaged by an explicit all-reduce after backward rather than by wrapping the
network in DistributedDataParallel: objectives call the network with keyword arguments and read
`model.cfg`, and masked or MoE networks may leave parameters without gradient in a step; the
price is no overlap of communication with the backward pass.
"""

import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import nn

from frugaldiff.devices import resolve_device
from frugaldiff.errors import ConfigError
from frugaldiff.sharding import shard_for_rank

log = logging.getLogger(__name__)

NPROC_FLAG = "--nproc"
BUCKET_BYTES = 25 * 2**20  # gradients all-reduced per flat bucket (DDP's bucket_cap_mb = 25)
# torchrun forwards only the signals it handles to its workers (then SIGKILLs them after
# --shutdown-timeout, 30 s); SIGUSR1 is SLURM's time-limit warning, not among its defaults.
FORWARDED_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1"


@dataclass(frozen=True)
class World:
    """This process's place among the data-parallel workers; size 1 makes every method a no-op.

    `device` holds the tensors that collectives exchange (this rank's GPU under nccl).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes state, metrics, checkpoints and summaries."""
        return self.rank == 0

    def place(self, requested: torch.device) -> torch.device:
        """The training device: a CUDA request means this rank's own GPU among several."""
        return self.device if requested.type == "cuda" and self.size > 1 else requested

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of a tensor every rank holds (detached; the same on every rank)."""
        if self.size == 1:
            return value.detach()
        total = value.detach().to(self.device, copy=True)
        dist.all_reduce(total)
        return (total / self.size).to(value.device)

    def any(self, flag: bool) -> bool:
        """True on every rank if `flag` is True on any rank (e.g. a signal arrived somewhere)."""
        if self.size == 1:
            return flag
        votes = torch.tensor([int(flag)], device=self.device)
        dist.all_reduce(votes, op=dist.ReduceOp.MAX)
        return bool(votes.item())

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def broadcast_module(self, module: nn.Module) -> None:
        """Overwrite every rank's parameters and buffers with rank 0's, in place."""
        if self.size == 1:
            return
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)

    def average_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        """Replace each gradient by its mean over ranks, as DDP would.

        A parameter that got a gradient on some rank only (a token or expert unused elsewhere)
        gets zeros where it had none; one that got none anywhere keeps None, so AdamW skips it
        exactly as it does in one process.
        """
        if self.size == 1:
            return
        params = [p for p in parameters if p.requires_grad]
        has_grad = [p.grad is not None for p in params]
        present = torch.tensor(has_grad, dtype=torch.int32, device=self.device)  # (P,)
        dist.all_reduce(present, op=dist.ReduceOp.MAX)
        grads = []
        for param, used in zip(params, present.tolist(), strict=True):
            if used and param.grad is None:
                param.grad = torch.zeros_like(param)
            if used:
                grads.append(param.grad)
        for bucket in _buckets(grads):
            flat = torch.cat([g.reshape(-1) for g in bucket])  # (sum of numels,)
            dist.all_reduce(flat)
            flat /= self.size
            for grad, synced in zip(bucket, flat.split([g.numel() for g in bucket]), strict=True):
                grad.copy_(synced.view_as(grad))


SINGLE_PROCESS = World()


def _buckets(grads: list[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    """Consecutive gradients of one dtype and device, about BUCKET_BYTES each."""
    bucket: list[torch.Tensor] = []
    size = 0
    for grad in grads:
        nbytes = grad.numel() * grad.element_size()
        same = not bucket or (grad.dtype, grad.device) == (bucket[0].dtype, bucket[0].device)
        if bucket and (not same or size + nbytes > BUCKET_BYTES):
            yield bucket
            bucket, size = [], 0
        bucket.append(grad)
        size += nbytes
    if bucket:
        yield bucket


@contextlib.contextmanager
def joined_world(device_name: str) -> Iterator[World]:
    """Join torchrun's process group for the block (nccl for CUDA, gloo for the CPU), then leave.

    Outside torchrun (no WORLD_SIZE, or 1) this yields SINGLE_PROCESS and starts nothing.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        yield SINGLE_PROCESS
        return
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    device = resolve_device(device_name)
    if device.type == "cuda":
        visible = torch.cuda.device_count()
        if local_rank >= visible:
            raise ConfigError(
                f"local rank {local_rank} of {size} processes needs GPU {local_rank}, but "
                f"{visible} CUDA devices are visible"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", rank=rank, world_size=size, device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo", rank=rank, world_size=size)
    log.info("rank %d of %d joined the process group on %s", rank, size, device)
    try:
        yield World(rank, size, local_rank, device)
    finally:
        dist.destroy_process_group()


def under_torchrun() -> bool:
    """True inside a worker started by torchrun (which sets LOCAL_RANK)."""
    return "LOCAL_RANK" in os.environ


def check_launch(nproc: int, device_name: str, batch_size: int) -> None:
    """Fail before starting when N processes cannot share the batch or find N GPUs."""
    shard_for_rank(batch_size, 0, nproc)  # ConfigError naming train.batch_size and N
    # "cuda" is checked here, not by resolve_device, so the message can name N; "auto" counts
    # as a GPU request when torch sees one (it would train on the GPU).
    wants_gpu = device_name == "cuda" or resolve_device(device_name).type == "cuda"
    visible = torch.cuda.device_count() if wants_gpu else 0
    if wants_gpu and visible < nproc:
        raise ConfigError(
            f"{NPROC_FLAG} {nproc} with train.device={device_name!r} needs {nproc} GPUs (one per "
            f"process), but {visible} CUDA devices are visible "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
        )


def threads_per_process(threads: int) -> int:
    """A job's CPU threads split among the workers on this node (at least 1 each)."""
    return max(1, threads // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def without_nproc(argv: Sequence[str]) -> list[str]:
    """The command-line arguments minus `--nproc N` / `--nproc=N`."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == NPROC_FLAG:
            skip = True
        elif not arg.startswith(f"{NPROC_FLAG}="):
            kept.append(arg)
    return kept


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """`python -m torch.distributed.run ... -m frugaldiff <argv minus --nproc>`, as a list."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # one node, rendezvous on a free local port
        f"--nproc-per-node={nproc}",
        f"--signals-to-handle={FORWARDED_SIGNALS}",
        "-m",
        "frugaldiff",
        *without_nproc(argv),
    ]


def relaunch_under_torchrun(nproc: int, argv: Sequence[str]) -> NoReturn:
    """Replace this process by torchrun running N copies of the same command.

    exec (not a child process) keeps the PID, so SLURM's SIGTERM/SIGUSR1 reaches torchrun,
    which forwards it to every worker; the job's exit code is then torchrun's (1 if any worker
    failed, e.g. exited 3 after saving state on preemption).
    """
    command = torchrun_command(nproc, argv)
    log.info("relaunching under torchrun: %s", " ".join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)
