"""Random token masking of MicroDiT (Sehwag et al. 2024, arXiv 2407.15811), as plain functions.

`TokenMasker` draws which patches a training step keeps, from the caller's generator (the model
never draws); `apply_mask` gathers them, `restore_tokens` puts them back; `masked_mse` is the
denoising error on kept patches only (the paper's Eq. 3), normalised per sample over the kept
patches (docs/microdit.md (b) 4, 8, 9 and pitfalls (k) 2, 3, 5).
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from frugaldiff.errors import ConfigError

# docs/microdit.md (k) 3: int(N·(1 − r)) has float error (e.g. 256·(1 − 0.7) = 76.8000…01).
_COUNT_EPS = 1e-6


def kept_count(num_tokens: int, mask_ratio: float) -> int:
    """K = ⌊N·(1 − r) + ε⌋, at least 1: the number of tokens a masked step keeps."""
    return max(1, math.floor(num_tokens * (1.0 - mask_ratio) + _COUNT_EPS))


@dataclass(frozen=True)
class MaskIndices:
    """Which tokens a batch keeps; `keep` is sorted per row (pitfall (k) 2).

    keep: (B, K) long, kept token indices in increasing order. restore: (B, N) long, the inverse
    of the permutation [kept tokens, then dropped tokens, each in increasing order], so that
    `cat([x_kept, fill], 1)` gathered with `restore` puts every token back in place.
    """

    keep: Tensor
    restore: Tensor

    @classmethod
    def from_keep(cls, keep: Tensor, num_tokens: int) -> "MaskIndices":
        """The full index set of sorted, unique kept indices `keep` (B, K) out of N tokens."""
        if keep.ndim != 2 or keep.dtype != torch.int64 or not 1 <= keep.shape[1] <= num_tokens:
            raise ValueError(
                f"MaskIndices: expected keep of shape (B, K) int64 with 1 <= K <= {num_tokens}, "
                f"got {tuple(keep.shape)} {keep.dtype}"
            )
        if keep.numel() and (keep[:, 0].min() < 0 or keep[:, -1].max() >= num_tokens):
            raise ValueError(f"MaskIndices: keep indices must lie in [0, {num_tokens})")
        if keep.shape[1] > 1 and not bool((keep[:, 1:] > keep[:, :-1]).all()):
            raise ValueError("MaskIndices: keep must be strictly increasing along each row")
        batch = keep.shape[0]
        dropped = torch.ones(batch, num_tokens, dtype=torch.bool, device=keep.device)  # (B, N)
        dropped.scatter_(1, keep, False)
        # A stable sort of the 0/1 mask lists kept indices, then dropped ones, each ascending.
        order = torch.sort(dropped.to(torch.uint8), dim=1, stable=True).indices  # (B, N)
        return cls(keep=keep, restore=torch.argsort(order, dim=1))

    @property
    def num_tokens(self) -> int:
        """N, the unmasked sequence length."""
        return self.restore.shape[1]

    @property
    def dropped(self) -> Tensor:
        """(B, N) bool, True where a token is dropped (docs/microdit.md's m = 1)."""
        keep_slots = torch.arange(self.num_tokens, device=self.restore.device) < self.keep.shape[1]
        return ~keep_slots[self.restore]  # (B, N)

    @property
    def effective_ratio(self) -> float:
        """1 − K/N, the mask ratio actually applied (to record beside the nominal one)."""
        return 1.0 - self.keep.shape[1] / self.num_tokens


class TokenMasker:
    """Keeps a fixed count K = ⌊N(1 − r)⌋ of tokens per sample, at random positions.

    Per sample u ~ U(0, 1)^N from the caller's generator; keep = sort(argsort(u)[:K]).
    Positions are independent of t and label; r = 0 keeps arange(N) (docs/microdit.md (b) 4).
    """

    def __init__(self, mask_ratio: float) -> None:
        if not 0.0 <= mask_ratio < 1.0:
            raise ConfigError(f"TokenMasker: mask_ratio={mask_ratio}; expected 0 <= ratio < 1")
        self.mask_ratio = float(mask_ratio)

    def draw(
        self, batch: int, num_tokens: int, generator: torch.Generator, device: torch.device
    ) -> MaskIndices:
        """Fresh indices for one step: keep (B, K), restore (B, N)."""
        count = kept_count(num_tokens, self.mask_ratio)
        u = torch.rand(batch, num_tokens, generator=generator, device=device)  # (B, N)
        keep = torch.sort(torch.argsort(u, dim=1)[:, :count], dim=1).values  # (B, K)
        return MaskIndices.from_keep(keep, num_tokens)


def apply_mask(x: Tensor, keep: Tensor) -> Tensor:
    """Gather the kept tokens: x (B, N, D), keep (B, K) long → (B, K, D)."""
    return torch.gather(x, 1, keep[:, :, None].expand(-1, -1, x.shape[2]))  # (B, K, D)


def restore_tokens(x_kept: Tensor, mask_token: Tensor, restore: Tensor) -> Tensor:
    """Put kept tokens back in place, `mask_token` in every dropped slot.

    x_kept: (B, K, D); mask_token: (D,); restore: (B, N) from `MaskIndices` → (B, N, D).
    """
    batch, kept, dim = x_kept.shape
    fill = mask_token.to(x_kept.dtype).expand(batch, restore.shape[1] - kept, dim)  # (B, N−K, D)
    x = torch.cat([x_kept, fill], dim=1)  # (B, N, D) kept first, then dropped
    return torch.gather(x, 1, restore[:, :, None].expand(-1, -1, dim))  # (B, N, D)


def masked_mse(pred: Tensor, target: Tensor, keep: Tensor | None, patch_size: int) -> Tensor:
    """Per-sample MSE over kept patches only (MicroDiT Eq. 3): (B,) float.

    pred, target: (B, C, H, W); keep: (B, K) kept token indices in the model's row-major patch
    order (None: all patches); patch_size p divides H and W. Each patch's error is the mean of
    its p²C squared errors; a sample's loss is the mean over its kept patches, so dropped patches
    get weight exactly 0 and keep=None (or r = 0) is the plain pixel mean (pitfall (k) 5).
    """
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(
            f"masked_mse: expected pred and target of one shape (B, C, H, W), got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    batch, channels, height, width = pred.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"masked_mse: patch_size={patch_size} must divide H={height}, W={width}")
    err = (pred - target).pow(2)  # (B, C, H, W)
    rows, cols = height // patch_size, width // patch_size
    err = err.reshape(batch, channels, rows, patch_size, cols, patch_size)  # (B, C, G, p, G, p)
    per_patch = err.mean(dim=(1, 3, 5)).flatten(1)  # (B, N) row-major, as the model's tokens
    if keep is not None:
        per_patch = torch.gather(per_patch, 1, keep)  # (B, K)
    return per_patch.mean(dim=1)  # (B,)
