"""Generic configuration machinery: TOML and override parsing, typed coercion, validators.

``config.py`` declares the sections; this module turns mappings into them and checks values,
naming the offending key in every error.
"""

from __future__ import annotations

import datetime as _dt
import tomllib
import types
import typing
from typing import Any, Mapping

from recsys_dist.errors import ConfigError


def parse_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: invalid TOML: {exc}") from None


def parse_override(item: str) -> tuple[str, str, Any]:
    """Parse ``section.key=value``; the value is a TOML literal, else a plain string."""
    key, sep, raw = item.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not section or not name:
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return section, name, value


def merge(base: Mapping[str, Any], overrides: list[tuple[str, str, Any]]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for section, name, value in overrides:
        merged.setdefault(section, {})[name] = value
    return merged


def section_from_mapping(cls: type, section: str, values: Mapping[str, Any], origin: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            known = ", ".join(hints)
            raise ConfigError(f"{origin}: unknown key {section}.{key} (known in [{section}]: {known})")
        kwargs[key] = _coerce(f"{section}.{key}", hints[key], value)
    return cls(**kwargs)


def _coerce(key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is list:
        (item_type,) = typing.get_args(hint)
        if isinstance(value, str) and item_type is str:
            value = [value]  # one path for a list of paths
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", item_type, v) for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{key}: unsupported type {hint}")  # pragma: no cover - no such fields
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. split.fold = 2
        if isinstance(value, (_dt.date, _dt.time)):
            return value.isoformat()  # TOML dates, e.g. split.cutoff = 2001-01-01
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {hint}")  # pragma: no cover


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(repr(a) for a in allowed)}")


def _at_least(key: str, value: int, low: int) -> None:
    if value < low:
        raise ConfigError(f"{key}: must be >= {low}, got {value}")


def _check_scale(key: str, scale: list[float]) -> None:
    if not scale:
        return
    if len(scale) not in (2, 3) or not scale[0] < scale[1] or (len(scale) == 3 and scale[2] <= 0):
        raise ConfigError(f"{key}: expected [min, max] or [min, max, step] with min < max, got {scale}")
