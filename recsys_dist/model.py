"""ALSModel: the fitted parameters of r(u, i) = mu + b_u + b_i + p_u . q_i and their id maps. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys_dist.errors import DataError
from recsys_dist.als import INIT_SCALE, fold_in_rows
from recsys_dist.data.ids import lookup
from recsys_dist.hashing import normal
from recsys_dist.kernels.als import predict_pairs
from recsys_dist.models.bpmf import fold_in_bpmf, predictive_std
from recsys_dist.models.bpr import fold_in_bpr
from recsys_dist.models.implicit_als import fold_in_implicit
from recsys_dist.recommend import similar, top_k


@dataclass
class ALSModel:
    """Fitted model. Matrices hold factors with the bias in the last column ([n, k+1] float32).

    Users or items without training ratings have zero factors and bias, so their predictions
    fall back to mu + the known side's bias. ``kind`` is a ``model.kind`` (see recsys_dist.models
    for how ranking kinds use the layout). ``user_counts_`` / ``item_counts_`` hold each row's
    training ratings when known (models saved before they were recorded have None), and
    ``rating_scale_`` the (min, max) of the training data's rating scale, which predicted ratings
    of the rating kinds are clipped to unless ``model.clip`` is false. ``folded_`` holds the
    (user ids, item ids, ratings) folded in since the model was loaded or trained: saving such a
    model writes its training data plus these (``data/extended.py``), so every job can use it.
    """

    kind: str
    mu_: float
    user_matrix_: np.ndarray
    item_matrix_: np.ndarray
    user_ids_: np.ndarray
    item_ids_: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)
    user_counts_: np.ndarray | None = field(default=None, repr=False)
    item_counts_: np.ndarray | None = field(default=None, repr=False)
    rating_scale_: tuple[float, float] | None = None
    folded_: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def ranking_item_matrix(self) -> np.ndarray:
        """The item matrix top-K ranks with: for rating models, each item row (bias and factors) shrunk
        by n_i / (n_i + model.rank_damping) toward the mean (see ModelConfig.rank_damping), but genre_als's
        unrated items, whose rows are already their genres' prior; else as is."""
        shrink = rank_shrink(self.kind, self.config, self.item_counts_)
        return self.item_matrix_ if shrink is None else (self.item_matrix_ * shrink[:, None]).astype(np.float32)

    def __repr__(self) -> str:  # one line: never the matrices
        return (f"ALSModel(kind={self.kind!r}, n_users={len(self.user_ids_)}, n_items={len(self.item_ids_)}, "
                f"n_factors={self.n_factors})")

    @property
    def n_factors(self) -> int:
        return self.user_matrix_.shape[1] - 1

    @property
    def user_factors_(self) -> np.ndarray:
        return self.user_matrix_[:, :-1]

    @property
    def item_factors_(self) -> np.ndarray:
        return self.item_matrix_[:, :-1]

    @property
    def user_bias_(self) -> np.ndarray:
        return self.user_matrix_[:, -1]

    @property
    def item_bias_(self) -> np.ndarray:
        return self.item_matrix_[:, -1]

    def predict_idx(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Predictions for dense index pairs; index -1 marks an unknown user or item."""
        user_idx = np.ascontiguousarray(user_idx, np.int64)
        item_idx = np.ascontiguousarray(item_idx, np.int64)
        if len(user_idx) != len(item_idx):
            raise DataError(f"{len(user_idx)} users but {len(item_idx)} items")
        out = np.empty(len(user_idx), np.float64)
        predict_pairs(user_idx, item_idx, self.user_matrix_, self.item_matrix_, float(self.mu_), out)
        if self.clips:
            np.clip(out, *self.rating_scale_, out=out)
        return out

    @property
    def predicts_unrated_items(self) -> bool:
        """Whether an item without training ratings has a row of its own (genre_als: its genres'
        embedding) rather than falling back to the biases."""
        return self.kind == "genre_als"

    @property
    def predicts_unrated_users(self) -> bool:
        """Whether a user without training ratings may have a row of their own (genre_als trained with user
        demographics: the embedding of theirs) rather than falling back to the biases."""
        return self.kind == "genre_als" and "demographic_embedding" in self.config

    @property
    def posterior(self) -> dict[str, Any] | None:
        """A bpmf model's sample layout (samples, rank, noise_variance; see models/bpmf.py), else None."""
        return self.config.get("posterior")

    def predict_std_idx(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """bpmf: the predictive standard deviation of each pair's rating (spread of the kept samples'
        predictions plus the noise variance); index -1 marks an unknown user or item."""
        if self.posterior is None:
            raise DataError(f"a {self.kind!r} model has no predictive distribution; train model.kind = \"bpmf\"")
        return predictive_std(self.user_matrix_, self.item_matrix_, float(self.mu_), self.posterior,
                              np.asarray(user_idx, np.int64), np.asarray(item_idx, np.int64))

    def predict_std(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """``predict_std_idx`` for original ids."""
        return self.predict_std_idx(self.user_index(user_ids), self.item_index(item_ids))

    @property
    def clips(self) -> bool:
        """Whether predictions are clipped to the rating scale: rating kinds, unless model.clip is false."""
        return (self.kind in ("als", "bias", "mean", "bpmf", "genre_als") and self.rating_scale_ is not None
                and bool(self.config.get("model", {}).get("clip", True)))

    def user_index(self, user_ids: np.ndarray) -> np.ndarray:
        return lookup(self.user_ids_, np.asarray(user_ids))

    def item_index(self, item_ids: np.ndarray) -> np.ndarray:
        return lookup(self.item_ids_, np.asarray(item_ids))

    def predict(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Predictions for original ids; unknown ids fall back to biases, then to mu."""
        return self.predict_idx(self.user_index(user_ids), self.item_index(item_ids))

    def recommend(self, user_ids: np.ndarray, k: int = 10, exclude: list[np.ndarray] | None = None,
                  items: np.ndarray | None = None, deny: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k best items (original ids) for each user id, best first, with their ranking scores.

        ``exclude[r]`` lists item ids not to recommend to user r (e.g. those already rated);
        ``items`` is an allow-list and ``deny`` a deny-list of item ids for everyone. Cold users
        (unknown, or without training ratings) get ``cold_start``'s items. Missing slots hold the
        id's type's missing marker (-1 for integer ids, None for strings) and NaN scores.
        """
        allowed = self._item_mask(items, deny)
        excl = None if exclude is None else [self.item_index(np.asarray(x)) for x in exclude]
        users = self.user_index(user_ids)
        cold = self.is_cold(users)
        idx, scores = top_k(self.user_matrix_, self.ranking_item_matrix(), self.mu_, np.where(cold, -1, users), k,
                            excl, allowed)
        unknown = np.flatnonzero(cold)
        if len(unknown):
            cold_idx, cold_scores = self.cold_start(k, None if excl is None else [excl[i] for i in unknown], allowed,
                                                    len(unknown))
            idx[unknown], scores[unknown] = cold_idx, cold_scores
        return self._item_ids_of(idx), scores

    def is_cold(self, user_idx: np.ndarray) -> np.ndarray:
        """Which user indices are cold: -1 (not in the id map) or without training ratings (a test-only
        user of a split keeps an index, with a zero row, but the model knows nothing about them), unless
        the model gave them a row from their demographics (genre_als; a user without any has a zero row)."""
        user_idx = np.asarray(user_idx, np.int64)
        cold = user_idx < 0
        if self.user_counts_ is not None:
            unrated = self.user_counts_[np.maximum(user_idx, 0)] == 0
            if self.predicts_unrated_users:
                unrated &= ~self.user_matrix_[np.maximum(user_idx, 0)].any(axis=1)
            cold |= unrated
        return cold

    def cold_start(self, k: int, exclude: list[np.ndarray] | None, allowed: np.ndarray | None,
                   n: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (item indices, scores) for ``n`` cold users: the one policy of every job and kind, the
        items with the most training ratings, scored by that count (``popular`` models: their own
        interaction counts); ties go to the lower index. Models saved without counts fall back to
        their own item term (mu + b_i, shrunk, for rating models; BPR's item bias)."""
        item_term = None if uses_counts(self.kind, self.item_counts_) else self.ranking_item_matrix()[:, -1]
        return cold_start_lists(self.kind, self.mu_, self.item_counts_, item_term, k, exclude, allowed, n)

    def similarity_matrix(self) -> np.ndarray:
        """The item matrix whose factor columns similar-items compares: bpmf's side-by-side sample factors
        without its bias-sample columns (see models/bpmf.py), else the item matrix itself."""
        if self.posterior is None:
            return self.item_matrix_
        width = int(self.posterior["samples"]) * int(self.posterior["rank"])
        return np.ascontiguousarray(np.hstack([self.item_matrix_[:, :width], self.item_matrix_[:, -1:]]))

    def similar_items(self, item_ids: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The k items most similar to each item id (cosine of factors), itself excluded."""
        idx = self.item_index(item_ids)
        if (idx < 0).any():
            missing = np.asarray(item_ids)[np.flatnonzero(idx < 0)[0]]
            missing = missing.item() if isinstance(missing, np.generic) else missing
            raise DataError(f"unknown item id {missing!r}: it has no factors in this model")
        found, scores = similar(self.similarity_matrix(), idx, k)
        return self._item_ids_of(found), scores

    def fold_in(self, user_ids: np.ndarray, item_ids: np.ndarray, ratings: np.ndarray) -> ALSModel:
        """A model with these users' bias and factors solved from the given ratings against the fixed
        item factors (no retraining): new users are added, known users' rows replaced from exactly the
        ratings given. Ratings of items the model does not know are ignored (they have no factors).
        The training regularization is reused and the row solved exactly: training's user half-step with
        the Cholesky solver bit for bit; with CG (the default) the point its steps approach.
        bpmf: for each kept sample a draw from the user's Gibbs conditional given that sample's item rows
        (``models.bpmf.fold_in_bpmf``), so predictions and their std average over the samples as in training."""
        user_ids, item_ids = np.asarray(user_ids), np.asarray(item_ids)
        ratings = np.asarray(ratings, np.float64)
        if not len(user_ids) == len(item_ids) == len(ratings):
            raise DataError(f"fold-in: {len(user_ids)} users, {len(item_ids)} items and {len(ratings)} ratings")
        items = self.item_index(item_ids)
        known = items >= 0
        users, rows = np.unique(user_ids[known], return_inverse=True)
        settings = self.config.get("model", {})
        # genre_als's user side is explicit ALS's
        weighted = self.kind in ("als", "genre_als") and settings.get("reg_mode", "weighted") == "weighted"
        if self.posterior is not None:  # bpmf: a draw from each kept sample's conditional (models/bpmf.py)
            solved = fold_in_bpmf(self.user_matrix_, self.item_matrix_, float(self.mu_), self.posterior,
                                  self.user_counts_, rows, items[known], ratings[known], len(users),
                                  [_stable_key(u) for u in users.tolist()], int(settings.get("seed", 0)))
        elif self.kind in ("mean", "popular"):  # user rows play no part in these scores
            solved = np.zeros((len(users), self.user_matrix_.shape[1]), np.float32)
        elif self.kind == "implicit_als":
            solved = fold_in_implicit(self.item_matrix_, rows, items[known], ratings[known], len(users), settings)
        elif self.kind == "bpr":  # SGD from each user's current row (a seeded initial row for a new user)
            current = self.user_index(users)
            keys = [_stable_key(u) for u in users.tolist()]
            solved = np.empty((len(users), self.user_matrix_.shape[1]), np.float32)
            for j, key in enumerate(keys):
                start = self.user_matrix_[current[j]].copy() if current[j] >= 0 else np.zeros(self.n_factors + 1,
                                                                                               np.float32)
                if current[j] < 0:  # a new user: seeded initial factors, as training's, keyed by the id
                    start[:-1] = INIT_SCALE * normal(int(settings.get("seed", 0)), 2, np.array([key >> 22]),
                                                     self.n_factors)[0]
                mine = rows == j
                solved[j] = fold_in_bpr(self.item_matrix_, items[known][mine], ratings[known][mine], settings, start,
                                        key)
        else:
            solved = fold_in_rows(self.item_matrix_, rows, items[known], ratings[known], len(users), float(self.mu_),
                                  float(settings.get("reg", 0.1)), float(settings.get("bias_reg", 0.1)), weighted)
        all_ids = np.union1d(self.user_ids_, users) if self.user_ids_.dtype.kind != "O" else \
            np.array(sorted(set(self.user_ids_.tolist()) | set(users.tolist())), dtype=object)
        matrix = np.zeros((len(all_ids), self.user_matrix_.shape[1]), np.float32)
        matrix[lookup(all_ids, self.user_ids_)] = self.user_matrix_
        matrix[lookup(all_ids, users)] = solved
        user_counts = None
        if self.user_counts_ is not None:
            user_counts = np.zeros(len(all_ids), np.int64)
            user_counts[lookup(all_ids, self.user_ids_)] = self.user_counts_
            user_counts[lookup(all_ids, users)] = np.bincount(rows, minlength=len(users))
        folded = (user_ids, item_ids, ratings) if self.folded_ is None else tuple(
            np.concatenate([a, b]) for a, b in zip(self.folded_, (user_ids, item_ids, ratings)))
        return ALSModel(self.kind, self.mu_, matrix, self.item_matrix_, all_ids, self.item_ids_,
                        {**self.config, "folded_in_users": int(len(users))}, user_counts, self.item_counts_,
                        self.rating_scale_, folded)

    def _item_mask(self, items: np.ndarray | None, deny: np.ndarray | None) -> np.ndarray | None:
        if items is None and deny is None:
            return None
        mask = np.zeros(len(self.item_ids_), bool) if items is not None else np.ones(len(self.item_ids_), bool)
        if items is not None:
            found = self.item_index(np.asarray(items))
            mask[found[found >= 0]] = True
        if deny is not None:
            found = self.item_index(np.asarray(deny))
            mask[found[found >= 0]] = False
        return mask

    def _item_ids_of(self, idx: np.ndarray) -> np.ndarray:
        ids = self.item_ids_[np.maximum(idx, 0)]
        if ids.dtype.kind in "iu":
            return np.where(idx >= 0, ids, -1)
        ids = ids.astype(object)
        ids[idx < 0] = None
        return ids


def rank_shrink(kind: str, config: dict[str, Any], item_counts: np.ndarray | None) -> np.ndarray | None:
    """Each item row's factor in the matrix top-K ranks with (``ALSModel.ranking_item_matrix``), or None
    when it ranks with the item matrix as is; ``item_counts`` may be a slice, for a block of items."""
    damping = float(config.get("model", {}).get("rank_damping", 0.0))
    if kind not in ("als", "bias", "genre_als") or damping <= 0 or item_counts is None:
        return None
    n = np.asarray(item_counts, np.float64)
    shrink = n / (n + damping)
    if kind == "genre_als":  # an unrated item's row is already its prior (its genres' embedding)
        shrink[n == 0] = 1.0
    return shrink


def uses_counts(kind: str, item_counts: np.ndarray | None) -> bool:
    """Whether the cold-start list of a ``kind`` model ranks by the items' training counts (else by its item term)."""
    return item_counts is not None and kind != "popular"


def cold_start_lists(kind: str, mu: float, item_counts: np.ndarray | None, item_term: np.ndarray | None, k: int,
                     exclude: list[np.ndarray] | None, allowed: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``ALSModel.cold_start`` from what it needs: the items' training counts, or when ``uses_counts`` is false
    the last column of the ranking item matrix (mu + that term is what a user without factors is scored by)."""
    if uses_counts(kind, item_counts):
        item_term, mu = np.asarray(item_counts), 0.0
    column = np.asarray(item_term, np.float32).reshape(-1, 1)
    return top_k(np.zeros((1, 1), np.float32), column, mu, np.full(n, -1), k, exclude, allowed)


def _stable_key(user_id: Any) -> int:
    """A 62-bit integer of a user id that is the same in every process (Python's str hash is not)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(repr(user_id).encode()).digest()[:8], "little") >> 2
