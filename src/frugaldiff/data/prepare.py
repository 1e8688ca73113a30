"""Which datasets the harness can prepare, and a clear error for those it cannot yet.

Every dataset ends as the same two files (train.npz, test.npz: uint8 (N, 3, H, W) + labels) and a
meta.json, so everything downstream (latents, training, reference statistics) is shared. The
256² face and ImageNet sets of the latent paper tiers (speed.md (g), microdit.md (i)) need an
image-folder reader with ADM centre cropping that does not exist yet: they fail at run time,
naming the config key and what the reader would need, never with a guessed substitute.
"""

from pathlib import Path

from frugaldiff.config import DataConfig
from frugaldiff.data.cifar10 import prepare_cifar10
from frugaldiff.data.imagenet64 import prepare_imagenet64
from frugaldiff.errors import DataError

# Datasets named in configs/paper/*.yaml whose preparation is not implemented yet.
PLANNED = {
    "ffhq256": "the FFHQ images (images1024x1024/ of NVlabs/ffhq-dataset, 70,000 PNGs)",
    "metfaces256": "the MetFaces images (images/ of NVlabs/metfaces-dataset, 1,336 PNGs)",
    "imagenet256": "the ILSVRC2012 train/ and val/ class folders of JPEGs",
}


def prepare_dataset(
    cfg: DataConfig, train_out: Path, test_out: Path, meta_out: Path, download_dir: Path
) -> dict[str, object]:
    """Write the dataset's train/test .npz and meta.json (last); DataError if not preparable."""
    if cfg.dataset == "cifar10":
        return prepare_cifar10(cfg, train_out, test_out, meta_out, download_dir)
    if cfg.dataset == "imagenet64":
        return prepare_imagenet64(cfg, train_out, test_out, meta_out)
    if cfg.dataset in PLANNED:
        raise DataError(
            f"data.dataset={cfg.dataset!r}: preparing it is not implemented yet. It needs an "
            f"image-folder reader (ADM centre crop to 256², uint8 (N, 3, 256, 256) train.npz/"
            f"test.npz) that would read data.archive={cfg.archive!r} as "
            f"{PLANNED[cfg.dataset]}; datasets implemented now: cifar10, imagenet64"
        )
    raise DataError(
        f"data.dataset={cfg.dataset!r}; expected cifar10, imagenet64 or one of {sorted(PLANNED)}"
    )
