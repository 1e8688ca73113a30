"""ImageNet-256 from a fake ILSVRC tree: labels by sorted wnid, ADM crops, streamed npz, errors."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from frugaldiff.config import DataConfig
from frugaldiff.data.image_folder import centre_crop
from frugaldiff.data.imagenet256 import IMAGENET, prepare_imagenet256
from frugaldiff.data.prepare import prepare_dataset
from frugaldiff.errors import DataError
from frugaldiff.io import read_json, read_npz

WNIDS = ("n01440764", "n01443537", "n01484850")  # sorted: labels 0, 1, 2
COUNTS = {"train": 6, "test": 4}


def picture(size: tuple[int, int], seed: int) -> Image.Image:
    """A smooth RGB gradient with a seeded offset, so every file's crop differs."""
    w, h = size
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y + 40 * seed) % 256], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def fake_ilsvrc(root: Path) -> dict[str, list[Path]]:
    """3 classes: train 3/2/1 images (sizes, aspect ratios, grey, CMYK, palette-PNG-as-JPEG),
    val 2/1/1; returns each split's files in the expected (class-interleaved) order."""
    a, b, c = (root / "train" / wnid for wnid in WNIDS)
    va, vb, vc = (root / "val" / wnid for wnid in WNIDS)
    for folder in (a, b, c, va, vb, vc):
        folder.mkdir(parents=True)
    files = {
        a / "n01440764_1.JPEG": picture((320, 256), 0),
        a / "n01440764_2.JPEG": picture((256, 400), 1).convert("L"),  # greyscale
        a / "n01440764_3.JPEG": picture((600, 520), 2),  # short side >= 512: box halving
        b / "n01443537_1.JPEG": picture((300, 280), 3).convert("CMYK"),
        b / "n01443537_2.JPEG": picture((280, 300), 4).convert("P"),  # saved as PNG below
        c / "n01484850_1.JPEG": picture((257, 263), 5),
        va / "ILSVRC2012_val_00000001.JPEG": picture((500, 375), 6),
        va / "ILSVRC2012_val_00000004.JPEG": picture((375, 500), 7),
        vb / "ILSVRC2012_val_00000002.JPEG": picture((260, 260), 8),
        vc / "ILSVRC2012_val_00000003.JPEG": picture((300, 300), 9),
    }
    for path, image in files.items():
        image.save(path, format="PNG" if image.mode == "P" else "JPEG", quality=90)
    (a / "README.txt").write_text("not an image")  # ignored, as in image folders
    train = [*files][:6]
    val = [*files][6:]
    return {
        "train": [train[0], train[3], train[5], train[1], train[4], train[2]],
        "test": [val[0], val[2], val[3], val[1]],
    }


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, list[Path]]]:
    monkeypatch.delenv(IMAGENET.env, raising=False)
    root = tmp_path / "ilsvrc"
    return root, fake_ilsvrc(root)


def prepare(root: Path, out: Path, counts=COUNTS, workers: int = 1, **cfg) -> dict:
    data = DataConfig(dataset="imagenet256", archive=str(root), **{"md5": (), **cfg})
    return prepare_imagenet256(
        data,
        out / "train.npz",
        out / "test.npz",
        out / "meta.json",
        workers=workers,
        expected_counts=counts,
    )


def crops(paths: list[Path]) -> np.ndarray:
    out = []
    for path in paths:
        with Image.open(path) as image:
            out.append(centre_crop(image, 256))
    return np.stack(out)  # (N, 3, 256, 256)


def test_splits_hold_adm_crops_labelled_by_sorted_wnid(tree, tmp_path: Path) -> None:
    root, expected = tree
    out = tmp_path / "out"
    meta = prepare(root, out, workers=2)  # a process pool, order kept
    for split, labels in (("train", [0, 1, 2, 0, 1, 0]), ("test", [0, 1, 2, 0])):
        with np.load(out / f"{split}.npz") as data:  # plain np.load reads the streamed file
            assert data["images"].dtype == np.uint8
            assert data["images"].shape == (len(labels), 3, 256, 256)
            assert data["labels"].dtype == np.int64
            assert data["labels"].tolist() == labels
            np.testing.assert_array_equal(data["images"], crops(expected[split]))
    grey = read_npz(out / "train.npz", "images", mmap=True)["images"][3]
    assert np.array_equal(grey[0], grey[1])
    assert np.array_equal(grey[1], grey[2])
    assert meta == read_json(out / "meta.json")
    assert (meta["train_images"], meta["test_images"]) == (6, 4)
    assert (meta["num_classes"], meta["classes"]) == (3, list(WNIDS))
    assert meta["crop"] == "ADM centre crop to 256"
    assert len(str(meta["archive_md5"])) == 32
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert sorted(mtimes) == ["meta.json", "test.npz", "train.npz"]  # no temp files left
    assert mtimes["meta.json"] >= max(mtimes["train.npz"], mtimes["test.npz"])  # written last


def test_subsets_are_prefixes_of_the_class_interleaved_order(tree, tmp_path: Path) -> None:
    root, _ = tree
    prepare(root, tmp_path / "full", workers=2)
    meta = prepare(root, tmp_path / "part", train_images=4, test_images=3)  # inline decoding
    full, part = (read_npz(tmp_path / d / "train.npz") for d in ("full", "part"))
    assert part["labels"].tolist() == [0, 1, 2, 0]  # every class before any class's second
    np.testing.assert_array_equal(part["images"], full["images"][:4])
    assert read_npz(tmp_path / "part" / "test.npz")["labels"].tolist() == [0, 1, 2]
    assert (meta["train_images"], meta["test_images"]) == (4, 3)
    with pytest.raises(DataError, match=r"data\.train_images=7 exceeds the split's 6 images"):
        prepare(root, tmp_path / "over", train_images=7)


def test_listing_md5_is_recorded_and_checked(tree, tmp_path: Path) -> None:
    root, _ = tree
    fingerprint = prepare(root, tmp_path / "a")["archive_md5"]
    (root / "train" / WNIDS[2] / "n01484850_1.JPEG").write_bytes(b"\xff" * 10)  # size changes
    with pytest.raises(DataError, match=rf"listing md5 \w+ not in data\.md5 \['{fingerprint}'\]"):
        prepare(root, tmp_path / "b", md5=(fingerprint,))


def test_wrong_counts_name_the_folder_and_both_numbers(tree, tmp_path: Path) -> None:
    root, _ = tree
    with pytest.raises(DataError, match=r"ilsvrc/train: 6 images in .* expected 1281167"):
        prepare(root, tmp_path / "out", counts={"train": 1_281_167, "test": 50_000})
    with pytest.raises(DataError, match=r"ilsvrc/val: 4 images in .*3 class folders, expected 5"):
        prepare(root, tmp_path / "out", counts={"train": 6, "test": 5})
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_layout_errors_name_the_path_and_what_is_expected(tree, tmp_path: Path) -> None:
    root, _ = tree
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"data\.archive='.*nowhere': no such folder; expected"):
        prepare(tmp_path / "nowhere", out)
    shutil.rmtree(root / "val" / WNIDS[1])
    with pytest.raises(DataError, match=r"1 train classes missing \['n01443537'\]"):
        prepare(root, out)
    (root / "val" / WNIDS[1]).mkdir()
    with pytest.raises(DataError, match=r"val/n01443537: no .* files; a class needs its images"):
        prepare(root, out)
    shutil.rmtree(root / "val")
    (root / "val").mkdir()
    (root / "val" / "ILSVRC2012_val_00000001.JPEG").write_bytes(b"")
    with pytest.raises(DataError, match=r"1 images directly inside; sort them into <wnid>"):
        prepare(root, out)
    shutil.rmtree(root / "val")
    with pytest.raises(DataError, match=r"ilsvrc/val: no such folder; .* must hold the ILSVRC"):
        prepare(root, out)


def test_an_unreadable_image_names_its_file(tree, tmp_path: Path) -> None:
    root, _ = tree
    bad = root / "val" / WNIDS[2] / "ILSVRC2012_val_00000003.JPEG"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"ILSVRC2012_val_00000003\.JPEG: unreadable image"):
        prepare(root, tmp_path / "out", workers=2)  # raised in a worker, re-raised here
    assert not (tmp_path / "out" / "test.npz").exists()


def test_prepare_dataset_dispatches_and_names_the_env_var(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(IMAGENET.env, raising=False)
    cfg = DataConfig(dataset="imagenet256", archive=None, md5=())
    with pytest.raises(DataError, match=r"set data\.archive or FRUGALDIFF_IMAGENET_DIR") as err:
        prepare_dataset(cfg, tmp_path / "a", tmp_path / "b", tmp_path / "c", tmp_path)
    assert "train/<wnid>/*.JPEG" in str(err.value)


def test_decoding_pool_ends_in_a_job_that_handles_preemption(tmp_path: Path) -> None:
    """The CLI installs the SIGTERM handler before preparing; the pool's exit must not hang.

    Pool.__exit__ terminates its workers with SIGTERM; workers that inherited the recording
    handler would ignore it and the job would wait for them forever. Run in a subprocess with
    a timeout, so a regression fails here instead of hanging the suite.
    """
    for i in range(6):
        Image.new("RGB", (300 + 10 * i, 280), (i * 40, 10, 200)).save(tmp_path / f"{i}.JPEG")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "import torch\n"
        "from frugaldiff import preemption\n"
        "from frugaldiff.data.imagenet256 import decoded_chunks\n"
        "preemption.install()\n"
        "torch.randn(300, 300) @ torch.randn(300, 300)  # as in a CLI job: torch threads up\n"
        "paths = sorted(Path(sys.argv[1]).glob('*.JPEG'))\n"
        "print(sum(sum(len(c) for c in decoded_chunks(paths, workers=2)) for _ in range(20)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["120"]
