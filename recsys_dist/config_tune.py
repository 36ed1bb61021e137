"""Configuration of the ``tune`` job (the hyperparameter search). Same rules as ``config.py``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from recsys_dist.config_fields import _at_least, _choice
from recsys_dist.errors import ConfigError

SEARCHES = ("tpe", "random", "grid")
PRUNERS = ("median", "halving", "hyperband", "none")
RATING_METRICS = ("rmse", "mae")
RANKING_METRICS = ("ndcg", "precision", "recall", "map", "hit_rate")
CV_PATTERN = re.compile(r"^(kfold:(?P<k>\d+)|holdout:(?P<f>0?\.\d+)|folds:(?P<folds>[a-z0-9.,]+))$")


@dataclass(frozen=True, slots=True)
class TuneConfig:
    data: str = ""
    """Dataset to search on: the training part only (e.g. SPLIT/train); folds are cut from it."""
    space: str = ""
    """TOML file of the search space: one table per model key (``[model.reg] low/high/log``, ``choices``)."""
    search: str = "tpe"
    """``tpe`` (Optuna's Bayesian sampler), ``random`` or ``grid`` (every combination)."""
    trials: int = 20
    """Configurations to try (grid: 0 means the whole grid)."""
    cv: str = "kfold:5"
    """``kfold:K`` (K folds of ``data``), ``holdout:F`` (one random share F held out) or ``folds:u1..u5``
    (ml-100k's official folds; ``data`` is then the whole ingested dataset)."""
    metric: str = "rmse"
    """What the search optimises: ``rmse``, ``mae`` (rating models) or ``ndcg@K``, ``precision@K``, ``recall@K``,
    ``map@K``, ``hit_rate@K`` (any model; relevant = held-out rating >= ``relevance``)."""
    relevance: float = 4.0
    pruner: str = "median"
    """Early stopping on the first fold's per-iteration validation score: ``median``, ``halving``
    (successive halving), ``hyperband`` or ``none``."""
    parallel: int = 0
    """Trials run at once; 0: the engine's workers (shm processes, Dask workers), 1 in process."""
    out: str = ""
    """Directory of the search: study journal, results table, best.toml, the refit model."""
    refit: bool = False
    """Train the best configuration on the whole of ``data`` into OUT/model."""
    test: list[str] = field(default_factory=list)
    """With ``refit``: held-out parts (e.g. SPLIT/test SPLIT/cold) the refit model is scored on (nested evaluation)."""
    resume: bool = False
    """Continue the search in ``out`` without re-running its finished trials."""
    seed: int = 0
    """Seed of the sampler and of the folds."""
    archive: str = ""
    """cv folds:…: the ml-100k archive (default: the dataset's recorded source)."""

    def __post_init__(self) -> None:
        if isinstance(self.test, str):
            object.__setattr__(self, "test", [self.test] if self.test else [])

    def validate(self) -> None:
        _choice("tune.search", self.search, SEARCHES)
        _choice("tune.pruner", self.pruner, PRUNERS)
        _at_least("tune.trials", self.trials, 0 if self.search == "grid" else 1)
        _at_least("tune.parallel", self.parallel, 0)
        if not CV_PATTERN.match(self.cv):
            raise ConfigError(f"tune.cv: expected kfold:K, holdout:F or folds:u1..u5, got {self.cv!r}")
        m = CV_PATTERN.match(self.cv)
        if m.group("k") is not None and int(m.group("k")) < 2:
            raise ConfigError(f"tune.cv: kfold needs at least 2 folds, got {self.cv!r}")
        metric_parts(self.metric)
        if self.test and not self.refit:
            raise ConfigError("tune.test: scoring held-out data needs tune.refit (--refit)")


def metric_parts(metric: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ("ndcg", 10); ``"rmse"`` -> ("rmse", 0); anything else a ConfigError."""
    name, _, k = metric.partition("@")
    if name in RATING_METRICS and not k:
        return name, 0
    if name in RANKING_METRICS and k.isdigit() and int(k) >= 1:
        return name, int(k)
    raise ConfigError(f"tune.metric: expected rmse, mae or one of {', '.join(m + '@K' for m in RANKING_METRICS)} "
                      f"(K >= 1), got {metric!r}")


def cv_folds(cv: str) -> tuple[str, list[str], float]:
    """The split method of ``cv``, its fold names and the holdout share."""
    m = CV_PATTERN.match(cv)
    if m is None:
        raise ConfigError(f"tune.cv: expected kfold:K, holdout:F or folds:u1..u5, got {cv!r}")
    if m.group("k") is not None:
        return "kfold", [str(i) for i in range(int(m.group("k")))], 0.0
    if m.group("f") is not None:
        f = float(m.group("f"))
        if not 0 < f < 1:
            raise ConfigError(f"tune.cv: holdout share must be in (0, 1), got {cv!r}")
        return "random", ["holdout"], f
    spec = m.group("folds")
    if ".." in spec:
        lo, _, hi = spec.partition("..")
        if not (re.fullmatch(r"u[1-5]", lo) and re.fullmatch(r"u[1-5]", hi) and lo <= hi):
            raise ConfigError(f"tune.cv: expected folds:u1..u5 (a range of u1-u5), got {cv!r}")
        names = [f"u{i}" for i in range(int(lo[1]), int(hi[1]) + 1)]
    else:
        names = spec.split(",")
    for n in names:
        if n not in ("u1", "u2", "u3", "u4", "u5", "ua", "ub"):
            raise ConfigError(f"tune.cv: unknown official fold {n!r} in {cv!r} (u1..u5, ua, ub)")
    return "folds", names, 0.0
