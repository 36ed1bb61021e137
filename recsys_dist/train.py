"""The training driver: build blocks, initialise, loop iterations through an executor.

What one iteration is belongs to the model kind (``recsys_dist.models``): two symmetric ALS
half-steps for ``als``, ``bias`` and ``implicit_als``, B stratified sub-epochs of SGD for
``bpr``. The driver owns everything around it: opening the data, building each side's blocks
where the engine runs them, initial factors (or a checkpoint), the per-iteration record, the
test score, callbacks, checkpoints and the early stop. It never knows which executor runs the
blocks, nor how a model's task functions compute. How many blocks and building them is
``train_blocks``; the rating metrics of the run, in memory or reduced over blocks, ``train_metrics``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from recsys_dist import progress
from recsys_dist.als import block_is_finite, init_matrix, init_rows
from recsys_dist.checkpoint import (begin_checkpoint, begin_model, checkpoint_rows, checkpoint_state, finish_checkpoint,
                                   finish_model, load_latest_checkpoint, save_checkpoint, save_model, write_rows_part)
from recsys_dist.config import KIND_ONLY_KEYS, RANKING_KINDS, EngineConfig, ModelConfig, TrainConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.errors import CheckpointError, DataError, FitError
from recsys_dist.evaluate import rating_metrics
from recsys_dist.executors import make_executor
from recsys_dist.model import ALSModel
from recsys_dist.models import steps_for
from recsys_dist.models.popular import popular_matrices
from recsys_dist.train_blocks import build_blocks, check_worker_memory, default_blocks
from recsys_dist.train_metrics import block_metrics, model_metrics, reduced_test_rmse

log = logging.getLogger(__name__)
Callback = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    model: ALSModel | None
    """None when ``fit(in_memory=False)`` trained a sharded kind: its matrices never came to the driver."""
    history: list[dict[str, Any]] = field(default_factory=list)
    engine: str = ""
    setup_seconds: float = 0.0
    final: dict[str, Any] = field(default_factory=dict)
    """With ``fit(final_metrics=True)``, a rating model's RMSE, MAE and n on its training ratings and on
    train.test (``train``, ``test``; with ``cold``, ``test_with_cold`` when the split moved ratings to cold/)."""
    save_seconds: float = 0.0
    """Seconds spent saving the model to ``fit(save_to=...)`` (0 when not saved)."""


def fingerprint(train: Dataset, model_cfg: ModelConfig) -> str:
    """What a checkpoint must match to be resumed: the training data and the model settings."""
    # clip changes only how predictions are served; other kinds' own keys are not this model's settings
    ignored = {"n_iter", "tol", "clip"} | {key for kind, keys in KIND_ONLY_KEYS.items() if kind != model_cfg.kind
                                           for key in keys}
    if model_cfg.gather_dtype == "float32":  # the default of a key added later: older checkpoints still resume
        ignored.add("gather_dtype")
    settings = {k: v for k, v in dataclasses.asdict(model_cfg).items() if k not in ignored}
    text = json.dumps([train.manifest["files"], settings], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fit(train_cfg: TrainConfig, model_cfg: ModelConfig, engine_cfg: EngineConfig,
        callbacks: tuple[Callback, ...] = (), validate: Callable[[ALSModel], dict[str, float]] | None = None,
        save_to: str = "", in_memory: bool = True, final_metrics: bool = False) -> TrainResult:
    """Train on ``train_cfg.train``; score ``train_cfg.test`` each iteration when given (rating models).

    ``validate(model)``, when given, scores every iteration's model (a view of the live factors, with the
    training counts) and its figures join the iteration's record before the callbacks see it. ``save_to``
    saves the model there (a sharded kind's matrices written block by block where they live, the driver
    writing model.json last). ``in_memory=False`` leaves a sharded kind's model out of the result, so the
    driver never holds a factor matrix; ``final_metrics`` scores the final model (``TrainResult.final``), for
    the sharded kinds by reductions over the blocks."""
    started = time.perf_counter()
    train = Dataset.open(train_cfg.train)
    if train.n_ratings == 0:
        raise DataError(f"{train.url}: no training ratings")
    ranking = model_cfg.kind in RANKING_KINDS
    mu = 0.0 if ranking else float(train.manifest["rating_stats"]["mean"])
    user_ids, item_ids = train.user_index().ids, train.item_index().ids
    config = {"model": dataclasses.asdict(model_cfg), "train_data": train.absolute_url,
              "train_fingerprint": train.fingerprint()}
    if model_cfg.kind in ("mean", "popular"):
        if model_cfg.kind == "popular":
            user, item = popular_matrices(train.item_counts(at_least=model_cfg.threshold), train.n_users)
        else:
            user, item = np.zeros((train.n_users, 1), np.float32), np.zeros((train.n_items, 1), np.float32)
        model = ALSModel(model_cfg.kind, mu, user, item, user_ids, item_ids, config, *train.rating_counts(),
                         train.rating_scale[:2])
        return _kept(model, [], "none", time.perf_counter() - started, train, train_cfg.test, save_to,
                     final_metrics and not ranking)
    steps = steps_for(model_cfg, mu, train)
    rank = steps.rank
    # a sharded kind's factors live where its blocks do: the driver sees only block results (and fetch)
    sharded = bool(getattr(steps, "sharded", False))
    if sharded and engine_cfg.name != "inprocess":
        _check_block_writable(save_to, train_cfg, engine_cfg.name)
    test_url = train_cfg.test if train_cfg.test and not ranking else ""
    test = Dataset.open(test_url).read_all() if test_url and not sharded else None
    with make_executor(engine_cfg) as ex:
        log.info("engine: %s", ex.describe())
        configured = {"user": engine_cfg.user_blocks, "item": engine_cfg.item_blocks}
        if model_cfg.kind == "bpr":  # the strata are a model setting: the engine must not change them
            configured = {"user": steps.blocks(train.n_users), "item": 0}
        n_blocks = {side: configured[side] or default_blocks(n, train.n_ratings, ex.n_workers)
                    for side, n in (("user", train.n_users), ("item", train.n_items))}
        check_worker_memory(ex, train, rank, n_blocks)
        counts = build_blocks(ex, train, steps.sides, n_blocks, test_url if sharded else "")
        if not sharded:
            for side, n in (("user", train.n_users), ("item", train.n_items)):
                ex.new_matrix(side, n, rank + 1)
        history, start = _initial_state(ex, train, train_cfg, model_cfg, rank, steps, sharded)
        steps.prepare(ex, counts, n_blocks)
        setup = time.perf_counter() - started
        log.info("blocks built and factors initialised in %.2f s", setup)
        log.info("solver: %s", steps.describe())
        counter = getattr(ex, "transferred_bytes", None)  # Dask: bytes the workers sent each other
        for iteration in range(start, model_cfg.n_iter):
            record: dict[str, Any] = {"iteration": iteration + 1, "engine": ex.name, "workers": ex.n_workers}
            if counter:
                counter()  # start this iteration's count
            with progress.bar(f"iteration {iteration + 1}/{model_cfg.n_iter}", steps.tasks_per_iteration(n_blocks)):
                record.update(steps.iteration(ex, iteration))
            if counter:
                record["transferred_bytes"] = counter()
                record["routing"] = ex.routing()
            for side in ("user", "item"):
                if f"{side}_nonfinite" in record:  # counted by the solve tasks
                    finite = record.pop(f"{side}_nonfinite") == 0
                else:
                    finite = (all(ex.map_blocks(side, block_is_finite, None, side, ())) if sharded
                              else np.isfinite(ex.matrix(side)).all())
                if not finite:
                    raise FitError(f"iteration {iteration + 1}: non-finite {side} factors; increase model.reg "
                                   f"(or lower model.learning_rate) or check the ratings")
            if test_url and sharded:
                record["test_rmse"] = reduced_test_rmse(ex, mu, model_cfg.kind, config, train.rating_scale[:2])
            elif test is not None:
                model = _model(ex, mu, user_ids, item_ids, model_cfg.kind, config, train.rating_scale[:2], copy=False,
                               steps=steps)
                record["test_rmse"] = rating_metrics(model.predict_idx(test.user_idx, test.item_idx), test.rating)["rmse"]
            if validate is not None:  # scores a model in memory: a fetch of both matrices for sharded kinds
                model = _model(ex, mu, user_ids, item_ids, model_cfg.kind, config, train.rating_scale[:2], copy=False)
                model.user_counts_, model.item_counts_ = (counts[s].astype(np.int64) if s in counts else None
                                                          for s in ("user", "item"))
                record.update(validate(model))
            record["seconds"] = record["user_seconds"] + record["item_seconds"]
            history.append(record)
            # one structured line per iteration: handlers may read ``record`` (cli writes it as JSON)
            log.info("iteration %d: %s%s, %.2f s + %.2f s", record["iteration"], steps.summary(record),
                     f", test RMSE {record['test_rmse']:.4f}" if "test_rmse" in record else "",
                     record["user_seconds"], record["item_seconds"], extra={"record": record})
            for callback in callbacks:
                callback(record)
            every = train_cfg.checkpoint_every
            if every and train_cfg.out and (iteration + 1) % every == 0:
                arrays = steps.checkpoint_arrays() if hasattr(steps, "checkpoint_arrays") else {}  # a sampler's chain
                state = {"history": history, "fingerprint": fingerprint(train, model_cfg)}
                if sharded:  # each block writes its rows, the driver the state file last
                    path = begin_checkpoint(train_cfg.out, iteration + 1)
                    parts = {name: digest for side in ("user", "item")
                             for name, digest in ex.map_blocks(side, write_rows_part, None, side, (path, side))}
                    finish_checkpoint(train_cfg.out, iteration + 1, parts, state)
                else:
                    save_checkpoint(train_cfg.out, iteration + 1, {**{s: ex.matrix(s) for s in ("user", "item")},
                                                                   **arrays}, state)
            if _converged(history, model_cfg.tol):
                log.info("stopping: objective improved by less than %g", model_cfg.tol)
                break
        config.update(getattr(steps, "model_extras", dict)())  # what a kind learns beside the matrices
        # the blocks already counted each row's ratings; read the data again only for a side not loaded (bpr)
        row_counts = ((counts["user"], counts["item"]) if set(counts) >= {"user", "item"}
                      else train.rating_counts())
        scale = train.rating_scale[:2]
        if sharded and not in_memory:  # (finish_model widens the counts to int64 one side at a time)
            final = block_metrics(ex, train, train_cfg.test, mu, model_cfg.kind, config, scale,
                                   n_blocks["user"]) if final_metrics and not ranking else {}
            saving = time.perf_counter()
            if save_to:
                _save_from_blocks(ex, save_to, model_cfg.kind, mu, rank, user_ids, item_ids, config, row_counts,
                                  scale)
            return TrainResult(None, history, ex.describe(), setup, final,
                               time.perf_counter() - saving if save_to else 0.0)
        model = _model(ex, mu, user_ids, item_ids, model_cfg.kind, config, scale, steps=steps)
        model.user_counts_, model.item_counts_ = (np.asarray(c, np.int64) for c in row_counts)
        engine = ex.describe()
    return _kept(model, history, engine, setup, train, train_cfg.test, save_to, final_metrics and not ranking)


def _check_block_writable(save_to: str, train_cfg: TrainConfig, engine: str) -> None:
    """Stop before any work when a sharded model would be saved or checkpointed to memory:// by workers in other
    processes: each would write its blocks into a memory:// of its own, and the driver's model would lack them."""
    checkpointed = train_cfg.checkpoint_every or train_cfg.resume  # only then do the blocks write to train.out
    for url in dict.fromkeys((save_to, train_cfg.out if checkpointed else "")):
        if str(url).startswith("memory://"):
            raise DataError(f"{url}: the {engine} engine's workers write the model block by block "
                            "where the blocks live, and a memory:// URL is one process's alone; save it to a path or "
                            "object store, or use --engine inprocess")


def _kept(model: ALSModel, history: list[dict[str, Any]], engine: str, setup: float, train: Dataset, test_url: str,
          save_to: str, final_metrics: bool) -> TrainResult:
    """The result of a model trained into the driver's memory: scored and saved as ``fit`` was asked."""
    final = model_metrics(model, train, test_url) if final_metrics else {}
    saving = time.perf_counter()
    if save_to:
        save_model(model, save_to)
    return TrainResult(model, history, engine, setup, final, time.perf_counter() - saving if save_to else 0.0)


def _save_from_blocks(ex: Any, url: str, kind: str, mu: float, rank: int, user_ids: np.ndarray,
                      item_ids: np.ndarray, config: dict, counts: tuple[np.ndarray, np.ndarray],
                      scale: tuple[float, float]) -> None:
    """Save a sharded model: each block writes its rows of both matrices where it lives, the driver the id
    maps, counts and model.json (last)."""
    begin_model(url)
    parts = {name: digest for side in ("user", "item")
             for name, digest in ex.map_blocks(side, write_rows_part, None, side, (url, f"{side}_matrix"))}
    finish_model(url, kind, mu, rank, user_ids, item_ids, config, dict(zip(("user", "item"), counts)), scale, parts)


def _matrix(ex: Any, side: str, copy: bool = False) -> np.ndarray:
    """A factor matrix in the driver: itself (or a copy) for the driver-held kinds, a (counted) fetch, which is
    a copy already, for the sharded."""
    try:
        matrix = ex.matrix(side)
    except KeyError:
        return ex.fetch(side)
    return matrix.copy() if copy else matrix


def _initial_state(ex: Any, train: Dataset, train_cfg: TrainConfig, model_cfg: ModelConfig,
                   rank: int, steps: Any, sharded: bool = False) -> tuple[list[dict[str, Any]], int]:
    if train_cfg.resume:
        if not train_cfg.out:
            raise CheckpointError("train.resume needs train.out, where the checkpoints are")
        # a sharded kind's blocks read their own rows of it (on the workers); the others load it here
        found = (checkpoint_state(train_cfg.out) if sharded else load_latest_checkpoint(train_cfg.out))
        if found is not None:
            iteration, matrices, state = found
            if state.get("fingerprint") != fingerprint(train, model_cfg):
                raise CheckpointError(f"{train_cfg.out}: the checkpoint was made with other data or model settings; "
                                      "train into a new --out or drop --resume")
            for side in ("user", "item"):
                if sharded:  # each block reads its own rows of the checkpoint, where it lives
                    ex.new_sharded(side, side, rank + 1, checkpoint_rows, (matrices, side))
                else:
                    ex.matrix(side)[...] = matrices[side]
            if hasattr(steps, "restore"):  # a sampler continues its chain: kept samples, noise precision
                steps.restore(matrices, state["history"])
            log.info("resuming after iteration %d", iteration)
            return list(state["history"]), iteration
        log.info("no checkpoint in %s: starting from the beginning", train_cfg.out)
    for number, side in enumerate(("user", "item")):
        if sharded:
            ex.new_sharded(side, side, rank + 1, init_rows, (model_cfg.seed, number, rank))
        else:
            ex.matrix(side)[...] = init_matrix(model_cfg.seed, number, ex.matrix(side).shape[0], rank)
    return [], 0


def _converged(history: list[dict[str, Any]], tol: float) -> bool:
    if tol <= 0 or len(history) < 2 or "objective" not in history[-1]:  # bpr has no objective to watch
        return False
    before, now = history[-2]["objective"], history[-1]["objective"]
    return (before - now) <= tol * abs(before)


def _model(ex: Any, mu: float, user_ids: np.ndarray, item_ids: np.ndarray, kind: str, config: dict,
           scale: tuple[float, float], copy: bool = True, steps: Any = None) -> ALSModel:
    """The model of the executor's current matrices: views for scoring inside the loop, copies to keep.
    A sampler's model is its posterior average over the samples kept so far (once there is one)."""
    posterior = steps.posterior() if hasattr(steps, "posterior") else None
    if posterior is not None:
        user, item, entry = posterior
        return ALSModel(kind, mu, user, item, user_ids, item_ids, {**config, "posterior": entry}, rating_scale_=scale)
    user, item = _matrix(ex, "user", copy), _matrix(ex, "item", copy)
    return ALSModel(kind, mu, user, item, user_ids, item_ids, config,
                    rating_scale_=scale)
