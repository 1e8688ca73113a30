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
