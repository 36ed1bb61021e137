"""One trial of the search: a configuration trained and scored on every fold, in whatever process runs it
(the search's own, a pool process or a Dask worker). Pruning decisions go through the study's storage, so
a trial anywhere sees the intermediate scores of all the others."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from recsys_dist.config import RANKING_KINDS, EngineConfig, TrainConfig
from recsys_dist.train import fit
from recsys_dist.tuning.space import model_config
from recsys_dist.tuning.validation import Fold, Validator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialSpec:
    """Everything a trial needs, picklable: it travels to pool processes and Dask workers."""
    number: int
    trial_id: int
    params: dict[str, Any]
    base: dict[str, Any]
    folds: tuple[Fold, ...]
    metric: str
    relevance: float
    engine: EngineConfig
    study: Any = None          # an optuna.Study whose storage this process can reach; None: never pruned
    journal: str = ""          # or the journal file to open it from (pool processes)
    pruner: Any = None         # the study's pruner, for a study opened from the journal
    prune_folds: bool = False  # also prune between folds (median pruner: steps need not be iterations)


@dataclass
class TrialOutcome:
    number: int
    value: float
    pruned: bool
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


FOLD_STEPS = 1_000_000  # report steps of the between-fold means, past any iteration count


class _Pruned(Exception):
    pass


def run_trial(spec: TrialSpec) -> TrialOutcome:
    """Train ``spec.params`` on each fold; the first fold reports its per-iteration score to the pruner."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = _trial(spec)
    model_cfg = model_config(spec.base, spec.params)
    with _quiet_training():
        return _folds(spec, trial, model_cfg)


@contextlib.contextmanager
def _quiet_training() -> Iterator[None]:
    """A trial's fits log nothing below a warning: the search logs one line per trial."""
    loggers = [logging.getLogger(name) for name in ("recsys_dist.train", "recsys_dist.executors")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _folds(spec: TrialSpec, trial: Any, model_cfg: Any) -> TrialOutcome:  # noqa: ANN401
    """Each fold in turn: the first one's iterations watched by the pruner when there is a study, and
    with ``prune_folds`` the running mean after each later fold."""
    rating_model = model_cfg.kind not in RANKING_KINDS
    rows: list[dict[str, Any]] = []
    for f, fold in enumerate(spec.folds):
        validator = Validator(fold, spec.metric, spec.relevance)
        watched = trial is not None and f == 0
        last: dict[str, float] = {}

        def report(record: dict[str, Any], last: dict[str, float] = last) -> None:
            last["value"], last["iteration"] = record["validation"], record["iteration"]
            trial.report(record["validation"], record["iteration"])
            if trial.should_prune():
                raise _Pruned

        started = time.perf_counter()
        try:
            result = fit(TrainConfig(train=fold.train), model_cfg, spec.engine, callbacks=(report,) if watched else (),
                         validate=(lambda m: {"validation": validator(m)}) if watched else None)
        except _Pruned:
            rows.append({**_row(spec, fold, started), spec.metric: last["value"], "iterations": int(last["iteration"]),
                         "pruned": True})
            return TrialOutcome(spec.number, last["value"], True, rows)
        metrics = validator.all_metrics(result.model, rating_model)
        rows.append({**_row(spec, fold, started), **metrics, spec.metric: validator(result.model),
                     "iterations": len(result.history), "pruned": False})
        if trial is not None and spec.prune_folds and 0 < f < len(spec.folds) - 1:
            # the mean over the folds so far, at a step of its own: a trial worse than the median of the
            # others after the same number of folds stops before the next fold
            so_far = float(np.mean([r[spec.metric] for r in rows]))
            trial.report(so_far, FOLD_STEPS + f)
            if trial.should_prune():
                rows[-1]["pruned"] = True
                return TrialOutcome(spec.number, so_far, True, rows)
    return TrialOutcome(spec.number, float(np.mean([r[spec.metric] for r in rows])), False, rows)


def _row(spec: TrialSpec, fold: Fold, started: float) -> dict[str, Any]:
    return {"trial": spec.number, "fold": fold.name, **spec.params, "seconds": round(time.perf_counter() - started, 3)}


def _trial(spec: TrialSpec) -> Any:  # noqa: ANN401 - an optuna.trial.Trial or None
    import optuna

    study = spec.study
    if study is None and spec.journal:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        study = optuna.load_study(study_name="tune", storage=JournalStorage(JournalFileBackend(spec.journal)),
                                  pruner=spec.pruner)
    return None if study is None else optuna.trial.Trial(study, spec.trial_id)
