"""Latent-space config checks that must fail before any job, and the model fitted to the data."""

from pathlib import Path

import pytest
import yaml

from frugaldiff.config import ModelConfig, parse_tier_config, resolve_run, to_dict
from frugaldiff.errors import ConfigError
from frugaldiff.models.registry import fit_to_data

REPO = Path(__file__).resolve().parents[2]
PAPER = sorted((REPO / "configs" / "paper").glob("*.yaml"))


def speed_ffhq() -> dict:
    return yaml.safe_load((REPO / "configs" / "paper" / "speed_ffhq256.yaml").read_text())


def test_clipping_latents_is_refused_naming_the_sample_set() -> None:
    data = speed_ffhq()
    clipped = {"solver": "ddim", "steps": 10, "w": 0.0, "clip_x0": True}
    data["runs"]["speed"]["sample_sets"] = [clipped]  # the YAML shares the others' list
    with pytest.raises(ConfigError, match=r"runs\.speed\.sample_sets\[0\]\.clip_x0 is true"):
        parse_tier_config(data, "speed_ffhq256.yaml")


def test_unknown_dataset_lists_the_known_ones() -> None:
    data = speed_ffhq()
    data["data"]["dataset"] = "ffhq"
    with pytest.raises(ConfigError, match=r"data\.dataset='ffhq'; expected one of \['cifar10'"):
        parse_tier_config(data, "x.yaml")


def test_misspelled_latent_key_names_the_nearest() -> None:
    data = speed_ffhq()
    data["data"]["latent"]["vae_pth"] = "/vae"
    with pytest.raises(ConfigError, match=r"data\.latent\.vae_pth'; did you mean 'vae_path'"):
        parse_tier_config(data, "x.yaml")


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_every_paper_run_resolves(path: Path) -> None:
    tier = parse_tier_config(yaml.safe_load(path.read_text()), str(path))
    for name in tier.runs:
        resolved = to_dict(resolve_run(tier, name, REPO / "configs"))
        assert resolved["data"]["dataset"] == tier.data.dataset


def test_model_takes_channels_and_size_from_the_data() -> None:
    fitted = fit_to_data(ModelConfig(name="dit-tiny"), (4, 16, 16), "latents.npz")
    assert (fitted.in_channels, fitted.image_size) == (4, 16)
    same = ModelConfig(name="DiT-XL/2")
    assert fit_to_data(same, (4, 32, 32), "latents.npz") is same  # already fits: unchanged
    with pytest.raises(ConfigError, match=r"model\.in_channels=3, but latents\.npz holds"):
        fit_to_data(ModelConfig(name="dit-tiny", in_channels=3), (4, 8, 8), "latents.npz")
