"""The score job: top-K for every (or every listed) user of a saved model, as Parquet written by the block tasks.

No process holds a whole factor matrix. Each user block's rows are read from the saved model where the
block lives (``checkpoint.model_rows``), and so is each block of the ranking item matrix, which the engine
brings to the user blocks' workers as it does in training (assembled there from its blocks, never through
the driver). Each user-block task ranks its users, gives its cold ones (no training rating) the cold-start
list, and writes its own part; the driver plans, writes the one part of listed users the model has never
seen, and publishes ``_SUCCESS`` when every part is written. The driver holds ids, counts and masks
(O(users + items)), never anything that grows with users x rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys_dist import progress
from recsys_dist.batch import training_data_of
from recsys_dist.blocking import InBlock
from recsys_dist.checkpoint import SavedModel
from recsys_dist.config import EngineConfig, FilterConfig, ScoreConfig
from recsys_dist.data.ids import lookup
from recsys_dist.data.item_filters import item_mask
from recsys_dist.data.recommendations import RecommendationWriter, read_ids, write_part
from recsys_dist.errors import DataError
from recsys_dist.executors import make_executor
from recsys_dist.kernels.row_threads import set_threads
from recsys_dist.model import cold_start_lists, uses_counts
from recsys_dist.model_blocks import load_model_blocks, model_ids, titles, titles_source
from recsys_dist.models.bpmf import predictive_std
from recsys_dist.recommend import block_top_k_rows


@dataclass(frozen=True)
class ScoreSpec:
    """What every user-block task of one score run is given (small: no factor rows)."""

    model_url: str
    train: tuple[str, str] | None  # model_blocks.titles_source of the training data
    target: tuple[str, str, str] | None  # RecommendationWriter.target; None: return the frame to the driver
    mu: float
    k: int
    allowed: np.ndarray | None  # mask over the items (the --filter rules), None: all
    predicts_unrated_users: bool  # genre_als with demographics: a user without ratings but with a row is warm
    cold_items: np.ndarray  # int32[k] the cold-start list (-1 past its end)
    cold_scores: np.ndarray  # float32[k]
    posterior: dict[str, Any] | None  # bpmf: each listed rating's predictive std is written too


def run_scoring(cfg: ScoreConfig, engine: EngineConfig = EngineConfig(),
                rules: FilterConfig = FilterConfig()) -> dict[str, Any]:
    """Top-K for every (or every listed) user, one Parquet part per user block, published atomically."""
    if not cfg.model or not cfg.out:
        raise DataError("score needs --model DIR and --out URL")
    saved = SavedModel(cfg.model)
    n_users, n_items = saved.n_rows["user"], saved.n_rows["item"]
    train = training_data_of(saved.config, (n_users, n_items), cfg.model, cfg.train)
    item_ids = saved.ids("item")
    allowed = item_mask(train, item_ids, rules)
    asked, unknown = None, np.empty(0, object)
    if cfg.users:
        user_ids = saved.ids("user")
        listed = read_ids(cfg.users, user_ids.dtype.kind in "iu", "user")
        idx = lookup(user_ids, listed)
        asked, unknown = np.unique(idx[idx >= 0]), pd.unique(listed[idx < 0])
        del user_ids
    multi_process = engine.name != "inprocess"  # memory:// is this process's alone: the client writes there
    writer = RecommendationWriter(cfg.out)
    try:
        with make_executor(engine) as ex:
            bounds = load_model_blocks(ex, saved, train.url, cfg.block_users, not multi_process)
            item_counts = saved.counts("item")
            item_term = None
            if not uses_counts(saved.kind, item_counts):  # cold users ranked by the item term: the last column
                item_term = np.concatenate(ex.map_blocks("item", last_column, None, "item", ()))
            cold_items, cold_scores = cold_start_lists(saved.kind, saved.mu, item_counts, item_term, cfg.k, None,
                                                       allowed, 1)
            spec = ScoreSpec(saved.url, titles_source(train.url),
                             None if str(cfg.out).startswith("memory://") and multi_process else writer.target,
                             saved.mu, cfg.k, allowed, saved.kind == "genre_als" and
                             "demographic_embedding" in saved.config, cold_items[0], cold_scores[0],
                             saved.config.get("posterior"))
            with progress.bar(f"scoring {n_users if asked is None else len(asked)} users, top {cfg.k}", len(bounds)):
                # --users: each block gets its own listed users only, not the whole list in every task
                own = [(None,)] * len(bounds) if asked is None else [
                    (asked[(asked >= lo) & (asked < hi)] - lo,) for lo, hi in bounds]
                results = ex.map_blocks("user", score_part, "item", "user", (spec, ex.task_threads), own)
        for block, result in enumerate(results):
            part = result["part"]
            if isinstance(part, pd.DataFrame):  # a memory:// output: the driver writes what the task returned
                part = write_part(writer.target, block, part)
            if part is not None:
                writer.add_parts([part])
        if len(unknown):
            writer.add_parts([write_part(writer.target, len(results),
                                         _unknown_users_part(unknown, spec, item_ids, results))])
        cold = sum(r["cold"] for r in results) + len(unknown)
        return writer.publish({"model": str(cfg.model), "k": cfg.k,
                               "users": int(sum(r["users"] for r in results) + len(unknown)),
                               "cold_users": int(cold), "unknown_users": int(len(unknown))})
    except BaseException:
        writer.abort()
        raise


def last_column(_block: InBlock, _src: None, own_rows: np.ndarray) -> np.ndarray:
    """Map task: the block's last column (the bias, or a kind's item term)."""
    return np.array(own_rows[:, -1], np.float32)


def score_part(block: InBlock, item_matrix: np.ndarray, user_rows: np.ndarray, listed: np.ndarray | None,
               spec: ScoreSpec, threads: int) -> dict[str, Any]:
    """Map task: one user block's recommendations, written as its part where it runs: for the block's rows
    ``listed`` (local indices, the --users in the block), all when None. Warm users get their top-k without
    their training items; cold ones (no training rating, and no row from demographics) the cold-start list.
    Returns the part's record (or, for a driver-only output, the frame), how many users it lists and how
    many of them are cold."""
    set_threads(threads)
    asked = np.ones(block.hi - block.lo, bool)
    if listed is not None:
        asked[:] = False
        asked[listed] = True
    cold = np.diff(block.indptr) == 0
    if spec.predicts_unrated_users:
        cold &= ~user_rows.any(axis=1)
    warm_users, items, scores = block_top_k_rows(block, item_matrix, user_rows, spec.mu, spec.k, spec.allowed,
                                                 asked & ~cold)
    cold_users = np.flatnonzero(asked & cold)
    users = np.concatenate([warm_users, cold_users])
    items = np.concatenate([items, np.tile(spec.cold_items, (len(cold_users), 1))])
    scores = np.concatenate([scores, np.tile(spec.cold_scores, (len(cold_users), 1))])
    order = np.argsort(users, kind="stable")
    users, items, scores = users[order], items[order], scores[order]
    filled = items >= 0
    rows = np.nonzero(filled)
    user_ids, item_ids = model_ids(spec.model_url, "user"), model_ids(spec.model_url, "item")
    frame = pd.DataFrame({
        "user_id": user_ids[block.lo + users[rows[0]]],
        "rank": (rows[1] + 1).astype(np.int16),
        "item_id": item_ids[items[filled]],
        "score": scores[filled],
        "title": titles(spec.train, len(item_ids))[items[filled]],
    })
    result: dict[str, Any] = {"users": int(len(users)), "cold": int(len(cold_users))}
    if spec.posterior is not None:  # bpmf: the predictive standard deviation of each listed rating
        frame["std"] = predictive_std(user_rows, item_matrix, spec.mu, spec.posterior, users[rows[0]], items[filled])
        known = spec.cold_items[spec.cold_items >= 0]
        result["cold_std"] = predictive_std(user_rows, item_matrix, spec.mu, spec.posterior,
                                            np.full(len(known), -1), known)
    if not len(users):  # nothing asked of this block: no part
        result["part"] = None
    else:
        result["part"] = frame if spec.target is None else write_part(spec.target, block.block_id, frame)
    return result


def _unknown_users_part(unknown: np.ndarray, spec: ScoreSpec, item_ids: np.ndarray,
                        results: list[dict[str, Any]]) -> pd.DataFrame:
    """The part of listed users the model has never seen: the cold-start list for each, written by the driver."""
    known = spec.cold_items[spec.cold_items >= 0]
    names = titles(spec.train, len(item_ids))
    frame = pd.DataFrame({
        "user_id": np.repeat(np.asarray(unknown), len(known)),
        "rank": np.tile(np.arange(1, len(known) + 1, dtype=np.int16), len(unknown)),
        "item_id": np.tile(item_ids[known], len(unknown)),
        "score": np.tile(spec.cold_scores[:len(known)], len(unknown)),
        "title": np.tile(names[known], len(unknown)),
    })
    if spec.posterior is not None:  # a user the model has never seen: each item's spread alone (any block says it)
        frame["std"] = np.tile(results[0]["cold_std"], len(unknown))
    return frame
