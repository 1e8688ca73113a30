"""Sample sets from a checkpoint: per-image seeds, balanced classes, measured NFE, CLI errors."""

import dataclasses
from pathlib import Path

import numpy as np

from frugaldiff.cli import EXIT_BAD_INPUT, main
from frugaldiff.config import SampleSetConfig
from frugaldiff.io import read_json
from frugaldiff.sampling.generate import SampleRequest, generate_samples


def request(ckpt: Path, batch: int, **sample: object) -> SampleRequest:
    sample_set = dataclasses.replace(SampleSetConfig(solver="ancestral", steps=4, w=1.0), **sample)
    return SampleRequest(ckpt, sample_set, num_images=12, seed=7, batch_size=batch, device="cpu")


def test_sample_set_does_not_depend_on_batch_size(checkpoint: Path, tmp_path: Path) -> None:
    metas = []
    for batch in (12, 5):
        metas.append(
            generate_samples(
                request(checkpoint, batch), tmp_path / f"{batch}.npz", tmp_path / f"{batch}.png"
            )
        )
    a, b = np.load(tmp_path / "12.npz"), np.load(tmp_path / "5.npz")
    assert a["images"].dtype == np.uint8
    assert a["images"].shape == (12, 3, 8, 8)
    assert np.array_equal(a["images"], b["images"])
    assert a["labels"].tolist() == [i % 10 for i in range(12)]
    assert len(np.unique(a["images"].reshape(12, -1), axis=0)) == 12
    assert metas[0]["nfe_per_image"] == 8  # 4 steps, guided: 2 passes per step


def test_unguided_costs_one_pass_per_step(checkpoint: Path, tmp_path: Path) -> None:
    meta = generate_samples(
        request(checkpoint, 12, solver="ddim", w=0.0), tmp_path / "a.npz", tmp_path / "a.png"
    )
    assert meta["nfe_per_image"] == 4


def test_cli_missing_checkpoint_is_a_clear_error(checkpoint: Path, tmp_path: Path, capsys) -> None:
    code = main(
        [
            "sample",
            "--config",
            str(checkpoint.parent / "config.yaml"),
            "--checkpoint",
            str(tmp_path / "iter99.pt"),
            "--solver",
            "ddim",
            "--steps",
            "2",
            "--w",
            "0",
            "--out",
            str(tmp_path / "x.npz"),
            "--grid",
            str(tmp_path / "x.png"),
            "--meta",
            str(tmp_path / "x.json"),
        ]
    )
    assert code == EXIT_BAD_INPUT
    assert "iter99.pt: checkpoint not found" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_cli_unknown_solver_lists_valid_ones(checkpoint: Path, tmp_path: Path, capsys) -> None:
    code = main(
        [
            "sample",
            "--config",
            str(checkpoint.parent / "config.yaml"),
            "--checkpoint",
            str(checkpoint),
            "--solver",
            "eulr",
            "--steps",
            "2",
            "--w",
            "0",
            "--out",
            str(tmp_path / "x.npz"),
            "--grid",
            str(tmp_path / "x.png"),
            "--meta",
            str(tmp_path / "x.json"),
        ]
    )
    assert code == EXIT_BAD_INPUT
    assert "ddim" in capsys.readouterr().err


def test_cli_writes_meta(checkpoint: Path, tmp_path: Path) -> None:
    code = main(
        [
            "sample",
            "--config",
            str(checkpoint.parent / "config.yaml"),
            "--checkpoint",
            str(checkpoint),
            "--solver",
            "ddim",
            "--steps",
            "3",
            "--w",
            "0",
            "--out",
            str(tmp_path / "x.npz"),
            "--grid",
            str(tmp_path / "x.png"),
            "--meta",
            str(tmp_path / "x.json"),
        ]
    )
    assert code == 0
    meta = read_json(tmp_path / "x.json")
    assert meta["steps"] == 3
    assert meta["num_images"] == 32
    assert (tmp_path / "x.png").stat().st_size > 0


def test_edm_run_samples_with_c_noise_on_heuns_grid_in_data_units(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    import torch

    from frugaldiff.config import DiffusionConfig, ModelConfig, TimestepConfig, WeightingConfig
    from frugaldiff.data.images import to_uint8
    from frugaldiff.sampling.generate import SampleSetDrawer
    from frugaldiff.sampling.grids import edm_sigma_grid
    from frugaldiff.train.loop import Trainer

    from .test_train import tiny_run

    edm = DiffusionConfig(
        schedule="cosine",
        parameterization="v",
        timesteps=TimestepConfig(name="edm_lognormal"),
        loss_weighting=WeightingConfig(name="snr_plus1"),
        sigma_data=0.5,
        time_input="c_noise",
    )
    cfg = dataclasses.replace(
        tiny_run(iterations=2, ckpt_iters=(2,)), model=ModelConfig("dit-tiny"), diffusion=edm
    )
    trainer = Trainer.for_run(cfg, tiny_dataset, tmp_path / "state")
    for _ in trainer.steps():
        pass
    trainer.publish({2: tmp_path / "iter2.pt"}, tmp_path / "m.jsonl", tmp_path / "s.json")
    sample_set = SampleSetConfig(solver="heun", steps=3, w=0.0)
    drawer = SampleSetDrawer(SampleRequest(tmp_path / "iter2.pt", sample_set, 4, 0, 4, "cpu"))
    seen: list[torch.Tensor] = []
    drawer.model.register_forward_hook(lambda module, args, out: seen.append(args[1].clone()))
    images, _ = drawer.batch(range(4))
    assert images.dtype == np.uint8
    assert drawer.counter.rows == 5 * 4  # 3 Heun steps: 2·3 − 1 passes per image
    # The network saw c_noise = ln σ / 4 (through its 1000·t embedding) at EDM's σ_i, each
    # σ_i of the inner grid twice (Euler step there, then the next step's start).
    sigma = edm_sigma_grid(3)[[0, 1, 1, 2, 2]]
    c_noise = 1000.0 * torch.stack(seen)[:, 0].double()
    torch.testing.assert_close(c_noise, sigma.log() / 4, rtol=1e-4, atol=1e-5)

    # The solver's result is in data ÷ σ_d and goes back ×σ_d; x̂ is clipped at ±1/σ_d.
    def solve(denoiser, x_T, timesteps, generators):
        assert denoiser.limit == 2.0
        return torch.full_like(x_T, 0.8)

    drawer.solver.solve = solve  # type: ignore[method-assign]
    images, _ = drawer.batch(range(4))
    assert np.array_equal(images, to_uint8(torch.full((4, 3, 8, 8), 0.4)))
