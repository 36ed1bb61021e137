"""Hyperparameter search with cross-validation and early stopping (the ``tune`` job), on Optuna.

The pieces: ``space`` (the TOML search space), ``validation`` (folds and their scores), ``trial`` (one
configuration on every fold, wherever it runs) and ``search`` (the study, the parallel trials, the outputs).
"""

from __future__ import annotations

from typing import Any


def tune(data: str, space: dict[str, Any] | str, out: str, *, model: dict[str, Any] | None = None,
         engine: Any = "inprocess", workers: int = 2, **options: Any) -> dict[str, Any]:  # noqa: ANN401
    """The ``tune`` job from Python: ``space`` a TOML file's path or the same as a mapping
    (``{"model": {"reg": {"low": 0.02, "high": 0.5, "log": True}}}``), ``model`` the base ``[model]``
    keys, ``engine`` as for the estimators, ``options`` any ``[tune]`` key (cv, metric, search, trials,
    pruner, parallel, refit, test, resume, seed). Returns the summary the job writes to OUT/tune.json."""
    import dataclasses

    from recsys_dist.config import JobConfig
    from recsys_dist.estimators import _engine
    from recsys_dist.tuning.search import tune_job

    path = space if isinstance(space, str) else ""
    cfg = JobConfig.from_mapping({"model": model or {}, "tune": {"data": str(data), "space": path, "out": str(out),
                                                                  **options}}, "tune()")
    cfg = dataclasses.replace(cfg, engine=_engine(engine, workers))
    return tune_job(cfg, None if path else space)


__all__ = ["tune"]
