"""Typed configuration: frozen dataclasses built from plain dicts (YAML) with errors that name the key.

Every config in robot_rl is a frozen dataclass whose defaults reproduce a benchmark. `from_dict`
builds one from a launch file's mapping, refusing an unknown key (listing the valid ones), a wrong
type, or a value outside a `Literal`'s choices, with the dotted path of the offending key.
`apply_overrides` applies `--set a.b=value` strings before that, so both paths share one validation.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from robot_rl import strict_yaml
from robot_rl.errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
    """Build the dataclass `cls` from `data`, checking every key and value against the field types."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'config'}: expected a mapping of keys to values, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        where = f" in {path}" if path else ""
        raise ConfigError(f"unknown key {_join(path, str(unknown[0]))!r}{where}; "
                          f"valid keys: {', '.join(sorted(fields))}")
    kwargs = {name: _coerce(hints[name], value, _join(path, name)) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if path and not str(err).startswith(path):
            raise ConfigError(f"{path}.{err}") from None
        raise
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"{path or 'config'}: {err}") from None


def to_dict(config: Any) -> Any:
    """The plain (YAML-safe) form of a config: dicts, lists and scalars, tuples as lists."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    return config


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of `data` with each `dotted.key=value` applied; the value is parsed as YAML."""
    result = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form KEY=VALUE (e.g. total_steps=50000)")
        try:
            value = strict_yaml.loads(raw) if raw.strip() else ""
        except ConfigError:  # not YAML (or an alias): the text itself
            value = raw
        node = result
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def check(condition: bool, key: str, message: str) -> None:
    """For `__post_init__`: raise a ConfigError naming `key` unless `condition` holds."""
    if not condition:
        raise ConfigError(f"{key}: {message}")


def check_choice(value: Any, key: str, choices: Iterable[Any]) -> None:
    """For `__post_init__`: `value` must be one of `choices`; the error lists them."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not valid; choose one of: {', '.join(map(str, choices))}")


def _coerce(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not valid; choose one of: {', '.join(map(str, args))}")
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_dict(hint, value, path)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {_kind(value)}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{path}: expected {len(args)} items, got {len(value)}")
            pairs = enumerate(zip(args, value, strict=True))
            return tuple(_coerce(a, v, f"{path}[{i}]") for i, (a, v) in pairs)
        item = args[0] if args else Any
        out = [_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {_kind(value)}")
        return {str(k): _coerce(args[1] if args else Any, v, f"{path}.{k}") for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_kind(value)}")
        return value
    if hint is int:
        if isinstance(value, float) and not math.isfinite(value):  # int(nan) and int(inf) raise
            raise ConfigError(f"{path}: expected an integer, got {value}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{path}: expected an integer, got {_kind(value)}")
        return int(value)
    if hint is float:
        if isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads '3e-4' as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {_kind(value)}")
        if not math.isfinite(value):  # a NaN passes every `x > 0` check the wrong way; inf means nothing here
            raise ConfigError(f"{path}: expected a finite number, got {value}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {_kind(value)}")
        return value
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return type(value).__name__
    return f"{type(value).__name__} {value!r}"


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def read_launch_file(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a YAML launch file (any kind: train, hil, ros2) and apply `--set` overrides; errors name the file.

    It lives here, not in the training schema, so that the hardware launch kinds need no training code."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"launch file {str(path)!r} does not exist")
    data = strict_yaml.read(path)  # bounded: no aliases, duplicate keys, non-UTF-8 or huge files
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a launch file must be a mapping of keys to values")
    return apply_overrides(data, overrides)
