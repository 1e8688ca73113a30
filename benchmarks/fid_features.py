"""Feature extraction images/s: InceptionFeatures vs torch-fidelity's default path, same weights.

The default path is what `calculate_metrics` runs: the stock FeatureExtractorInceptionV3 (here
given the converted offline weights, so nothing is downloaded) fed by its own DataLoader at its
default batch size (64). docs/evaluation.md (d): target ratio >= 1.0 with features within
1e-4 max-abs. Nothing is asserted; the numbers are printed.

    python benchmarks/fid_features.py --n 32
"""

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch_fidelity.defaults import DEFAULTS
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.utils import get_featuresdict_from_dataset

from frugaldiff.data.cifar10 import read_archive
from frugaldiff.evaluate.features import FEATURE_LAYER, ImageArrayDataset, InceptionFeatures

MINI_ARCHIVE = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar-10-mini-python.tar.gz"
)
WARMUP_IMAGES = 2


def torch_fidelity_default(
    images: np.ndarray, weights_path: Path, device: torch.device
) -> tuple[np.ndarray, float]:
    """Features and images/s of torch-fidelity's own extraction loop at its default batch."""
    extractor = FeatureExtractorInceptionV3(
        "inception-v3-compat", [FEATURE_LAYER], str(weights_path)
    )
    extractor = extractor.to(device).eval()
    cuda = device.type == "cuda"
    # Its DataLoader starts min(4, 2 * cores) workers and warns about that on small machines.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    batch_size = DEFAULTS["batch_size"]
    get_featuresdict_from_dataset(
        ImageArrayDataset(images[:WARMUP_IMAGES]), extractor, batch_size, cuda, False, False
    )
    start = time.perf_counter()
    features = get_featuresdict_from_dataset(
        ImageArrayDataset(images), extractor, batch_size, cuda, False, False
    )[FEATURE_LAYER]
    seconds = time.perf_counter() - start
    return features.double().numpy(), len(images) / seconds


def harness(
    images: np.ndarray, cache_dir: Path, device: str, batch_size: int
) -> tuple[np.ndarray, float, Path]:
    """Features, images/s and converted weights path of frugaldiff's InceptionFeatures."""
    extractor = InceptionFeatures(cache_dir, device=device, batch_size=batch_size)
    extractor.features(images[:WARMUP_IMAGES])
    start = time.perf_counter()
    features = extractor.features(images)
    seconds = time.perf_counter() - start
    return features, len(images) / seconds, extractor.weights.fidelity_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="mini-subset train images to encode")
    parser.add_argument("--batch-size", type=int, default=16, help="InceptionFeatures batch")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--archive", type=Path, default=MINI_ARCHIVE)
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="converted weights (default: a temp dir)"
    )
    args = parser.parse_args(argv)

    images = read_archive(args.archive)["train"][0][: args.n]  # (n, 3, 32, 32) uint8
    with tempfile.TemporaryDirectory(prefix="frugaldiff-inception-") as tmp:
        cache_dir = args.cache_dir or Path(tmp)
        ours, ours_rate, weights_path = harness(images, cache_dir, args.device, args.batch_size)
        stock, stock_rate = torch_fidelity_default(images, weights_path, torch.device(args.device))
    print(
        f"images: {len(images)} (32x32 -> 299x299), device {args.device}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(
        f"frugaldiff InceptionFeatures (batch {args.batch_size}, channels_last): "
        f"{ours_rate:.2f} images/s"
    )
    stock_batch = min(DEFAULTS["batch_size"], len(images))  # torch-fidelity clamps it to N
    print(
        f"torch-fidelity default path (batch {stock_batch}, its DataLoader): "
        f"{stock_rate:.2f} images/s"
    )
    print(f"ratio: {ours_rate / stock_rate:.2f} (target >= 1.0)")
    print(f"max-abs feature difference: {np.abs(ours - stock).max():.2e} (must be < 1e-4)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
