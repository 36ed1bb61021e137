"""Cross-validation for the search: the folds cut once from the data, and the score of a model on a
fold's held-out part (its test and cold parts, cold ratings predicted from the biases as in evaluate)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from recsys_dist.config import SplitConfig
from recsys_dist.config_tune import cv_folds, metric_parts
from recsys_dist.data.dataset import Dataset, Ratings, is_dataset, sibling_url
from recsys_dist.data.split import split
from recsys_dist.errors import DataError
from recsys_dist.evaluate import ranking_metrics, rating_metrics
from recsys_dist.model import ALSModel
from recsys_dist.recommend import top_k

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fold:
    name: str
    train: str
    held_out: tuple[str, ...]  # test, and cold when the fold has one


def prepare_folds(data: str, cv: str, out: str, seed: int, archive: str = "") -> list[Fold]:
    """Cut the folds of ``cv`` from ``data`` into OUT/cv/NAME once; a later (resumed) search reuses them."""
    method, names, share = cv_folds(cv)
    folds = []
    for name in names:
        where = os.path.join(out, "cv", name)
        train = os.path.join(where, "train")
        if not is_dataset(train):
            log.info("cutting fold %s of %s (%s)", name, data, cv)
            split(SplitConfig(data=data, out=where, method=method, seed=seed, fold=name,
                              n_folds=max(len(names), 2), test_fraction=share or 0.2, archive=archive))
        held_out = tuple(u for u in (sibling_url(train, "test"), sibling_url(train, "cold")) if is_dataset(u))
        folds.append(Fold(name, train, held_out))
    return folds


class Validator:
    """Scores models of one fold: rating metrics on every held-out rating, ranking metrics over all items
    but the user's training ones, relevant = held-out rating >= ``relevance`` of a user and item that
    have training ratings (the others cannot be ranked)."""

    def __init__(self, fold: Fold, metric: str, relevance: float) -> None:
        self.name, self.k = metric_parts(metric)
        self.metric = metric
        train = Dataset.open(fold.train)
        held = Ratings.concat([Dataset.open(u).read_all() for u in fold.held_out])
        self.users, self.items, self.rating = held.user_idx, held.item_idx, held.rating
        self.user_counts, self.item_counts = train.rating_counts()
        self._train, self.relevance = train, relevance
        self._ranking: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]] | None = None

    def __call__(self, model: ALSModel) -> float:
        """The search metric of ``model``."""
        if self.k:
            return self.ranking(model, self.k)[self.name]
        return rating_metrics(self.predict(model), self.rating)[self.name]

    def predict(self, model: ALSModel) -> np.ndarray:
        return model.predict_idx(self.users, self.items)

    def all_metrics(self, model: ALSModel, rating_model: bool) -> dict[str, float]:
        """Every metric of the results table: RMSE and MAE (rating models) and ranking metrics at K."""
        out: dict[str, float] = {}
        if rating_model:
            out.update({k: v for k, v in rating_metrics(self.predict(model), self.rating).items() if k != "n"})
        k = self.k or 10
        out.update({f"{name}@{k}": v for name, v in self.ranking(model, k).items() if name != "users"})
        return out

    def ranking(self, model: ALSModel, k: int) -> dict[str, float]:
        users, relevant, exclude = self._ranking_inputs()
        if not len(users):
            raise DataError(f"fold {self.name}: no held-out rating >= {self.relevance:g} of a user and item with training "
                            "ratings: no ranking metric; lower tune.relevance")
        model.user_counts_, model.item_counts_ = self.user_counts, self.item_counts  # damping as when served
        items, _ = top_k(model.user_matrix_, model.ranking_item_matrix(), float(model.mu_), users, k, exclude)
        return ranking_metrics(items, relevant, [k], len(self.item_counts))[str(k)]

    def _ranking_inputs(self) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        if self._ranking is None:
            keep = ((self.rating >= self.relevance) & (self.user_counts[self.users] > 0)
                    & (self.item_counts[self.items] > 0))
            u, i = self.users[keep], self.items[keep]
            order = np.lexsort((i, u))
            u, i = u[order], i[order]
            users, starts = np.unique(u, return_index=True)
            relevant = np.split(i, starts[1:]) if len(users) else []
            r = self._train.read_all()
            order = np.lexsort((r.item_idx, r.user_idx))
            tu, ti = r.user_idx[order], r.item_idx[order]
            lo, hi = np.searchsorted(tu, users), np.searchsorted(tu, users, side="right")
            exclude = [ti[a:b] for a, b in zip(lo, hi)]
            self._ranking = (users.astype(np.int64), relevant, exclude)
            self._train = None  # the training ratings are no longer needed
        return self._ranking
