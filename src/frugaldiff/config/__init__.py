"""Typed configs: frozen dataclasses are the only home of a default.

A tier config (configs/smoke.yaml ...) names a dataset, an evaluation protocol and a run table;
each run names a model size and a method block (configs/method/<name>.yaml) and may override
fields. `resolve_run` merges code defaults <- method block <- run table into one plain dict that
the `resolve_config` rule writes to results/<tier>/<run>/config.yaml; every CLI command reads
only such resolved files. Unknown or mistyped keys fail here, naming the file, the dotted key
and the nearest valid key, before any job runs.

The package holds one concept a module: sections.py the run's sections (data, model,
diffusion, train, distill, sampling, evaluation), resources.py the per-rule-kind job resources,
parsing.py the typed dict <-> dataclass conversion, tier.py the tier, its run table and their
resolution. Every name is re-exported here, so callers import from `frugaldiff.config` alone
and the layout can change without touching them.
"""

from frugaldiff.config.parsing import from_dict, load_yaml, to_dict
from frugaldiff.config.resources import RESOURCE_KINDS, ResourceSpec
from frugaldiff.config.sections import (
    ANCESTRAL_VARIANCES,
    CIFAR10_FULL_MD5,
    DATASETS,
    GRID_SPACINGS,
    JUMP_MODELS,
    STAGES,
    DataConfig,
    DiffusionConfig,
    DistillConfig,
    EvaluationConfig,
    LatentConfig,
    ModelConfig,
    MoEConfig,
    SampleSetConfig,
    TimestepConfig,
    TrainConfig,
    WeightingConfig,
)
from frugaldiff.config.tier import (
    RunConfig,
    RunSpec,
    TierConfig,
    deep_merge,
    final_checkpoint,
    load_run_config,
    parse_tier_config,
    resolve_run,
)

__all__ = [
    "ANCESTRAL_VARIANCES",
    "CIFAR10_FULL_MD5",
    "DATASETS",
    "GRID_SPACINGS",
    "JUMP_MODELS",
    "RESOURCE_KINDS",
    "STAGES",
    "DataConfig",
    "DiffusionConfig",
    "DistillConfig",
    "EvaluationConfig",
    "LatentConfig",
    "MoEConfig",
    "ModelConfig",
    "ResourceSpec",
    "RunConfig",
    "RunSpec",
    "SampleSetConfig",
    "TierConfig",
    "TimestepConfig",
    "TrainConfig",
    "WeightingConfig",
    "deep_merge",
    "final_checkpoint",
    "from_dict",
    "load_run_config",
    "load_yaml",
    "parse_tier_config",
    "resolve_run",
    "to_dict",
]
