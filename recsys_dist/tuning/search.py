"""The search: an Optuna study (sampler, pruner, a journal file for resuming) whose trials run in parallel
on the engine (``runners``), and what it leaves in OUT (``results``): results.parquet/.csv, best.toml,
tune.json and, on request, the refit model and its score on held-out data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from recsys_dist.config import RANKING_KINDS, EvaluateConfig, JobConfig, TrainConfig
from recsys_dist.config_tune import metric_parts
from recsys_dist.data.dataset import Dataset
from recsys_dist.errors import ConfigError, FitError
from recsys_dist.tuning.results import leaderboard, plain, results_table, write_best_toml
from recsys_dist.tuning.runners import runner_for
from recsys_dist.tuning.space import SearchSpace, model_config
from recsys_dist.tuning.trial import TrialSpec, run_trial
from recsys_dist.tuning.validation import prepare_folds

log = logging.getLogger(__name__)
JOURNAL = "study.journal"


def tune_job(cfg: JobConfig, space_mapping: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the search ``cfg.tune`` describes (the space from ``tune.space``'s file, or ``space_mapping``);
    return its summary (also written to OUT/tune.json)."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("the tune job needs Optuna: pip install 'recsys_dist[tune]'") from None

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t = cfg.tune
    for key, value, flag in (("data", t.data, "--data"), ("space", t.space or space_mapping, "--space"),
                             ("out", t.out, "--out")):
        if not value:
            raise ConfigError(f"tune.{key}: missing; pass {flag}")
    if "://" in t.out and not t.out.startswith("file://"):
        raise ConfigError(f"tune.out: {t.out} must be a local or shared directory (the study journal is a locked file)")
    out = t.out.removeprefix("file://")
    base = dataclasses.asdict(cfg.model)
    if space_mapping is not None:
        space_text = json.dumps(space_mapping, sort_keys=True, default=str)
        space = SearchSpace.from_mapping(space_mapping, "space", base)
    else:
        try:
            space_text = Path(t.space).read_text()
        except OSError as exc:
            raise ConfigError(f"tune.space: cannot read {t.space}: {exc.strerror}") from None
        space = SearchSpace.from_toml(space_text, t.space, base)
    _check_metric(t.metric, space, base)
    name, k = metric_parts(t.metric)
    direction = "minimize" if name in ("rmse", "mae") else "maximize"
    total = t.trials or space.grid_size()
    if t.search == "grid":
        total = min(total, space.grid_size())
    journal = os.path.join(out, JOURNAL)
    settings = {"space": hashlib.sha256(space_text.encode()).hexdigest()[:16], "metric": t.metric, "cv": t.cv,
                "search": t.search, "seed": t.seed, "data": os.path.abspath(t.data) if "://" not in t.data else t.data,
                "base": {k_: v for k_, v in base.items() if f"model.{k_}" not in space.keys}}
    if os.path.exists(journal) and not t.resume:
        raise ConfigError(f"tune.out: {out} already holds a search: pass --resume to continue it, or choose another --out")
    os.makedirs(out, exist_ok=True)
    folds = tuple(prepare_folds(t.data, t.cv, out, t.seed, t.archive))
    n_ratings = max(Dataset.open(f.train).n_ratings for f in folds)
    started = time.perf_counter()
    with runner_for(cfg.engine, t.parallel, n_ratings) as runner:
        storage = runner.storage(journal)
        study = optuna.create_study(study_name="tune", storage=storage, sampler=_sampler(t.search, space, t.seed),
                                    pruner=_pruner(t.pruner, space, base, runner.parallel), direction=direction,
                                    load_if_exists=True)
        _check_resumable(study, settings, out)
        done = _finished(study)
        if done:
            log.info("resuming: %d of %d trials already finished, %d to go", done, total, max(total - done, 0))
        log.info("search: %s over %s, %d trials, %s, %s; %s", t.search, ", ".join(space.keys), total, t.cv, t.metric,
                 runner.describe())
        _run(study, space, runner, total - done, lambda trial, params: TrialSpec(
            trial.number, trial._trial_id, params, base, folds, t.metric, t.relevance, runner.trial_engine,
            study if runner.shares_study else None, journal if runner.by_journal else "", study.pruner,
            t.pruner == "median"))
        trials = study.get_trials(deepcopy=False)
    seconds = time.perf_counter() - started
    table = results_table(trials)
    table.to_parquet(os.path.join(out, "results.parquet"), index=False)
    table.to_csv(os.path.join(out, "results.csv"), index=False)
    board = leaderboard(table, t.metric, direction)
    if board.empty:
        raise FitError(f"tune: no trial finished; see {os.path.join(out, 'results.csv')} for each trial's error")
    best_params = dict(next(tr for tr in trials if tr.number == int(board.iloc[0]["trial"])).params)
    best_cfg = model_config(base, best_params)
    write_best_toml(os.path.join(out, "best.toml"), best_cfg, t.metric, float(board.iloc[0]["mean"]), t.cv, out)
    summary: dict[str, Any] = {
        "out": out, "metric": t.metric, "direction": direction, "cv": t.cv, "search": t.search,
        "trials": len([tr for tr in trials if tr.state.is_finished()]),
        "pruned": int(sum(tr.state.name == "PRUNED" for tr in trials)),
        "failed": int(sum(tr.state.name == "FAIL" for tr in trials)),
        "seconds": round(seconds, 2), "mode": runner.describe(), "best": {**best_params, t.metric: float(board.iloc[0]["mean"])},
        "leaderboard": board.head(10).to_dict(orient="records"),
    }
    if t.refit:
        summary["refit"] = _refit(cfg, best_cfg, out, t.test, t.metric, t.relevance)
    Path(out, "tune.json").write_text(json.dumps(summary, indent=2, default=plain) + "\n")
    return summary


def _run(study: Any, space: SearchSpace, runner: Any, remaining: int,  # noqa: ANN401 - optuna objects
         spec_of: Callable[[Any, dict[str, Any]], TrialSpec]) -> None:
    """Keep ``runner.parallel`` trials running until ``remaining`` have finished."""
    from optuna.trial import TrialState

    asked: dict[int, Any] = {}
    launched = 0
    while launched < remaining or asked:
        while launched < remaining and len(asked) < runner.parallel:
            trial = study.ask()
            params = space.suggest(trial)
            asked[trial.number] = trial
            runner.submit(run_trial, spec_of(trial, params))
            launched += 1
        for outcome in runner.finished():
            trial = asked.pop(outcome.number)
            trial.set_user_attr("folds", outcome.rows)
            if outcome.error:
                trial.set_user_attr("error", outcome.error)
                study.tell(trial, state=TrialState.FAIL)
                log.warning("trial %d (%s) failed: %s", outcome.number, _show(trial.params), outcome.error)
            elif outcome.pruned:
                study.tell(trial, state=TrialState.PRUNED)
                log.info("trial %d (%s): pruned in fold %s after %d iterations (%.4f)", outcome.number,
                         _show(trial.params), outcome.rows[-1]["fold"], outcome.rows[-1]["iterations"], outcome.value)
            else:
                study.tell(trial, outcome.value)
                seconds = sum(r["seconds"] for r in outcome.rows)
                log.info("trial %d (%s): %.4f over %d folds, %.1f s", outcome.number, _show(trial.params),
                         outcome.value, len(outcome.rows), seconds)


def _finished(study: Any) -> int:  # noqa: ANN401
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    for trial in stale:  # left running by an interrupted search: run again
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    if stale:
        log.info("%d trials of the interrupted search did not finish: they are run again", len(stale))
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _check_resumable(study: Any, settings: dict[str, Any], out: str) -> None:  # noqa: ANN401
    recorded = study.user_attrs.get("settings")
    if recorded is None:
        study.set_user_attr("settings", settings)
        return
    now = json.loads(json.dumps(settings))
    # a model key added by a later version (at its default) is no change of the search
    common = set(recorded.get("base", {})) & set(now["base"])
    recorded = {**recorded, "base": {k: recorded["base"][k] for k in common}}
    now["base"] = {k: now["base"][k] for k in common}
    changed = sorted(k for k in now if recorded.get(k) != now[k])
    if changed:
        raise ConfigError(f"tune.out: the search in {out} was made with other {', '.join(changed)}; resume it with "
                          "the same settings, or choose another --out")


def _check_metric(metric: str, space: SearchSpace, base: dict[str, Any]) -> None:
    name, _ = metric_parts(metric)
    kinds = {base.get("kind", "als")}
    for p in space.params:
        if p.key == "kind":
            kinds = set(p.choices)
    ranking = sorted(k for k in kinds if k in RANKING_KINDS)
    if name in ("rmse", "mae") and ranking:
        raise ConfigError(f"tune.metric: {metric} needs rating predictions, but {', '.join(ranking)} ranks items; "
                          "use ndcg@10 or another ranking metric")


def _sampler(search: str, space: SearchSpace, seed: int) -> Any:  # noqa: ANN401
    import optuna

    if search == "grid":
        return _grid_sampler(space.grid(), seed)
    if search == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: trials running in parallel count as already bad, so they are not all sent to one spot
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def _grid_sampler(grid: dict[str, list[Any]], seed: int) -> Any:  # noqa: ANN401
    import optuna

    class Grid(optuna.samplers.GridSampler):
        """Optuna's grid sampler without its stop at the end of the grid (``study.stop`` exists only inside
        ``optimize``; this search asks and tells, and asks for no more trials than the grid has)."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:  # noqa: ANN401
            pass

    return Grid(grid, seed=seed)


def _pruner(name: str, space: SearchSpace, base: dict[str, Any], parallel: int) -> Any:  # noqa: ANN401
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":  # compare from the fourth iteration on, once a few trials have finished
        return optuna.pruners.MedianPruner(n_startup_trials=max(3, parallel), n_warmup_steps=3)
    iterations = max([int(base.get("n_iter", 10))] + [int(v) for p in space.params if p.key == "n_iter"
                                                       for v in (p.choices or (p.high,))])
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=3)
    return optuna.pruners.HyperbandPruner(min_resource=3, max_resource=iterations)


def _refit(cfg: JobConfig, best: Any, out: str, test: list[str], metric: str,  # noqa: ANN401
           relevance: float) -> dict[str, Any]:
    """Train the best configuration on the whole of tune.data; score it on ``test`` when given."""
    from recsys_dist.batch import run_evaluation
    from recsys_dist.pipeline import run_training

    model_dir = os.path.join(out, "model")
    log.info("refitting the best configuration on %s into %s", cfg.tune.data, model_dir)
    run_training(dataclasses.replace(cfg, model=best, train=TrainConfig(train=cfg.tune.data, out=model_dir)))
    result: dict[str, Any] = {"model": model_dir}
    if test:
        name, k = metric_parts(metric)
        m = run_evaluation(EvaluateConfig(model=model_dir, data=list(test), k=[k or 10], relevance=relevance), cfg.engine)
        result["test"] = " ".join(test)
        result[metric] = m[name] if not k else m["ranking"]["at"][str(k)][name]
        if "rmse" in m:
            result.update(rmse=m["rmse"], mae=m["mae"], n=m["n"])
    return result


def _show(params: dict[str, Any]) -> str:
    return ", ".join(f"{k.removeprefix('model.')}={v:.4g}" if isinstance(v, float) else f"{k.removeprefix('model.')}={v}"
                     for k, v in params.items())


