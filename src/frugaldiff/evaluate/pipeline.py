"""The evaluation jobs of the DAG: reference statistics, metrics of a sample set, the data floor.

Both read only files and resolved configs, and write one file atomically. A metrics record
carries everything a reader needs to trust or compare a number (issue 3, item 8): git commit,
config hash, package versions, seeds, image counts, weights sha256, resize mode, NFE and wall
time of sampling and of evaluation.
"""

import time
from pathlib import Path
from typing import Any

import numpy as np

from frugaldiff.config import EvaluationConfig, RunConfig, to_dict
from frugaldiff.data.images import check_images
from frugaldiff.devices import resolve_device
from frugaldiff.errors import DataError
from frugaldiff.evaluate.metrics import evaluate_samples
from frugaldiff.evaluate.reference import build_reference
from frugaldiff.io import read_json, read_npz, write_json
from frugaldiff.models.registry import masking_mode
from frugaldiff.provenance import config_hash, provenance


def reference_from_dataset(
    cfg: EvaluationConfig, data: Path, data_meta: Path, out: Path, cache_dir: Path
) -> dict[str, Any]:
    """Inception statistics of the first `reference_images` images of a split file."""
    images = check_images(read_npz(data, "images", mmap=True)["images"], data)  # 252 GB at 256²
    limit = cfg.reference_images
    if limit is not None and limit > len(images):
        raise DataError(f"evaluation.reference_images={limit} but {data} holds {len(images)}")
    meta = read_json(data_meta)
    return build_reference(
        images[:limit],
        out,
        dataset=str(meta["dataset"]),
        split=data.stem,
        archive_md5=str(meta["archive_md5"]),
        cache_dir=cache_dir,
        device=str(resolve_device(cfg.device)),
        batch_size=cfg.feature_batch_size,
        with_cleanfid=cfg.cleanfid,
    )


def _evaluate(
    images: np.ndarray, reference: Path, cfg: EvaluationConfig, cache_dir: Path, source: Path
) -> dict[str, Any]:
    """evaluate_samples with the tier's evaluation protocol (device, batch, KID, clean-fid)."""
    return evaluate_samples(
        images,
        reference,
        cache_dir=cache_dir,
        device=str(resolve_device(cfg.device)),
        batch_size=cfg.feature_batch_size,
        kid_subsets=cfg.kid_subsets,
        kid_subset_size=cfg.kid_subset_size,
        with_cleanfid=cfg.cleanfid,
        source=source,
    )


def data_floor(
    cfg: EvaluationConfig, data: Path, reference: Path, out: Path, cache_dir: Path
) -> dict[str, Any]:
    """FID/KID of the first `sample_images` real images of the other split vs the reference.

    FID falls with N and is far from 0 between two sets of real images at small N (Heusel et
    al. 2017; docs on evaluation): this number, at the very N of every sample set, is the best a
    perfect generator could expect, so the report prints it beside the models' FIDs.
    """
    images = check_images(read_npz(data, "images", mmap=True)["images"], data)
    n = cfg.sample_images
    if n > len(images):
        raise DataError(
            f"evaluation.sample_images={n} but the floor's split {data} holds {len(images)} "
            "images: the floor needs as many real images as every sample set has samples"
        )
    start = time.perf_counter()
    result = _evaluate(images[:n], reference, cfg, cache_dir, data)
    record = {
        "split": data.stem,
        "reference_split": cfg.reference_split,
        "n_images": result["n_images"],
        "n_reference": result["n_reference"],
        "metrics": {k: result[k] for k in ("fid", "fid_cleanfid", "kid_mean", "kid_std")},
        "provenance": provenance(
            weights_sha256=result["weights_sha256"],
            resize_mode=result["resize_mode"],
            kid_subset_size=result["kid_subset_size"],
            kid_subsets=cfg.kid_subsets,
            reference=str(reference),
            reference_provenance=result["reference_provenance"],
            evaluation_wall_seconds=time.perf_counter() - start,
        ),
    }
    write_json(out, record)
    return record


def evaluate_sample_set(
    run: RunConfig,
    samples: Path,
    sample_meta: Path,
    reference: Path,
    out: Path,
    cache_dir: Path,
) -> dict[str, Any]:
    """FID (two pipelines), KID and IS of one sample set; writes and returns the record."""
    images = check_images(read_npz(samples, "images", mmap=True)["images"], samples)
    meta = read_json(sample_meta)
    if meta.get("num_images") != len(images):
        raise DataError(
            f"{samples}: holds {len(images)} images but {sample_meta} says {meta.get('num_images')}"
        )
    ev = run.evaluation
    start = time.perf_counter()
    result = _evaluate(images, reference, ev, cache_dir, samples)
    eval_seconds = time.perf_counter() - start
    checkpoint = Path(meta["checkpoint"])
    record = {
        "tier": run.tier,
        "run": run.name,
        "study": run.study,
        "method": run.method,
        "variant": run.variant,
        "model": run.model.name,  # the backbone (reports mark where it is not the paper's)
        "mask_ratio": run.diffusion.mask_ratio,
        "masking": masking_mode(run.model.name, run.diffusion.mask_ratio, run.init_from),
        "init_from": run.init_from,
        "distill_stage": run.distill.stage,  # none | guidance | direct: which chain a row is
        "iteration": int(meta["iteration"]),
        "student_steps": meta.get("student_steps"),
        "checkpoint": str(checkpoint),
        "solver": meta["solver"],
        "steps": meta["steps"],
        "w": meta["w"],
        "clip_x0": meta["clip_x0"],
        "variance": meta.get("variance"),  # ancestral: large | small | learned (None: large)
        "spacing": meta.get("spacing"),  # trailing | iddpm
        "jump_model": meta.get("jump_model"),
        "train_grid": meta.get("train_grid"),
        "grid": str(samples.parent / "grid.png"),  # written beside images.npz by the sampler
        "nfe_per_image": meta["nfe_per_image"],
        "seconds_per_image": meta["seconds_per_image"],
        "n_images": result["n_images"],
        "n_reference": result["n_reference"],
        "reference_split": ev.reference_split,
        "metrics": {
            "fid": result["fid"],
            "fid_cleanfid": result["fid_cleanfid"],
            "kid_mean": result["kid_mean"],
            "kid_std": result["kid_std"],
            "inception_score": result["inception_score"],
            "inception_score_note": result["inception_score_note"],
        },
        "provenance": provenance(
            config_hash=config_hash(to_dict(run)),
            sample_seed=meta["seed"],
            train_seed=run.train.seed,
            weights_sha256=result["weights_sha256"],
            resize_mode=result["resize_mode"],
            resize_mode_cleanfid=result["resize_mode_cleanfid"],
            kid_subset_size=result["kid_subset_size"],
            kid_subsets=ev.kid_subsets,
            reference=str(reference),
            reference_provenance=result["reference_provenance"],
            sampling_wall_seconds=meta["wall_seconds"],
            evaluation_wall_seconds=eval_seconds,
        ),
    }
    write_json(out, record)
    return record
