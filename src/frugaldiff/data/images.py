"""The one image-array contract: uint8, (N, 3, H, W), RGB, values 0..255.

Datasets, sample sets and the evaluator all pass images in this form; converting model outputs
in [-1, 1] happens once, here (docs/evaluation.md (e): round((x + 1) * 127.5), clipped). The
datasets with no published checksums (ImageNet 64, the image folders) can tell a partial copy
only by its image count, so that check lives here too, with one message for all of them.
"""

from pathlib import Path

import numpy as np
import torch

from frugaldiff.errors import DataError


def check_images(images: np.ndarray, source: Path | str, channels: int = 3) -> np.ndarray:
    """Return `images` if it is uint8 (N, channels, H, W) with N > 0; else raise naming `source`."""
    if not isinstance(images, np.ndarray):
        raise DataError(f"{source}: expected a numpy array of images, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise DataError(f"{source}: images must be uint8 in 0..255, got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[1] != channels or images.shape[0] == 0:
        raise DataError(
            f"{source}: images must have shape (N, {channels}, H, W) with N > 0, "
            f"got {tuple(images.shape)}"
        )
    return images


def check_image_count(
    source: Path | str, found: int, expected: int, counted: str, hint: str
) -> None:
    """Raise DataError unless `source` (a file or folder) holds exactly `expected` images.

    A partial or different copy must stop the preparation, not surface later as odd metrics.
    The message names where and what was counted (`counted`: which files), both counts, and a
    `hint` (what the mismatch suggests, or what a complete copy holds), so the fix is clear.
    """
    if found != expected:
        raise DataError(f"{source}: {found} images in {counted}, expected {expected}: {hint}")


def area_downsample(images: np.ndarray, side: int, source: Path | str) -> np.ndarray:
    """uint8 (N, C, H, W) -> uint8 (N, C, side, side): the mean of each (H/side)² block, rounded.

    Box filtering is exact area resampling for an integer factor (what PIL's `Image.BOX` and
    `reduce` compute), so a downsampled tier's train and test splits, and with them its reference
    statistics, are one deterministic function of the archive.
    """
    n, c, h, w = images.shape
    if h != w or side > h or h % side:
        raise DataError(
            f"{source}: data.resolution={side}; expected a divisor of the images' side {h} "
            f"(images are {h}x{w})"
        )
    factor = h // side
    if factor == 1:
        return images
    blocks = images.reshape(n, c, side, factor, side, factor).astype(np.float64)
    return np.rint(blocks.mean(axis=(3, 5))).astype(np.uint8)  # (N, C, side, side)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Model output in [-1, 1], (B, C, H, W) float -> uint8 numpy, clipped, rounded."""
    x = ((x.detach().float() + 1.0) * 127.5).round().clamp(0, 255)
    return x.to(torch.uint8).cpu().numpy()


def to_model_range(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 in [-1, 1]."""
    tensor = torch.as_tensor(images)
    return tensor.float() / 127.5 - 1.0


def image_grid(images: np.ndarray, columns: int) -> np.ndarray:
    """uint8 (N, 3, H, W) -> one uint8 (rows*H, columns*W, 3) picture, padded with black."""
    n, c, h, w = images.shape
    rows = -(-n // columns)
    grid = np.zeros((rows * h, columns * w, c), dtype=np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[r * h : (r + 1) * h, col * w : (col + 1) * w] = image.transpose(1, 2, 0)
    return grid
