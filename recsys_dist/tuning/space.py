"""The search space: a TOML table per model key, read once and checked against ``ModelConfig``.

    [model.rank]
    choices = [10, 32, 64, 128]
    [model.reg]
    low = 0.02
    high = 0.5
    log = true          # sampled log-uniformly; with --search grid also `points = 4`

Integer keys (rank, n_iter, cg_steps, ...) are drawn as integers (``step`` optional), float keys as
floats, string and boolean keys from ``choices``. Every endpoint and choice is checked to give a valid
model configuration before any trial runs.
"""

from __future__ import annotations

import itertools
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys_dist.config import KIND_DEFAULTS, ModelConfig
from recsys_dist.config_fields import parse_toml, section_from_mapping
from recsys_dist.errors import ConfigError

_FIELDS = typing.get_type_hints(ModelConfig)
_NOT_TUNED = ("seed",)  # the search's own seed decides it; tuning a seed is fitting noise


@dataclass(frozen=True)
class Param:
    key: str                      # a ModelConfig field
    kind: type                    # int, float, str or bool
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    points: int = 0

    def suggest(self, trial: Any) -> Any:  # noqa: ANN401 - an optuna.Trial
        name = f"model.{self.key}"
        if self.choices:
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind is int:
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def grid(self) -> list[Any]:
        if self.choices:
            return list(self.choices)
        if self.points < 2:
            raise ConfigError(f"model.{self.key}: a grid search needs `choices` or `points` (>= 2) for a range")
        values = (np.geomspace if self.log else np.linspace)(self.low, self.high, self.points)
        if self.kind is int:
            return sorted({int(round(v)) for v in values})
        return [float(f"{v:.6g}") for v in values]


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    origin: str

    @classmethod
    def from_toml(cls, text: str, origin: str, base: dict[str, Any]) -> SearchSpace:
        return cls.from_mapping(parse_toml(text, origin), origin, base)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], origin: str, base: dict[str, Any]) -> SearchSpace:
        """``{"model": {"reg": {"low": 0.02, "high": 0.5, "log": True}, ...}}``, as the TOML file reads."""
        extra = sorted(set(data) - {"model"})
        if extra:
            raise ConfigError(f"{origin}: only [model.KEY] tables can be searched, not [{extra[0]}]")
        tables = data.get("model", {})
        if not tables:
            raise ConfigError(f"{origin}: no [model.KEY] table: nothing to search")
        params = tuple(_param(key, spec, origin) for key, spec in tables.items())
        space = cls(params, origin)
        space.check(base)
        return space

    @property
    def keys(self) -> list[str]:
        return [f"model.{p.key}" for p in self.params]

    def suggest(self, trial: Any) -> dict[str, Any]:  # noqa: ANN401 - an optuna.Trial
        return {f"model.{p.key}": p.suggest(trial) for p in self.params}

    def grid(self) -> dict[str, list[Any]]:
        return {f"model.{p.key}": p.grid() for p in self.params}

    def grid_size(self) -> int:
        return int(np.prod([len(v) for v in self.grid().values()]))

    def check(self, base: dict[str, Any]) -> None:
        """Every extreme of every parameter (with the others at their base value) must be a valid model."""
        for p in self.params:
            extremes = p.choices or (p.low, p.high)
            for value in extremes:
                try:
                    model_config(base, {f"model.{p.key}": value})
                except ConfigError as exc:
                    raise ConfigError(f"{self.origin}: model.{p.key} = {value!r} is not a valid setting: {exc}") from None

    def combinations(self) -> list[dict[str, Any]]:
        grid = self.grid()
        return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def model_config(base: dict[str, Any], params: dict[str, Any]) -> ModelConfig:
    """The ModelConfig of a trial: the base [model] table with the trial's values; a trial of another kind
    than the base's takes that kind's own defaults (bpr's reg, ...) unless the space sets them."""
    values = {k.removeprefix("model."): v for k, v in params.items()}
    kind = str(values.get("kind", base.get("kind", "als")))
    switched = KIND_DEFAULTS.get(kind, {}) if kind != base.get("kind", "als") else {}
    cfg = section_from_mapping(ModelConfig, "model", {**base, **switched, **values}, "the search space")
    cfg.validate()
    return cfg


def _param(key: str, spec: Any, origin: str) -> Param:  # noqa: ANN401 - a TOML value
    where = f"{origin}: model.{key}"
    if key not in _FIELDS:
        raise ConfigError(f"{where}: unknown model key (known: {', '.join(k for k in _FIELDS if k not in _NOT_TUNED)})")
    if key in _NOT_TUNED:
        raise ConfigError(f"{where}: the seed is not a hyperparameter; set tune.seed for the search")
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a table with `choices = [...]` or `low`/`high`, got {spec!r}")
    kind = _FIELDS[key]
    unknown = sorted(set(spec) - {"choices", "low", "high", "log", "step", "points"})
    if unknown:
        raise ConfigError(f"{where}: unknown option {unknown[0]!r} (choices, low, high, log, step, points)")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list")
        if set(spec) - {"choices"}:
            raise ConfigError(f"{where}: give either choices or low/high, not both")
        for c in choices:
            if not _fits(kind, c):
                raise ConfigError(f"{where}: choice {c!r} is not a {kind.__name__}")
        return Param(key, kind, choices=tuple(kind(c) if kind is float else c for c in choices))
    if kind not in (int, float):
        raise ConfigError(f"{where}: a {kind.__name__} key takes `choices = [...]`, not a range")
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: a range needs both low and high")
    low, high = spec["low"], spec["high"]
    for name, v in (("low", low), ("high", high)):
        if not _fits(kind, v):
            raise ConfigError(f"{where}: {name} must be a {kind.__name__}, got {v!r}")
    if not low < high:
        raise ConfigError(f"{where}: low must be below high, got {low} and {high}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None and (not _fits(kind, step) or step <= 0 or log):
        raise ConfigError(f"{where}: step must be a positive {kind.__name__}, and cannot go with log")
    points = spec.get("points", 0)
    if not isinstance(points, int) or isinstance(points, bool) or points < 0:
        raise ConfigError(f"{where}: points must be a whole number >= 2")
    return Param(key, kind, low=float(low) if kind is float else int(low), high=float(high) if kind is float else int(high),
                 log=log, step=step, points=points)


def _fits(kind: type, value: Any) -> bool:  # noqa: ANN401
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)
