"""Invariants of MicroDiT's token masking (docs/microdit.md (l) 2, 3)."""

import pytest
import torch

from frugaldiff.errors import ConfigError
from frugaldiff.masking import (
    MaskIndices,
    TokenMasker,
    apply_mask,
    kept_count,
    masked_mse,
    restore_tokens,
)

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("num_tokens", "ratio", "expected"),
    [(256, 0.75, 64), (20, 0.9, 2), (64, 0.5, 32), (16, 0.25, 12), (16, 0.0, 16), (4, 0.9, 1)],
)
def test_kept_count_is_floor_with_float_guard(num_tokens: int, ratio: float, expected: int) -> None:
    assert kept_count(num_tokens, ratio) == expected


def test_draw_keeps_sorted_unique_indices_and_a_permutation(generator: torch.Generator) -> None:
    batch, num_tokens, ratio = 6, 16, 0.75
    mask = TokenMasker(ratio).draw(batch, num_tokens, generator, CPU)
    assert mask.keep.shape == (batch, 4)
    assert mask.restore.shape == (batch, num_tokens)
    assert bool((mask.keep[:, 1:] > mask.keep[:, :-1]).all())
    assert mask.dropped.sum(1).tolist() == [num_tokens - 4] * batch
    assert mask.effective_ratio == 0.75
    dropped_idx = torch.stack([row.nonzero().flatten() for row in mask.dropped])  # (B, N − K)
    union = torch.cat([mask.keep, dropped_idx], 1).sort(1).values
    assert torch.equal(union, torch.arange(num_tokens).expand(batch, -1))
    assert not torch.equal(mask.keep[0], mask.keep[1])  # positions differ per sample


def test_restore_inverts_apply(generator: torch.Generator) -> None:
    batch, num_tokens, dim = 3, 16, 5
    mask = TokenMasker(0.5).draw(batch, num_tokens, generator, CPU)
    x = torch.randn(batch, num_tokens, dim, generator=generator)
    kept = apply_mask(x, mask.keep)  # (B, K, D)
    fill = torch.full((dim,), -7.0)
    back = restore_tokens(kept, fill, mask.restore)  # (B, N, D)
    dropped = mask.dropped[:, :, None].expand_as(x)
    assert torch.equal(back[~dropped], x[~dropped])
    assert bool((back[dropped] == -7.0).all())
    assert torch.equal(kept, torch.gather(x, 1, mask.keep[:, :, None].expand(-1, -1, dim)))


def test_ratio_zero_keeps_arange(generator: torch.Generator) -> None:
    mask = TokenMasker(0.0).draw(2, 9, generator, CPU)
    assert torch.equal(mask.keep, torch.arange(9).expand(2, -1))
    assert torch.equal(mask.restore, torch.arange(9).expand(2, -1))


def test_draw_is_determined_by_the_generator() -> None:
    masker = TokenMasker(0.75)
    draws = [masker.draw(4, 64, torch.Generator().manual_seed(s), CPU).keep for s in (5, 5, 6)]
    assert torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], draws[2])


def test_from_keep_rejects_unsorted_or_out_of_range_indices() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        MaskIndices.from_keep(torch.tensor([[3, 1]]), 4)
    with pytest.raises(ValueError, match="lie in"):
        MaskIndices.from_keep(torch.tensor([[1, 4]]), 4)
    with pytest.raises(ConfigError, match=r"mask_ratio=1\.0"):
        TokenMasker(1.0)


def test_masked_mse_matches_hand_computed_value() -> None:
    # 1 sample, 1 channel, 4×4 image, patch 2: patches 0..3 with constant errors 1, 2, 3, 4.
    pred = torch.tensor([[1.0, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])[None, None]
    target = torch.zeros_like(pred)
    keep = torch.tensor([[1, 2]])
    assert masked_mse(pred, target, keep, 2).tolist() == [(4.0 + 9.0) / 2]
    assert masked_mse(pred, target, None, 2).tolist() == [(1 + 4 + 9 + 16) / 4]
    full = torch.arange(4)[None]
    assert torch.equal(masked_mse(pred, target, full, 2), (pred - target).pow(2).mean((1, 2, 3)))


def test_masked_mse_ignores_dropped_patches(generator: torch.Generator) -> None:
    batch, channels, size, patch = 2, 3, 8, 2
    mask = TokenMasker(0.75).draw(batch, (size // patch) ** 2, generator, CPU)
    pred = torch.randn(batch, channels, size, size, generator=generator, requires_grad=True)
    target = torch.randn(batch, channels, size, size, generator=generator)
    loss = masked_mse(pred, target, mask.keep, patch)
    loss.sum().backward()
    assert pred.grad is not None
    pixel_dropped = mask.dropped.reshape(batch, 1, 4, 1, 4, 1).expand(-1, channels, -1, 2, -1, 2)
    pixel_dropped = pixel_dropped.reshape(batch, channels, size, size)
    assert bool((pred.grad[pixel_dropped] == 0).all())
    assert bool((pred.grad[~pixel_dropped] != 0).all())
    with torch.no_grad():
        changed = torch.where(pixel_dropped, pred + 100.0, pred)
    assert torch.equal(masked_mse(changed, target, mask.keep, patch), loss)
