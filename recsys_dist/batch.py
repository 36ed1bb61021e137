"""Batch jobs over a saved model: evaluate (rating and ranking metrics) and score (top-K to Parquet)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recsys_dist.checkpoint import load_model, write_json
from recsys_dist.config import EvaluateConfig, ScoreConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.recommendations import RecommendationWriter, read_user_ids
from recsys_dist.errors import DataError
from recsys_dist.evaluate import ranking_metrics, rating_metrics
from recsys_dist.model import ALSModel
from recsys_dist.recommend import top_k


def run_evaluation(cfg: EvaluateConfig) -> dict[str, Any]:
    """Rating and ranking metrics of a saved model on a dataset, matched through original ids."""
    if not cfg.model or not cfg.data:
        raise DataError("evaluate needs --model DIR and --data DATASET")
    model = load_model(cfg.model)
    ds = Dataset.open(cfg.data)
    ratings = ds.read_all()
    users = model.user_index(ds.user_index().to_raw(ratings.user_idx))
    items = model.item_index(ds.item_index().to_raw(ratings.item_idx))
    cold = (users < 0) | (items < 0)
    scored = ~cold if cfg.cold == "exclude" else np.ones(len(ratings), bool)
    result: dict[str, Any] = rating_metrics(model.predict_idx(users[scored], items[scored]), ratings.rating[scored])
    result.update(model=str(cfg.model), data=str(cfg.data), cold_policy=cfg.cold, cold_ratings=int(cold.sum()),
                  unknown_users=int(len(np.unique(ratings.user_idx[users < 0]))),
                  unknown_items=int(len(np.unique(ratings.item_idx[items < 0]))))
    result["ranking"] = _ranking(model, users, items, ratings.rating, cfg)
    if cfg.out:
        write_json(cfg.out, "metrics.json", result)
    return result


def _ranking(model: ALSModel, users: np.ndarray, items: np.ndarray, rating: np.ndarray,
             cfg: EvaluateConfig) -> dict[str, Any]:
    """Top-K over all items but each user's training items, scored against the relevant test items."""
    relevant = (rating >= cfg.relevance) & (users >= 0) & (items >= 0)
    order = np.lexsort((items[relevant], users[relevant]))
    rel_users, rel_items = users[relevant][order], items[relevant][order]
    evaluated, starts = np.unique(rel_users, return_index=True)
    relevant_lists = np.split(rel_items, starts[1:]) if len(evaluated) else []
    train_url = cfg.train or model.config.get("train_data", "")
    if not train_url:
        raise DataError(f"{cfg.model}: the model does not record its training data; pass --train to exclude it")
    train = Dataset.open(train_url)
    seen = train.read_all()
    if len(train.user_index()) != len(model.user_ids_):
        raise DataError(f"{train_url}: not the training data of {cfg.model} (different user id map)")
    by_user = np.argsort(seen.user_idx, kind="stable")
    bounds = np.searchsorted(seen.user_idx[by_user], np.stack([evaluated, evaluated + 1]))
    exclude = [seen.item_idx[by_user[a:b]] for a, b in zip(*bounds)]
    recommended, _ = top_k(model.user_matrix_, model.item_matrix_, model.mu_, evaluated, max(cfg.k), exclude)
    metrics = ranking_metrics(recommended, relevant_lists, sorted(set(cfg.k)), len(model.item_ids_))
    return {"relevance": cfg.relevance, "users": int(len(evaluated)), "at": metrics}


def run_scoring(cfg: ScoreConfig) -> dict[str, Any]:
    """Top-K for every (or every listed) user, written block by block and published atomically."""
    if not cfg.model or not cfg.out:
        raise DataError("score needs --model DIR and --out URL")
    model = load_model(cfg.model)
    train_url = cfg.train or model.config.get("train_data", "")
    if not train_url:
        raise DataError(f"{cfg.model}: the model does not record its training data; pass --train")
    train = Dataset.open(train_url)
    if len(train.user_index()) != len(model.user_ids_):
        raise DataError(f"{train_url}: not the training data of {cfg.model} (different user id map)")
    user_ids = read_user_ids(cfg.users, integer=model.user_ids_.dtype.kind in "iu") if cfg.users else model.user_ids_
    user_idx = model.user_index(user_ids)
    seen = train.read_all()
    by_user = np.argsort(seen.user_idx, kind="stable")
    titles = train.read_items()["title"].to_numpy(dtype=object)
    writer = RecommendationWriter(cfg.out)
    try:
        for block, lo in enumerate(range(0, len(user_ids), cfg.block_users)):
            idx = user_idx[lo:lo + cfg.block_users]
            bounds = np.searchsorted(seen.user_idx[by_user], np.stack([idx, idx + 1]))
            exclude = [seen.item_idx[by_user[a:b]] if u >= 0 else np.empty(0, np.int32)
                       for u, a, b in zip(idx, *bounds)]
            items, scores = top_k(model.user_matrix_, model.item_matrix_, model.mu_, idx, cfg.k, exclude)
            filled = items >= 0
            rows = np.nonzero(filled)
            writer.write_block(block, pd.DataFrame({
                "user_id": np.asarray(user_ids[lo:lo + cfg.block_users])[rows[0]],
                "rank": (rows[1] + 1).astype(np.int16),
                "item_id": model.item_ids_[items[filled]],
                "score": scores[filled],
                "title": titles[items[filled]],
            }))
        return writer.publish({"model": str(cfg.model), "k": cfg.k, "users": int(len(user_ids)),
                               "unknown_users": int(np.sum(user_idx < 0))})
    except BaseException:
        writer.abort()
        raise
