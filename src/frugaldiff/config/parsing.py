"""Typed YAML -> dataclass conversion: every key checked, a wrong one named with its nearest.

The config dataclasses carry no validation code of their own: `from_dict` walks a dataclass's
type hints (the few types the configs use: unions with None, nested dataclasses, tuples, dicts,
str/int/float/bool) and fails with the file, the dotted key and the closest valid key, so a
misspelling stops before any job runs. `to_dict` is its inverse for writing resolved configs.
"""

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from frugaldiff.errors import ConfigError

T = typing.TypeVar("T")


def _nearest(key: str, valid: list[str]) -> str:
    match = difflib.get_close_matches(key, valid, n=1, cutoff=0.0)
    return f"; did you mean {match[0]!r}?" if match else ""


def _convert(value: Any, hint: Any, source: str, key: str) -> Any:
    """Check and convert one YAML value against a type hint (the subset of types we use)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], source, key)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, source, key)
    if origin is tuple:
        if isinstance(value, str) and args[-1] is Ellipsis:
            value = [value]  # one checksum given as a bare string
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {key} expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], source, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{source}: {key} expected {len(args)} items, got {value!r}")
        return tuple(
            _convert(v, a, source, f"{key}[{i}]")
            for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} expected a mapping, got {value!r}")
        return {k: _convert(v, args[1], source, f"{key}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    if hint in (int, float, bool, str) and type(value) is hint:
        return value
    raise ConfigError(
        f"{source}: {key} expected {getattr(hint, '__name__', hint)}, "
        f"got {type(value).__name__} {value!r}"
    )


def from_dict(cls: type[T], data: Any, source: str, prefix: str = "") -> T:
    """Build dataclass `cls` from a mapping; unknown keys and wrong types raise ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix or 'top level'} expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"{source}: unknown key {dotted!r}{_nearest(str(key), names)}")
        kwargs[key] = _convert(value, hints[key], source, dotted)
    required = [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [k for k in required if k not in kwargs]
    if missing:
        where = f" in {prefix}" if prefix else ""
        raise ConfigError(f"{source}: missing required keys {missing}{where}")
    return cls(**kwargs)


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain YAML-able structure (tuples become lists).

    A dataclass with `live_fields()` (a timestep sampler's or weighting's config) keeps only
    the fields its `name` reads: the others are defaults nothing uses, and reading the dict
    back (`from_dict`) restores them.
    """
    if dataclasses.is_dataclass(obj):
        names = [f.name for f in dataclasses.fields(obj)]
        if hasattr(obj, "live_fields"):
            live = set(obj.live_fields())
            names = [n for n in names if n in live]
        return {n: to_dict(getattr(obj, n)) for n in names}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_yaml(path: Path | str) -> dict[str, Any]:
    """Read a YAML mapping, failing with the path when missing or malformed."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: config file not found") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data
