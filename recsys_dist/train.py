"""The training driver: build blocks, initialise, loop half-steps through an executor.

One iteration is two calls of the same half-step with the roles swapped:

    user half-step: src = item matrix (fixed, broadcast)  -> dst = user matrix
    item half-step: src = user matrix (fixed, broadcast)  -> dst = item matrix

Each half-step minimises the objective exactly over the dst side, so the objective

    sum (r - mu - b_u - b_i - p_u.q_i)^2 + sum_rows s_r (reg |x_r|^2 + bias_reg b_r^2)

never increases. The driver reduces the per-block squared errors, adds the
regularization terms, records figures, checkpoints and decides when to stop; it never
knows which executor runs the blocks.
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
from recsys_dist.als import init_matrix, regularization, solve_block
from recsys_dist.blocking import block_bounds
from recsys_dist.checkpoint import load_latest_checkpoint, save_checkpoint
from recsys_dist.config import EngineConfig, ModelConfig, TrainConfig
from recsys_dist.data.blocks import load_item_block, load_user_block
from recsys_dist.data.dataset import Dataset, Ratings
from recsys_dist.errors import CheckpointError, DataError, FitError
from recsys_dist.evaluate import rating_metrics
from recsys_dist.executors import make_executor
from recsys_dist.model import ALSModel

log = logging.getLogger(__name__)
Callback = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    model: ALSModel
    history: list[dict[str, Any]] = field(default_factory=list)
    engine: str = ""
    setup_seconds: float = 0.0


def default_blocks(n_rows: int, nnz: int, workers: int) -> int:
    """Enough blocks to keep every worker busy (2 each) and blocks near 1M ratings."""
    return max(1, min(n_rows, max(2 * workers, -(-nnz // 1_000_000))))


WORKER_BASELINE = 150 << 20  # a Dask worker process before any data: Python, NumPy, Numba, distributed


def worker_memory_needed(n_ratings: int, n_users: int, n_items: int, rank: int, n_workers: int,
                         blocks: dict[str, int], threads: int) -> dict[str, int]:
    """Bytes a worker needs, part by part (an estimate, on the high side):

    - its share of both sides' blocks (int32 column + float32 value per rating per side), with a
      margin because blocks do not divide evenly among workers;
    - the broadcast src matrices of both half-steps, float32 [n, k+1] (a copy may outlive its step);
    - one task's output and warm-start rows plus its kernel scratch: the part more blocks shrink.
    """
    width = (rank + 1) * 4
    rows_per_block = max(n_users / max(blocks["user"], 1), n_items / max(blocks["item"], 1))
    parts = {
        "blocks": int(1.25 * 16 * n_ratings / max(n_workers, 1)),
        "broadcast": (n_users + n_items) * width,
        "per_task": int(rows_per_block * width * 3 + threads * 12 * (rank + 1) ** 2),
        "process": WORKER_BASELINE,
    }
    parts["total"] = sum(parts.values())
    return parts


def check_worker_memory(ex: Any, train: Dataset, rank: int, blocks: dict[str, int]) -> None:
    """Stop before loading anything when the blocks and broadcast matrices cannot fit the workers'
    memory limit (Dask pauses a worker at 80 % of it and restarts it at 95 %)."""
    limit = ex.memory_limit()
    if not limit:
        return
    need = worker_memory_needed(train.n_ratings, train.n_users, train.n_items, rank, ex.n_workers, blocks,
                                max(ex.task_threads, 1))
    if need["total"] > 0.8 * limit:
        gib = 1 << 30
        raise FitError(f"training needs about {need['total'] / gib:.2f} GiB per worker ({need['blocks'] / gib:.2f} of "
                       f"ratings blocks, {need['broadcast'] / gib:.2f} of broadcast factor matrices, "
                       f"{need['per_task'] / gib:.2f} per running task, {need['process'] / gib:.2f} for the process) "
                       f"but the smallest worker's memory limit is {limit / gib:.2f} GiB, and Dask pauses a worker at "
                       f"80 % of it. Add workers, give them more memory (dask worker --memory-limit), or raise "
                       f"engine.user_blocks / engine.item_blocks (now {blocks['user']} / {blocks['item']}) to "
                       "shrink the per-task part")


def fingerprint(train: Dataset, model_cfg: ModelConfig) -> str:
    """What a checkpoint must match to be resumed: the training data and the model settings."""
    settings = {k: v for k, v in dataclasses.asdict(model_cfg).items() if k not in ("n_iter", "tol")}
    text = json.dumps([train.manifest["files"], settings], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fit(train_cfg: TrainConfig, model_cfg: ModelConfig, engine_cfg: EngineConfig,
        callbacks: tuple[Callback, ...] = ()) -> TrainResult:
    """Train on ``train_cfg.train``; score ``train_cfg.test`` each iteration when given."""
    started = time.perf_counter()
    train = Dataset.open(train_cfg.train)
    if train.n_ratings == 0:
        raise DataError(f"{train.url}: no training ratings")
    test = Dataset.open(train_cfg.test).read_all() if train_cfg.test else None
    mu = float(train.manifest["rating_stats"]["mean"])
    user_ids, item_ids = train.user_index().ids, train.item_index().ids
    config = {"model": dataclasses.asdict(model_cfg), "train_data": str(train_cfg.train)}
    if model_cfg.kind == "mean":
        model = ALSModel("mean", mu, np.zeros((train.n_users, 1), np.float32), np.zeros((train.n_items, 1), np.float32),
                         user_ids, item_ids, config)
        return TrainResult(model, [], "none", time.perf_counter() - started)

    rank = model_cfg.rank if model_cfg.kind == "als" else 0
    weighted = model_cfg.kind == "als" and model_cfg.reg_mode == "weighted"
    params = (mu, model_cfg.reg, model_cfg.bias_reg, weighted)
    with make_executor(engine_cfg) as ex:
        log.info("engine: %s", ex.describe())
        counts = {}
        n_blocks = {side: configured or default_blocks(n, train.n_ratings, ex.n_workers)
                    for side, n, configured in (("user", train.n_users, engine_cfg.user_blocks),
                                                ("item", train.n_items, engine_cfg.item_blocks))}
        check_worker_memory(ex, train, rank, n_blocks)
        with progress.bar("building blocks", sum(n_blocks.values())):
            for side, n, loader in (("user", train.n_users, load_user_block), ("item", train.n_items, load_item_block)):
                bounds = block_bounds(n, n_blocks[side])
                args = [(train.url, b, lo, hi) for b, (lo, hi) in enumerate(bounds)]
                counts[side] = np.concatenate(ex.load_blocks(side, loader, args))
                ex.new_matrix(side, n, rank + 1)
        history, start = _initial_state(ex, train, train_cfg, model_cfg, rank)
        setup = time.perf_counter() - started
        log.info("blocks built and factors initialised in %.2f s", setup)
        solver = model_cfg.effective_solver()
        cg_steps = model_cfg.cg_steps if solver == "cg" else 0
        log.info("solver: %s", f"{cg_steps} warm-started conjugate-gradient steps" if cg_steps else "Cholesky")
        step = (*params, ex.task_threads, cg_steps)
        for iteration in range(start, model_cfg.n_iter):
            record = {"iteration": iteration + 1, "solver": solver, "engine": ex.name, "workers": ex.n_workers}
            with progress.bar(f"iteration {iteration + 1}/{model_cfg.n_iter}", sum(n_blocks.values())):
                for dst, src in (("user", "item"), ("item", "user")):
                    t0 = time.perf_counter()
                    stats = np.sum(ex.solve(dst, solve_block, src, dst, step, with_prev=cg_steps > 0), axis=0)
                    record[f"{dst}_seconds"] = time.perf_counter() - t0
                    record[f"{dst}_task_seconds"] = float(stats[2])  # kernel time summed over blocks
                    if not np.isfinite(ex.matrix(dst)).all():
                        raise FitError(f"iteration {iteration + 1}, {dst} half-step: non-finite factors; "
                                       "increase model.reg or check the ratings")
                    reg = sum(regularization(ex.matrix(s), counts[s], model_cfg.reg, model_cfg.bias_reg, weighted)
                              for s in ("user", "item"))
                    record[f"objective_after_{dst}"] = float(stats[0] + reg)
            record["objective"] = record["objective_after_item"]
            record["train_rmse"] = float(np.sqrt(stats[0] / stats[1]))
            if test is not None:
                model = _model(ex, mu, user_ids, item_ids, model_cfg.kind, config, copy=False)
                record["test_rmse"] = rating_metrics(model.predict_idx(test.user_idx, test.item_idx), test.rating)["rmse"]
            record["seconds"] = record["user_seconds"] + record["item_seconds"]
            history.append(record)
            # one structured line per iteration: handlers may read ``record`` (cli writes it as JSON)
            log.info("iteration %d: objective %.6g, train RMSE %.4f%s, %.2f s + %.2f s", record["iteration"],
                     record["objective"], record["train_rmse"],
                     f", test RMSE {record['test_rmse']:.4f}" if "test_rmse" in record else "",
                     record["user_seconds"], record["item_seconds"], extra={"record": record})
            for callback in callbacks:
                callback(record)
            every = train_cfg.checkpoint_every
            if every and train_cfg.out and (iteration + 1) % every == 0:
                save_checkpoint(train_cfg.out, iteration + 1, {s: ex.matrix(s) for s in ("user", "item")},
                                {"history": history, "fingerprint": fingerprint(train, model_cfg)})
            if _converged(history, model_cfg.tol):
                log.info("stopping: objective improved by less than %g", model_cfg.tol)
                break
        model = _model(ex, mu, user_ids, item_ids, model_cfg.kind, config)
        return TrainResult(model, history, ex.describe(), setup)


def _initial_state(ex: Any, train: Dataset, train_cfg: TrainConfig, model_cfg: ModelConfig,
                   rank: int) -> tuple[list[dict[str, Any]], int]:
    if train_cfg.resume:
        if not train_cfg.out:
            raise CheckpointError("train.resume needs train.out, where the checkpoints are")
        found = load_latest_checkpoint(train_cfg.out)
        if found is not None:
            iteration, matrices, state = found
            if state.get("fingerprint") != fingerprint(train, model_cfg):
                raise CheckpointError(f"{train_cfg.out}: the checkpoint was made with other data or model settings; "
                                      "train into a new --out or drop --resume")
            for side in ("user", "item"):
                ex.matrix(side)[...] = matrices[side]
            log.info("resuming after iteration %d", iteration)
            return list(state["history"]), iteration
        log.info("no checkpoint in %s: starting from the beginning", train_cfg.out)
    ex.matrix("user")[...] = init_matrix(model_cfg.seed, 0, ex.matrix("user").shape[0], rank)
    ex.matrix("item")[...] = init_matrix(model_cfg.seed, 1, ex.matrix("item").shape[0], rank)
    return [], 0


def _converged(history: list[dict[str, Any]], tol: float) -> bool:
    if tol <= 0 or len(history) < 2:
        return False
    before, now = history[-2]["objective"], history[-1]["objective"]
    return (before - now) <= tol * abs(before)


def _model(ex: Any, mu: float, user_ids: np.ndarray, item_ids: np.ndarray, kind: str, config: dict,
           copy: bool = True) -> ALSModel:
    """The model of the executor's current matrices: views for scoring inside the loop, copies to keep."""
    user, item = ex.matrix("user"), ex.matrix("item")
    return ALSModel(kind, mu, user.copy() if copy else user, item.copy() if copy else item, user_ids, item_ids, config)


def evaluate_on(model: ALSModel, ratings: Ratings) -> dict[str, float | int]:
    """RMSE and MAE of ``model`` on ratings indexed like its training data."""
    return rating_metrics(model.predict_idx(ratings.user_idx, ratings.item_idx), ratings.rating)
