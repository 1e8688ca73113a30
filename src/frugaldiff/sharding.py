"""Which rows of a global batch one process trains on, and how its random draws follow them.

Under data parallelism (train/distributed.py) rank r of R takes the contiguous rows
[r·B/R, (r+1)·B/R) of global batch k. An objective draws every per-example quantity (t, ε, label
and token masks, w) for all B rows from the step's generator, identically on every rank, and
keeps its own rows with `BatchShard.take`: the draws of example i are then the same for any R,
and with R = 1 the shard is the whole batch, so the single-process draws are today's bit for bit.
The network's own draws (dropout) are sized by the local rows and cannot match across R; they
come from `BatchShard.network_generator`, so ranks do not share dropout masks.
"""

from dataclasses import dataclass

import torch

from frugaldiff.errors import ConfigError
from frugaldiff.rng import derive_seed, make_generator


@dataclass(frozen=True)
class BatchShard:
    """Rows [start, stop) of a global batch of `global_size` rows, owned by process `rank`."""

    start: int
    stop: int
    global_size: int
    rank: int = 0

    @classmethod
    def whole(cls, batch_size: int) -> "BatchShard":
        """The single-process shard: every row."""
        return cls(0, batch_size, batch_size)

    @property
    def size(self) -> int:
        """Rows this process holds (B/R)."""
        return self.stop - self.start

    def take(self, global_rows: torch.Tensor) -> torch.Tensor:
        """This shard's rows of a tensor of global rows: (B, ...) → (b, ...)."""
        if global_rows.shape[0] != self.global_size:
            raise ValueError(
                f"BatchShard: expected {self.global_size} global rows, got {global_rows.shape[0]}"
            )
        return global_rows[self.start : self.stop]

    def noise_like(self, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """This shard's rows of ε ~ N(0, I) drawn for the global batch: (b, C, H, W) like x0.

        The one noise draw of every objective (plain diffusion, guidance distillation, each
        halving): drawn on the generator's device in x0's dtype, as (B, C, H, W) for all B rows,
        then sliced and moved to x0's device, so example i's ε is the same for any world size.
        """
        eps = torch.randn(
            (self.global_size, *x0.shape[1:]),
            generator=generator,
            device=generator.device,
            dtype=x0.dtype,
        )  # (B, C, H, W)
        return self.take(eps).to(x0.device)  # (b, C, H, W)

    def network_generator(self, generator: torch.Generator) -> torch.Generator:
        """The generator for draws made inside the network (dropout), which are sized per rank.

        Rank 0 continues the step's generator, so one process draws exactly as before; rank r > 0
        gets its own stream, derived from the step's seed, so no two ranks share a dropout mask.
        """
        if self.rank == 0:
            return generator
        seed = derive_seed(generator.initial_seed(), "network-draws", self.rank)
        return make_generator(seed, generator.device)


def shard_for_rank(batch_size: int, rank: int, world_size: int) -> BatchShard:
    """Rank `rank`'s contiguous slice of a global batch; the global batch must split evenly.

    Equal slices make the mean of the ranks' mean losses the global mean loss, so averaged
    gradients equal the single-process gradient of the global batch.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"shard_for_rank: rank {rank} outside a world of {world_size}")
    if batch_size % world_size != 0:
        raise ConfigError(
            f"train.batch_size={batch_size} is the global batch and must divide evenly among "
            f"the {world_size} processes (world size {world_size}); choose a multiple of "
            f"{world_size} or another process count"
        )
    rows = batch_size // world_size
    return BatchShard(rank * rows, (rank + 1) * rows, batch_size, rank)
