"""Batch jobs over a saved model: evaluate (rating and ranking metrics); score, top-K to Parquet, is scoring.py.

The ranking metrics are a map over user blocks on the configured engine: each task holds its block's
training ratings (the items not to recommend again), reads its users' rows from the saved model where it
runs, takes the ranking item matrix (made on the workers, ``model_blocks``), ranks every item for its
users and returns only sums (hits, gains, AUC), which the driver reduces. No users x items matrix and no
top-K list travels. The rating metrics are block sums too (``eval_ratings``), but for the kinds whose
predictions need more than two rows (``DRIVER_PREDICTED``), which load the model into the driver.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from recsys_dist import progress
from recsys_dist.checkpoint import SavedModel, load_model, write_json
from recsys_dist.config import RANKING_KINDS, EngineConfig, EvaluateConfig, ScoreConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.ids import lookup
from recsys_dist.errors import DataError
from recsys_dist.eval_ratings import block_rating_metrics
from recsys_dist.evaluate import calibration, finish_ranking, rating_metrics
from recsys_dist.executors import make_executor
from recsys_dist.model import ALSModel
from recsys_dist.model_blocks import load_model_blocks
from recsys_dist.recommend import rank_block

log = logging.getLogger(__name__)

# kinds whose predictions need more than a user and an item row: bpmf its posterior samples, genre_als the
# genre rows of unrated items (and users); both train in the driver too, so their evaluation loads the model
DRIVER_PREDICTED = ("bpmf", "genre_als")


def training_data(model: ALSModel, model_url: str, train_url: str) -> Dataset:
    """The model's training data (``train_url``, else the one the model records), checked to match its id maps."""
    return training_data_of(model.config, (len(model.user_ids_), len(model.item_ids_)), model_url, train_url)


def training_data_of(config: dict[str, Any], shape: tuple[int, int], model_url: str, train_url: str) -> Dataset:
    """``training_data`` from a model's config and (users, items) alone, for jobs that never load its matrices."""
    url = train_url or config.get("train_data", "")
    if not url:
        raise DataError(f"{model_url}: the model does not record its training data; pass --train")
    train = Dataset.open(url)
    recorded = config.get("train_fingerprint")
    if recorded and recorded != train.fingerprint():
        raise DataError(f"{url}: not the data {model_url} was trained on ({config.get('train_data')}, "
                        f"{recorded['ratings']} ratings; this has {train.n_ratings} and other files), so its "
                        "items would be excluded wrongly; pass that training data as --train")
    if (train.n_users, train.n_items) != tuple(shape):
        raise DataError(f"{url}: not the training data of {model_url} ({train.n_users} users and {train.n_items} "
                        f"items, the model has {shape[0]} and {shape[1]})")
    return train


def run_evaluation(cfg: EvaluateConfig, engine: EngineConfig = EngineConfig()) -> dict[str, Any]:
    """Rating and ranking metrics of a saved model on a dataset, matched through original ids: block sums
    reduced here, the model read by the block tasks where they run (``eval_ratings``, ``_ranking``); only the
    rating metrics of the ``DRIVER_PREDICTED`` kinds load the model's matrices into this process."""
    if not cfg.model or not cfg.data:
        raise DataError("evaluate needs --model DIR and --data DATASET")
    saved = SavedModel(cfg.model)
    model_ids = {side: saved.ids(side) for side in ("user", "item")}
    raw_users, raw_items, users, items, rating = [], [], [], [], []
    for url in cfg.data:  # each part through its own id maps: parts need not share them
        ds = Dataset.open(url)
        ratings = ds.read_all()
        raw_users.append(ds.user_index().to_raw(ratings.user_idx))
        users.append(lookup(model_ids["user"], raw_users[-1]))
        raw_items.append(ds.item_index().to_raw(ratings.item_idx))
        items.append(lookup(model_ids["item"], raw_items[-1]))
        rating.append(ratings.rating)
    users, items, rating = np.concatenate(users), np.concatenate(items), np.concatenate(rating)
    # cold = no training rating, not "not in the id map": split parts keep the parent's maps, so a
    # test-only user has an index (and a zero row) in the model; -1 marks both kinds of unknown
    # genre_als predicts an unrated item from its own (genre) row, and an unrated user from theirs (demographics)
    mapped_users, mapped_items = users.copy(), items.copy()
    for idx, counts in ((users, saved.counts("user")), (items, saved.counts("item"))):
        if counts is not None:
            idx[(idx >= 0) & (counts[np.maximum(idx, 0)] == 0)] = -1
    cold = (users < 0) | (items < 0)
    scored = ~cold if cfg.cold == "exclude" else np.ones(len(rating), bool)
    ranked = _relevant(users, items, rating, cfg)
    result: dict[str, Any] = {"kind": saved.kind}
    rating_kind, in_process = saved.kind not in RANKING_KINDS, engine.name == "inprocess"
    if rating_kind and saved.kind in DRIVER_PREDICTED:
        result.update(_driver_rating_metrics(cfg.model, users, items, mapped_users, mapped_items, rating, scored))
    blocked = rating_kind and saved.kind not in DRIVER_PREDICTED
    ranking: dict[str, Any] = {"relevance": cfg.relevance, "users": 0, "relevant_in_training": 0, "at": {},
                               "mrr": None, "auc": None,
                               "note": "every relevant rating is of a user or item without training ratings (cold)"}
    if blocked or len(ranked[2]):
        with make_executor(engine) as ex:
            if blocked:  # a ranking model's scores are not ratings: no RMSE for them
                result.update(block_rating_metrics(ex, saved, users[scored], items[scored], rating[scored],
                                                   ScoreConfig().block_users, in_process))
            if len(ranked[2]):
                ranking = _ranking(ex, saved, *ranked, cfg, in_process)
    raw_users, raw_items = np.concatenate(raw_users), np.concatenate(raw_items)
    result.update(model=str(cfg.model), data=" ".join(map(str, cfg.data)), cold_policy=cfg.cold,
                  cold_ratings=int(cold.sum()), unknown_users=int(len(pd.unique(raw_users[users < 0]))),
                  unknown_items=int(len(pd.unique(raw_items[items < 0]))))
    result["ranking"] = ranking
    if cfg.out:
        write_json(cfg.out, "metrics.json", result)
    return result


def _driver_rating_metrics(url: str, users: np.ndarray, items: np.ndarray, mapped_users: np.ndarray,
                           mapped_items: np.ndarray, rating: np.ndarray, scored: np.ndarray) -> dict[str, Any]:
    """Rating metrics of a ``DRIVER_PREDICTED`` kind, its model loaded here (it is trained here too)."""
    model = load_model(url)
    predicted_items = mapped_items if model.predicts_unrated_items else items
    predicted_users = mapped_users if model.predicts_unrated_users else users
    predicted = model.predict_idx(predicted_users[scored], predicted_items[scored])
    found: dict[str, Any] = rating_metrics(predicted, rating[scored])
    if model.posterior is not None:  # bpmf: how often the truth is inside the predictive intervals
        found["calibration"] = calibration(predicted, model.predict_std_idx(users[scored], items[scored]),
                                           rating[scored])
    return found


def _relevant(users: np.ndarray, items: np.ndarray, rating: np.ndarray,
              cfg: EvaluateConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The relevant test ratings of known users and items, by user then item: (users, items, the users)."""
    if not (rating >= cfg.relevance).any():
        raise DataError(f"{' '.join(cfg.data)}: no rating is >= the relevance threshold {cfg.relevance:g}, so no ranking "
                        f"metric can be computed; lower --relevance (ratings here are at most "
                        f"{float(rating.max()) if len(rating) else float('nan'):g})")
    relevant = (rating >= cfg.relevance) & (users >= 0) & (items >= 0)
    order = np.lexsort((items[relevant], users[relevant]))
    rel_users, rel_items = users[relevant][order], items[relevant][order]
    return rel_users, rel_items, np.unique(rel_users)


def _ranking(ex: Any, saved: SavedModel, rel_users: np.ndarray, rel_items: np.ndarray, evaluated: np.ndarray,
             cfg: EvaluateConfig, in_process: bool) -> dict[str, Any]:
    """Top-K over all items but each user's training items, scored against the relevant test items."""
    n_users, n_items = saved.n_rows["user"], saved.n_rows["item"]
    train = training_data_of(saved.config, (n_users, n_items), cfg.model, cfg.train)
    wanted = np.zeros(n_users, bool)
    wanted[evaluated] = True
    rel_indptr = np.zeros(n_users + 1, np.int64)
    np.add.at(rel_indptr, rel_users + 1, 1)
    rel_indptr = np.cumsum(rel_indptr)
    ks = sorted(set(cfg.k))
    bounds = load_model_blocks(ex, saved, train.url, ScoreConfig().block_users, in_process)
    rel_items = np.ascontiguousarray(rel_items, np.int32)
    # each block gets its users' slices only: a whole-model mask or CSR per task grew with users x blocks
    own = [(wanted[lo:hi], rel_indptr[lo:hi + 1] - rel_indptr[lo], rel_items[rel_indptr[lo]:rel_indptr[hi]])
           for lo, hi in bounds]
    with progress.bar(f"ranking {len(evaluated)} users, top {max(ks)}", len(bounds)):
        blocks = ex.map_blocks("user", rank_block, "item", "user", (saved.mu, max(ks), ks, n_items, ex.task_threads),
                               own)
    assert sum(b["users"] for b in blocks) == len(evaluated), "blocks ranked other users than asked"
    (auc, auc_n), (rr, rr_n) = (np.sum([b[m] for b in blocks], axis=0) for m in ("auc", "rr"))
    in_training = sum(b["in_training"] for b in blocks)
    if in_training:
        log.warning("%s: %d of its %d relevant ratings are of items the same user rated in %s's training data, "
                    "which the lists exclude, so they can never be hit; is this the test part of the model's own "
                    "split?", " ".join(map(str, cfg.data)), in_training, len(rel_items), cfg.model)
    return {"relevance": cfg.relevance, "users": int(len(evaluated)), "relevant_in_training": int(in_training),
            "at": finish_ranking([b["at"] for b in blocks], ks, n_items),
            "mrr": float(rr / rr_n) if rr_n else float("nan"), "auc": float(auc / auc_n) if auc_n else float("nan")}
