"""A sharded batch draws per example what the whole batch draws, for any number of shards."""

from types import SimpleNamespace

import pytest
import torch
from torch import Tensor

from frugaldiff.config import DiffusionConfig, TimestepConfig, WeightingConfig
from frugaldiff.diffusion.objective import DiffusionObjective
from frugaldiff.diffusion.schedule import CosineLogSNRSchedule
from frugaldiff.diffusion.weighting import TruncatedSNRWeighting
from frugaldiff.distill.guided import GuidanceDistillationObjective
from frugaldiff.distill.progressive import ProgressiveDistillationObjective
from frugaldiff.errors import ConfigError
from frugaldiff.rng import make_generator
from frugaldiff.sharding import BatchShard, shard_for_rank

BATCH, NULL = 8, 10


class RowNet:
    """A row-wise fake network that depends on z, t, labels and w, and records what it saw.

    `cfg` makes it a patch model to the objective: 8×8 images in 2×2 patches, 16 tokens.
    """

    cfg = SimpleNamespace(num_tokens=16, patch_size=2)

    def __init__(self) -> None:
        self.labels: list[Tensor] = []
        self.keep: list[Tensor] = []

    def __call__(
        self,
        z: Tensor,
        t: Tensor,
        labels: Tensor,
        w: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        keep_indices: Tensor | None = None,
    ) -> Tensor:
        self.labels.append(labels)
        if keep_indices is not None:
            self.keep.append(keep_indices)
        rows = (z.shape[0], 1, 1, 1)
        out = torch.tanh(z) * (1 - 0.5 * t.to(z.dtype)).reshape(rows)  # (b, C, H, W)
        out = out + (labels.to(z.dtype) / 7).reshape(rows)
        return out if w is None else out + 0.05 * w.to(z.dtype).reshape(rows)


def batch() -> tuple[Tensor, Tensor]:
    gen = make_generator(11)
    x0 = torch.rand(BATCH, 3, 8, 8, generator=gen) * 2 - 1  # (B, 3, 8, 8)
    return x0, torch.arange(BATCH) % NULL


def sharded(objective: object, world_size: int, seed: int) -> tuple[Tensor, dict, RowNet]:
    """Per-sample losses and diagnostics of every rank, concatenated in rank order."""
    x0, labels = batch()
    net, losses, diags = RowNet(), [], []
    for rank in range(world_size):
        shard = shard_for_rank(BATCH, rank, world_size)
        loss, diag = objective.loss(  # type: ignore[attr-defined]
            net, shard.take(x0), shard.take(labels), make_generator(seed), shard=shard
        )
        losses.append(loss)
        diags.append(diag)
    joined = {key: torch.cat([d[key] for d in diags]) for key in diags[0]}
    return torch.cat(losses), joined, net


@pytest.mark.parametrize("world_size", [2, 4])
def test_diffusion_draws_ignore_the_world_size(world_size: int) -> None:
    # SpeeD's dual half depends on the batch size, label dropout and token masks on the row:
    # all must be the global batch's.
    cfg = DiffusionConfig(
        timesteps=TimestepConfig(name="speed"),
        loss_weighting=WeightingConfig("snr_trunc"),
        p_uncond=0.5,
        mask_ratio=0.5,
    )
    objective = DiffusionObjective.from_config(cfg, null_label=NULL)
    whole_loss, whole, whole_net = sharded(objective, 1, seed=3)
    loss, diag, net = sharded(objective, world_size, seed=3)
    assert torch.equal(diag["t"], whole["t"])
    assert torch.equal(torch.cat(net.labels), torch.cat(whole_net.labels))
    assert (torch.cat(whole_net.labels) == NULL).any()  # label dropout did happen
    assert torch.equal(torch.cat(net.keep), torch.cat(whole_net.keep))
    torch.testing.assert_close(loss, whole_loss, rtol=1e-6, atol=0.0)


@pytest.mark.parametrize("stage", ["guidance", "halving"])
def test_distillation_draws_ignore_the_world_size(stage: str) -> None:
    schedule = CosineLogSNRSchedule()
    if stage == "guidance":
        objective: object = GuidanceDistillationObjective(
            RowNet(), schedule, "v", TruncatedSNRWeighting(), NULL, (0.0, 4.0)
        )
    else:
        objective = ProgressiveDistillationObjective(
            RowNet(), schedule, 4, "v", TruncatedSNRWeighting(), (0.0, 4.0), train_grid="fine"
        )
    whole_loss, whole, _ = sharded(objective, 1, seed=5)
    loss, diag, _ = sharded(objective, 2, seed=5)
    assert torch.equal(diag["t"], whole["t"])
    assert torch.equal(diag["w"], whole["w"])
    torch.testing.assert_close(loss, whole_loss, rtol=1e-6, atol=0.0)


def test_network_draws_continue_on_rank_0_and_differ_elsewhere() -> None:
    step = make_generator(7)
    assert BatchShard.whole(BATCH).network_generator(step) is step  # one process: as before
    shards = [shard_for_rank(BATCH, rank, 4) for rank in range(4)]
    assert shards[0].network_generator(step) is step
    draws = [torch.rand(16, generator=s.network_generator(make_generator(7))) for s in shards[1:]]
    again = torch.rand(16, generator=shards[1].network_generator(make_generator(7)))
    assert torch.equal(draws[0], again)  # derived from the step's seed: resumable
    assert not torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], torch.rand(16, generator=make_generator(7)))


def test_shards_cover_the_global_batch_in_rank_order() -> None:
    shards = [shard_for_rank(12, rank, 3) for rank in range(3)]
    assert [(s.start, s.stop, s.size) for s in shards] == [(0, 4, 4), (4, 8, 4), (8, 12, 4)]
    rows = torch.arange(12)
    assert torch.equal(torch.cat([s.take(rows) for s in shards]), rows)


def test_a_batch_that_does_not_split_names_the_key_and_the_world_size() -> None:
    with pytest.raises(ConfigError, match=r"train\.batch_size=10 .* 4 processes \(world size 4\)"):
        shard_for_rank(10, 0, 4)


def test_draw_batch_draws_each_gpu_batch_on_its_own_for_any_world_size() -> None:
    """SpeeD's official per-GPU law: B / draw_batch draws of draw_batch rows, in row order."""
    timesteps = TimestepConfig(name="speed", draw_batch=BATCH // 2)
    cfg = DiffusionConfig(timesteps=timesteps, loss_weighting=WeightingConfig("snr_trunc"))
    objective = DiffusionObjective.from_config(cfg, null_label=NULL)
    gen = make_generator(3)
    halves = [objective.timestep_sampler.sample(BATCH // 2, gen, "cpu") for _ in range(2)]
    _, whole, _ = sharded(objective, 1, seed=3)
    assert torch.equal(whole["t"], torch.cat(halves))
    _, two, _ = sharded(objective, 2, seed=3)
    assert torch.equal(two["t"], whole["t"])
    one_draw = DiffusionObjective.from_config(
        DiffusionConfig(timesteps=TimestepConfig(name="speed"), loss_weighting=cfg.loss_weighting),
        null_label=NULL,
    )
    _, global_draw, _ = sharded(one_draw, 1, seed=3)
    assert not torch.equal(global_draw["t"], whole["t"])  # 5 primaries + 3 duals, not 2 x (3 + 1)


def test_noise_like_gives_each_shard_its_rows_of_one_global_draw() -> None:
    x0 = torch.zeros(2, 3, 4, 4, dtype=torch.float64)  # a rank's rows: the shape and dtype
    whole = BatchShard.whole(8).noise_like(
        torch.zeros(8, 3, 4, 4, dtype=torch.float64), torch.Generator().manual_seed(5)
    )
    parts = [
        shard_for_rank(8, rank, 4).noise_like(x0, torch.Generator().manual_seed(5))
        for rank in range(4)
    ]
    assert whole.shape == (8, 3, 4, 4)
    assert whole.dtype == torch.float64
    assert torch.equal(torch.cat(parts), whole)
