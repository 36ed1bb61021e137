"""Jobs about individual users: recommend for one user (with reasons), fold in new users' ratings."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from recsys_dist.batch import training_data
from recsys_dist.checkpoint import load_model, save_model
from recsys_dist.config import FilterConfig, FoldInConfig, IngestConfig, RecommendConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.extended import write_extended
from recsys_dist.data.ingest import read_raw_ratings
from recsys_dist.data.item_filters import item_mask
from recsys_dist.errors import DataError
from recsys_dist.explain import EXPLAINED_KINDS, contributions, liked_genre, strongest
from recsys_dist.model import ALSModel
from recsys_dist.recommend import top_k

log = logging.getLogger(__name__)


def run_fold_in(cfg: FoldInConfig, fmt: IngestConfig = IngestConfig()) -> dict[str, Any]:
    """Solve the users in ``cfg.ratings`` against the model's fixed item factors; write the updated model."""
    if not cfg.model or not cfg.ratings or not cfg.out:
        raise DataError("fold-in needs --model DIR, --ratings FILE and --out DIR")
    if cfg.out.rstrip("/") == cfg.model.rstrip("/"):
        raise DataError(f"fold-in: --out {cfg.out} is the input model; write the updated model elsewhere")
    model = load_model(cfg.model)
    raw = _read_ratings(cfg.ratings, fmt)
    started = time.perf_counter()
    updated = model.fold_in(raw.user, raw.item, raw.rating)
    seconds = time.perf_counter() - started
    save_with_training_data(updated, cfg.out)
    users = np.unique(raw.user)
    return {"users": int(len(users)), "new_users": int(np.sum(model.user_index(users) < 0)),
            "ratings": int(len(raw)), "unknown_item_ratings": int(np.sum(model.item_index(raw.item) < 0)),
            "seconds": seconds, "out": cfg.out}


def save_with_training_data(model: ALSModel, url: str, extra: dict[str, Any] | None = None) -> None:
    """Save ``model``; one with folded-in users gets its training data plus their ratings written beside
    it (``URL/training_data``) and recorded as its training data, so score, evaluate, recommend and a
    later fold-in use it like any other model."""
    if model.folded_ is not None and model.config.get("train_data"):
        base = Dataset.open(model.config["train_data"])
        data_url = write_extended(base, model.user_ids_, model.folded_, f"{str(url).rstrip('/')}/training_data")
        model = dataclasses.replace(model, folded_=None, config={
            **model.config, "train_data": data_url, "train_fingerprint": Dataset.open(data_url).fingerprint()})
    save_model(model, url, extra)


def run_recommend(cfg: RecommendConfig, rules: FilterConfig = FilterConfig(),
                  fmt: IngestConfig = IngestConfig()) -> dict[str, Any]:
    """The K best items for one user, each with the rated items that explain it."""
    if not cfg.model or not cfg.user:
        raise DataError("recommend needs --model DIR and --user ID")
    model = load_model(cfg.model)
    train = training_data(model, cfg.model, cfg.train)
    user = _typed_id(cfg.user, model.user_ids_)
    rated, ratings = _rated_items(model, train, user)
    if cfg.fold_in:
        raw = _read_ratings(cfg.fold_in, fmt)
        model = model.fold_in(raw.user, raw.item, raw.rating)
        mine = np.asarray(raw.user == user)
        if mine.any():  # the folded-in ratings replace the user's training ratings
            items = model.item_index(raw.item[mine])
            rated, ratings = items[items >= 0], np.asarray(raw.rating[mine], np.float64)[items >= 0]
        unknown = int(np.sum(model.item_index(raw.item) < 0))
        if unknown:  # fold-in learns nothing from them: say so, as the fold-in job does
            log.warning("%s: %d of its %d ratings are of items the model does not know, ignored", cfg.fold_in,
                        unknown, len(raw))
    items_table = train.read_items()
    titles = items_table["title"].to_numpy(dtype=object)
    item_genres = items_table["genres"].to_numpy(dtype=object)
    embedding = model.config.get("genre_embedding")
    allowed = item_mask(train, model.item_ids_, rules)
    index = model.user_index(np.array([user]))[0]
    cold = bool(model.is_cold(np.array([index]))[0])
    result: dict[str, Any] = {"user": cfg.user, "known": not cold, "rated": int(len(rated)), "items": []}
    if cold:
        if cfg.cold_start != "popular":
            where = "is not in the model" if index < 0 else "has no training ratings in the model"
            raise DataError(f"user {cfg.user!r} {where} ({len(model.user_ids_)} users); pass --cold-start popular "
                            "for the items with the most ratings, or --fold-in a file of their ratings")
        best, counts = model.cold_start(cfg.k, None, allowed, 1)
        result["cold_start"] = "the items with the most training ratings"
        result["items"] = [{"rank": r + 1, "item_id": _plain(model.item_ids_[i]), "title": titles[i],
                            "score": float(c), "because": [], "rest": None}
                           for r, (i, c) in enumerate(zip(best[0], counts[0])) if i >= 0]
        return result
    ranking = model.ranking_item_matrix()
    found, scores = top_k(model.user_matrix_, ranking, model.mu_, np.array([index]), cfg.k, [rated], allowed)
    found, scores = found[0][found[0] >= 0], scores[0][found[0] >= 0]
    query = ranking[found, :-1].astype(np.float64)
    terms = contributions(model.kind, model.item_matrix_, query, rated, ratings, model.mu_,
                          model.config.get("model", {}))
    contrib, toward = terms if terms is not None else (None, None)
    reasons, weights = strongest(contrib, rated, cfg.explain)
    result["explanation"] = _EXPLANATIONS.get(model.kind) if cfg.explain else None
    lookup = {j: (r, bool(t)) for j, r, t in zip(rated.tolist(), ratings.tolist(),
                                                 toward.tolist() if toward is not None else [True] * len(rated))}
    for rank, (item, score) in enumerate(zip(found, scores)):
        because = [] if contrib is None else [
            {"item_id": _plain(model.item_ids_[j]), "title": titles[j], "rating": lookup[int(j)][0],
             "weight": float(w), "toward": lookup[int(j)][1]}
            for j, w in zip(reasons[rank], weights[rank]) if j >= 0]
        rest = None
        if model.kind in EXPLAINED_KINDS:  # the stored row's share that no rated item accounts for
            rest = float(model.user_matrix_[index, :-1].astype(np.float64) @ query[rank] - contrib[rank].sum())
        genre = liked_genre(model.user_matrix_[index], embedding, item_genres[item]) if embedding and cfg.explain else None
        result["items"].append({"rank": rank + 1, "item_id": _plain(model.item_ids_[item]), "title": titles[item],
                                "score": float(score), "because": because, "rest": rest, "liked_genre": genre})
    return result


_EXPLANATIONS = {"als": "each rated item's contribution to the score through the user's solve",
                 "genre_als": "each rated item's contribution through the user's solve, and the item's genre the "
                              "user's factors like best",
                 "implicit_als": "each rated item's contribution to the score through the user's solve",
                 "bpr": "the item-factor dot product with each item the user rated at or above model.threshold"}


def _read_ratings(path: str, fmt: IngestConfig) -> Any:
    """A fold-in ratings file in any ingest format; a failure says which flags describe other layouts."""
    try:
        return read_raw_ratings(path, fmt)
    except DataError as exc:
        raise DataError(f"{exc} (describe the file with --format csv|parquet|ml-100k|..., --user-col, --item-col, "
                        "--rating-col, --delimiter, as for ingest)") from None


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (for JSON); strings pass through."""
    return value.item() if isinstance(value, np.generic) else value


def _typed_id(text: str, ids: np.ndarray) -> Any:
    if ids.dtype.kind in "iu":
        try:
            return int(text)
        except ValueError:
            raise DataError(f"user id {text!r}: this model's user ids are integers") from None
    return text


def _rated_items(model: ALSModel, train: Dataset, user: Any) -> tuple[np.ndarray, np.ndarray]:
    """The user's training items (model indices) and ratings; empty for a user not in the training data."""
    index = model.user_index(np.array([user]))[0]
    if index < 0:
        return np.empty(0, np.int64), np.empty(0)
    r = train.read_user_range(int(index), int(index) + 1)
    return r.item_idx.astype(np.int64), r.rating.astype(np.float64)
