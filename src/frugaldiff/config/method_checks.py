"""Checks that a run's method settings mean what they say, made before any job starts.

A timestep-sampler or loss-weighting key its `name` does not read would otherwise be ignored
silently, and a masking label (`variant`) that disagrees with the model would compare a run
with the wrong paper number; both are config errors naming the key, the run and the block.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from frugaldiff.config.sections import (
    TIMESTEP_PARAMETERS,
    WEIGHTING_PARAMETERS,
    TimestepConfig,
    WeightingConfig,
)
from frugaldiff.errors import ConfigError

if TYPE_CHECKING:
    from frugaldiff.config.tier import RunSpec


def check_live_parameters(
    diffusion: dict[str, Any], run_name: str, method: str, block_path: Path
) -> None:
    """A timestep-sampler or weighting key its `name` does not read is an error, not ignored."""
    for section, table, default in (
        ("timesteps", TIMESTEP_PARAMETERS, TimestepConfig.name),
        ("loss_weighting", WEIGHTING_PARAMETERS, WeightingConfig.name),
    ):
        given = diffusion.get(section) or {}
        if not isinstance(given, dict):
            continue  # from_dict names the type error
        name = given.get("name", default)
        if name not in table:
            raise ConfigError(
                f"runs.{run_name}.diffusion.{section}.name={name!r} ({block_path} + run table); "
                f"expected one of {sorted(table)}"
            )
        common = {"name", "draw_batch"} if section == "timesteps" else {"name"}
        unused = sorted(set(given) - common - set(table[name]))
        if unused:
            raise ConfigError(
                f"runs.{run_name}.diffusion.{section}.{unused[0]}: {section} {name!r} (method "
                f"{method!r}, {block_path} + run table) does not use it; its parameters are "
                f"{sorted(common | set(table[name]))}"
            )


def check_masking_variant(spec: "RunSpec", run_name: str, mask_ratio: float) -> None:
    """A masking label (unmasked / naive / deferred) must say what the model and ratio do.

    The masked study's report matches paper values on the masking mode; a run labelled
    `deferred` whose model masks naively would be compared with the wrong paper number.
    """
    from frugaldiff.models.registry import MASKING_VARIANTS, masking_mode

    if spec.variant not in MASKING_VARIANTS:
        return
    mode = masking_mode(spec.model.name, mask_ratio, spec.init_from)
    if mode != spec.variant:
        raise ConfigError(
            f"runs.{run_name}.variant={spec.variant!r}, but its model {spec.model.name!r} at "
            f"diffusion.mask_ratio={mask_ratio:g} (init_from={spec.init_from!r}) is {mode!r}: "
            f"label it {mode!r} or change the model / mask_ratio"
        )
