"""The latent path on the CPU: a tiny random AutoencoderKL from a config dict, saved to a folder.

Encode CIFAR-like images once (cached, both flips), train a tiny DiT on the latents, sample and
decode to uint8 images; plus the clear errors for missing or wrong VAE folders.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from frugaldiff.config import (
    DataConfig,
    DiffusionConfig,
    EvaluationConfig,
    LatentConfig,
    ModelConfig,
    RunConfig,
    SampleSetConfig,
    TrainConfig,
)
from frugaldiff.data import latents as latents_module
from frugaldiff.data.images import to_model_range
from frugaldiff.data.latents import LatentDataset, encode_latents
from frugaldiff.data.loader import BatchSchedule, load_training_data
from frugaldiff.errors import DataError
from frugaldiff.rng import seeded_global_rng
from frugaldiff.sampling.generate import SampleRequest, generate_samples
from frugaldiff.train.loop import Trainer
from frugaldiff.train.state import load_checkpoint

# A 3-level VAE: 32×32 RGB -> 4×8×8 latents. scaling_factor is deliberately not SD's 0.18215,
# so a literal anywhere in the path would show.
TINY_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [8, 8, 16],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "sample_size": 32,
    "scaling_factor": 0.37,
}


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from diffusers import AutoencoderKL

    folder = tmp_path_factory.mktemp("vae")
    with seeded_global_rng(0):
        AutoencoderKL(**TINY_VAE).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def images_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "train.npz"
    images = rng.integers(0, 256, size=(6, 3, 32, 32), dtype=np.uint8)  # (N, 3, 32, 32)
    np.savez(path, images=images, labels=np.arange(6, dtype=np.int64) % 10)
    return path


def latent_cfg(vae_dir: Path) -> LatentConfig:
    return LatentConfig(vae_path=str(vae_dir), encode_batch_size=4, device="cpu")


def test_encode_train_sample_decode(vae_dir: Path, images_npz: Path, tmp_path: Path, monkeypatch):
    from diffusers import AutoencoderKL

    cfg = latent_cfg(vae_dir)
    out, cache = tmp_path / "latents" / "train.npz", tmp_path / "cache"
    meta = encode_latents(cfg, images_npz, out, cache)
    assert not meta["reused"]
    assert meta["latent_shape"] == [4, 8, 8]
    assert meta["scaling_factor"] == pytest.approx(0.37)  # from the VAE's config
    assert meta["views"] == ["image", "hflip"]

    # The cached posterior equals the VAE's own, for the images and for their mirrors.
    vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    images = np.load(images_npz)["images"]
    x = to_model_range(images[:2])  # (2, 3, 32, 32)
    data = LatentDataset.load(out)
    with torch.no_grad():
        plain, mirrored = vae.encode(x).latent_dist, vae.encode(x.flip(-1)).latent_dist
    torch.testing.assert_close(torch.from_numpy(data.mean[:2, 0]), plain.mean)
    torch.testing.assert_close(torch.from_numpy(data.mean[:2, 1]), mirrored.mean)
    torch.testing.assert_close(torch.from_numpy(data.std[:2, 0]), plain.std)
    assert not torch.allclose(plain.mean, mirrored.mean)  # a latent flip is not the flip's latent

    # A second run reuses the cache: the VAE must not run again.
    def no_encoding(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("encoded again despite a matching cache entry")

    monkeypatch.setattr(latents_module, "encode_images", no_encoding)
    again = encode_latents(cfg, images_npz, tmp_path / "again.npz", cache)
    assert again["reused"]
    assert np.array_equal(np.load(tmp_path / "again.npz")["mean"], data.mean)

    # Batches: scaled posterior draws, a pure function of (seed, iteration), mirrors when flipped.
    loaded = load_training_data(out)
    assert isinstance(loaded, LatentDataset)
    schedule = BatchSchedule(loaded, batch_size=4, seed=3, hflip=True)
    first, _ = schedule.batch(1)
    assert first.shape == (4, 4, 8, 8)
    assert torch.equal(first, schedule.batch(1)[0])
    assert not torch.equal(first, schedule.batch(2)[0])
    flip = torch.tensor([False, True])
    idx = np.array([0, 0])
    draws = loaded.examples(idx, flip, torch.Generator().manual_seed(0))
    noise = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    expected = 0.37 * (
        torch.from_numpy(data.mean[[0, 0], [0, 1]])
        + torch.from_numpy(data.std[[0, 0], [0, 1]]) * noise
    )
    torch.testing.assert_close(draws, expected)

    # Train a tiny DiT on the latents: in_channels and image_size come from the data.
    run = RunConfig(
        name="latent",
        tier="test",
        study="baseline",
        method="baseline",
        data=DataConfig(latent=cfg),
        model=ModelConfig(name="dit-tiny"),
        diffusion=DiffusionConfig(),
        train=TrainConfig(
            iterations=3,
            batch_size=4,
            warmup_iters=1,
            ckpt_iters=(3,),
            log_every_iters=1,
            device="cpu",
        ),
        evaluation=EvaluationConfig(),
        sample_sets=(SampleSetConfig(clip_x0=False),),
    )
    trainer = Trainer.for_run(run, out, tmp_path / "state")
    losses = [record.loss for record in trainer.steps()]
    assert len(losses) == 3
    assert all(np.isfinite(losses))
    ckpt = trainer.ckpt_state_path(3)
    payload = load_checkpoint(ckpt)
    assert payload["run_config"]["model"]["in_channels"] == 4
    assert payload["latent"]["weights_sha256"] == meta["weights_sha256"]

    # Sample latents and decode them: evaluation sees uint8 RGB at the image size.
    sample_set = SampleSetConfig(solver="ddim", steps=2, clip_x0=False)
    request = SampleRequest(ckpt, sample_set, num_images=3, seed=0, batch_size=2, device="cpu")
    sample_meta = generate_samples(request, tmp_path / "s.npz", tmp_path / "s.png")
    samples = np.load(tmp_path / "s.npz")["images"]
    assert samples.dtype == np.uint8
    assert samples.shape == (3, 3, 32, 32)
    assert sample_meta["nfe_per_image"] == 2


def test_sampling_refuses_another_vae(vae_dir: Path, images_npz: Path, tmp_path: Path) -> None:
    from diffusers import AutoencoderKL

    from frugaldiff.data.vae import load_codec, pixel_decoder

    other = tmp_path / "other-vae"
    with seeded_global_rng(1):
        AutoencoderKL(**TINY_VAE).save_pretrained(other)
    recorded = load_codec(latent_cfg(vae_dir)).identity
    with pytest.raises(DataError, match="weights_sha256"):
        pixel_decoder(latent_cfg(other), recorded, "ckpt.pt")
    with pytest.raises(DataError, match="trained on VAE latents"):
        pixel_decoder(None, recorded, "ckpt.pt")


def test_missing_vae_folder_fails_before_reading_data(tmp_path: Path) -> None:
    cfg = LatentConfig(vae_path=str(tmp_path / "nope"), vae_hub_id="stabilityai/sd-vae-ft-ema")
    missing_data = tmp_path / "absent.npz"  # would be a different error if it were read first
    with pytest.raises(DataError, match=r"data\.latent\.vae_path=.*no such folder") as err:
        encode_latents(cfg, missing_data, tmp_path / "out.npz", tmp_path / "cache")
    assert "config.json" in str(err.value)
    assert "hf download stabilityai/sd-vae-ft-ema" in str(err.value)
    assert not (tmp_path / "out.npz").exists()


def test_unnamed_vae_without_download_names_every_way_to_provide_it(monkeypatch) -> None:
    from frugaldiff.data.vae import VAE_ROOT_ENV, locate_vae

    monkeypatch.delenv(VAE_ROOT_ENV, raising=False)
    with pytest.raises(DataError) as err:
        locate_vae(LatentConfig(vae_hub_id="stabilityai/sd-vae-ft-ema", download=False))
    message = str(err.value)
    for needle in ("data.latent.vae_path", f"{VAE_ROOT_ENV}/stabilityai/sd-vae-ft-ema", "download"):
        assert needle in message


def test_folder_that_is_not_an_autoencoder_is_rejected(tmp_path: Path) -> None:
    from frugaldiff.data.vae import locate_vae

    folder = tmp_path / "unet"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(DataError, match="'UNet2DModel', expected 'AutoencoderKL'"):
        locate_vae(LatentConfig(vae_path=str(folder)))
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL"}))
    with pytest.raises(DataError, match="no weights file"):
        locate_vae(LatentConfig(vae_path=str(folder)))


def test_cli_without_vae_exits_2_naming_the_key(tmp_path: Path, monkeypatch, capsys) -> None:
    from frugaldiff.cli import main
    from frugaldiff.data.vae import VAE_ROOT_ENV

    monkeypatch.delenv(VAE_ROOT_ENV, raising=False)
    config = tmp_path / "data.yaml"
    config.write_text("dataset: ffhq256\nlatent: {vae_hub_id: stabilityai/sd-vae-ft-ema}\n")
    out = tmp_path / "latents" / "train.npz"
    code = main(
        [
            "encode-latents",
            "--config",
            str(config),
            "--data",
            str(tmp_path / "train.npz"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--out",
            str(out),
            "--meta-out",
            str(tmp_path / "latents" / "train.json"),
        ]
    )
    assert code == 2
    assert "error: no VAE weights: set data.latent.vae_path" in capsys.readouterr().err
    assert not out.exists()
