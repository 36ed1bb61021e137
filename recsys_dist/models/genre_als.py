"""Genre-augmented explicit ALS (``genre_als``): items nobody rated get factors from their genres.

Each item's row [q_i, b_i] has the prior N(m_i, ...) with m_i = G^T f_i, f_i the item's genre
indicators divided by their number (an item of two genres sits between their embeddings) and G
[n_genres, k+1] a learned genre embedding whose last column is a genre bias. The objective is explicit
ALS's with the item penalty taken around the prior mean,

    sum (r - mu - b_u - b_i - p_u.q_i)^2 + sum_u s_u (reg |p_u|^2 + bias_reg b_u^2)
      + sum_i s_i (reg |q_i - m_i[:k]|^2 + bias_reg (b_i - m_i[k])^2)
      + genre_reg * mean_i(s_i) * (reg |G[:, :k]|^2 + bias_reg |G[:, k]|^2),

and one iteration is three exact minimisations, each lowering it: the user half-step (plain explicit
ALS), the genre step (G by weighted ridge regression of the item rows on their genres: small k x g
reductions over the item blocks) and the item half-step towards the new means. An item without ratings
ends with q_i = m_i: what its genres predict. Items without genres get m_i = 0 (plain ALS).

Users likewise, when the training data has demographics (data/users.py: one-hot gender, age group and
occupation, divided by their number): each user row [p_u, b_u] is pulled towards D^T f_u, D
[n_features, k+1] a learned demographic embedding (its last column a demographic bias) regularised as G
is, so a user without ratings gets p_u = D^T f_u. The iteration then starts with the demographic step
(D by the same ridge regression over the user blocks), and the user half-step solves towards D^T f_u.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys_dist.als import solve_block
from recsys_dist.blocking import InBlock
from recsys_dist.config import ModelConfig
from recsys_dist.errors import DataError, FitError
from recsys_dist.kernels.row_threads import set_threads
from recsys_dist.kernels.genre_als import solve_toward_prior
from recsys_dist.kernels.moments import weighted_cross
from recsys_dist.models.explicit import half_step

if TYPE_CHECKING:
    import pandas as pd


def genre_features(items: Any, genres: list[str], n_items: int) -> np.ndarray:  # noqa: ANN401 - a DataFrame
    """float64[n_items, n_genres]: each item's genre indicators divided by their number (rows of zeros for
    items without genres)."""
    column = {g: c for c, g in enumerate(genres)}
    f = np.zeros((n_items, len(genres)))
    for i, gs in zip(items["item_idx"].to_numpy(), items["genres"]):
        named = [column[g] for g in (gs if gs is not None else []) if g in column]
        if named:
            f[i, named] = 1.0 / len(named)
    return f


DEMOGRAPHIC_GROUPS = ("gender", "age_group", "occupation")
"""The users.parquet columns one-hot encoded (data/users.py writes them; zip codes are too many and too
sparse to help)."""


def demographic_features(users: pd.DataFrame, n_users: int) -> tuple[np.ndarray, list[str]]:
    """(float64[n_users, n_features], feature names "gender=F", "age_group=25-34", "occupation=writer", ...):
    each user's one-hot gender, age group and occupation divided by the number of them known, so a user
    sits at the mean of their groups' embeddings as an item at its genres'; zero rows for users without
    demographics. No columns when the dataset has none."""
    if not set(DEMOGRAPHIC_GROUPS) <= set(users.columns):
        return np.zeros((n_users, 0)), []
    idx = users["user_idx"].to_numpy()
    values = {g: users[g].astype(object).where(users[g].notna(), None).to_numpy() for g in DEMOGRAPHIC_GROUPS}
    names = [f"{g}={v}" for g in DEMOGRAPHIC_GROUPS for v in sorted({v for v in values[g] if v is not None}, key=str)]
    column = {name: c for c, name in enumerate(names)}
    f = np.zeros((n_users, len(names)))
    for g in DEMOGRAPHIC_GROUPS:
        known = np.array([v is not None for v in values[g]], bool)
        cols = np.array([column[f"{g}={v}"] for v in values[g][known]], np.int64)
        f[idx[known], cols] = 1.0
    total = f.sum(axis=1, keepdims=True)
    return np.divide(f, total, out=np.zeros_like(f), where=total > 0), names


def block_genre_moments(block: InBlock, _src: None, own_rows: np.ndarray, features: np.ndarray,
                        scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map task over the item (or user) blocks: F^T S F [g, g] and F^T S X [g, k+1] of the block's own rows."""
    f = features[block.lo:block.hi]
    s = scale[block.lo:block.hi]
    return weighted_cross(f, s, f), weighted_cross(f, s, own_rows)  # not BLAS: see kernels/moments.py


def solve_toward_features(block: InBlock, src: np.ndarray, _prev: None, prior: np.ndarray, mu: float, reg: float,
                              bias_reg: float, weighted: bool, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Solve task of a half-step towards per-row prior means (the item rows' genres, the user rows'
    demographics): rows [hi-lo, k+1] and stats [sse, nnz, kernel seconds]."""
    set_threads(threads)
    started = time.perf_counter()
    rows = np.empty((block.hi - block.lo, src.shape[1]), np.float32)
    row_sse = np.empty(block.hi - block.lo, np.float64)
    bad = solve_toward_prior(block.indptr, block.indices, block.values, src,
                             np.ascontiguousarray(prior[block.lo:block.hi], np.float64), float(mu), float(reg),
                             float(bias_reg), bool(weighted), rows, row_sse)
    if bad >= 0:
        raise FitError(f"block {block.block_id}: the normal equations of row {block.lo + bad} are not positive "
                       "definite; increase model.reg or model.bias_reg")
    return rows, np.array([row_sse.sum(), block.nnz, time.perf_counter() - started], np.float64)


class GenreSteps:
    sides = ("user", "item")

    def __init__(self, cfg: ModelConfig, mu: float, features: np.ndarray, genres: list[str],
                 user_features: np.ndarray | None = None, user_feature_names: list[str] | None = None) -> None:
        if not features.any():
            raise DataError("model.kind = genre_als needs item genres, and this dataset has none "
                            "(items.parquet lists no genre for any item)")
        self.cfg, self.mu = cfg, mu
        self.rank = cfg.rank
        self.weighted = cfg.reg_mode == "weighted"
        self.features = {"item": features, "user": user_features if user_features is not None and
                         user_features.any() else None}
        self.names = {"item": genres, "user": list(user_feature_names or [])}
        self.embedding = {side: np.zeros((len(self.names[side]), cfg.rank + 1)) for side in self.sides}
        self.counts: dict[str, np.ndarray] = {}

    @classmethod
    def for_dataset(cls, cfg: ModelConfig, mu: float, train: Any) -> GenreSteps:  # noqa: ANN401 - a Dataset
        """Steps reading the item genres (and the user demographics, where present) of ``train``."""
        genres = list(train.manifest.get("genres", []))
        user_f, names = demographic_features(train.read_users(), train.n_users)
        return cls(cfg, mu, genre_features(train.read_items(), genres, train.n_items), genres, user_f, names)

    @property
    def genres(self) -> list[str]:
        return self.names["item"]

    def describe(self) -> str:
        users = (f", users towards the embedding of their demographics ({len(self.names['user'])} features)"
                 if self.features["user"] is not None else "")
        return f"Cholesky, items pulled towards the embedding of their genres ({len(self.genres)} genres){users}"

    def tasks_per_iteration(self, n_blocks: dict[str, int]) -> int:
        return (2 if self.features["user"] is not None else 1) * n_blocks["user"] + 2 * n_blocks["item"]

    def prepare(self, ex: Any, counts: dict[str, np.ndarray], n_blocks: dict[str, int]) -> None:
        self.counts = counts

    def iteration(self, ex: Any, iteration: int) -> dict[str, Any]:
        cfg = self.cfg
        record: dict[str, Any] = {"solver": "cholesky"}
        if self.features["user"] is None:
            user_step = (self.mu, cfg.reg, cfg.bias_reg, self.weighted, ex.task_threads, 0)
            stats = half_step(ex, record, "user", "item", solve_block, user_step, False)
        else:
            t0 = time.perf_counter()
            self.embedding["user"] = self._prior_step(ex, "user")
            record["demographic_seconds"] = time.perf_counter() - t0
            user_step = (self._prior("user"), self.mu, cfg.reg, cfg.bias_reg, self.weighted, ex.task_threads)
            stats = half_step(ex, record, "user", "item", solve_toward_features, user_step, False)
            record["user_seconds"] += record["demographic_seconds"]
        record["objective_after_user"] = float(stats[0]) + self._penalty(ex)
        t0 = time.perf_counter()
        self.embedding["item"] = self._prior_step(ex, "item")
        record["genre_seconds"] = time.perf_counter() - t0
        record["objective_after_genres"] = float(stats[0]) + self._penalty(ex)
        item_step = (self._prior("item"), self.mu, cfg.reg, cfg.bias_reg, self.weighted, ex.task_threads)
        stats = half_step(ex, record, "item", "user", solve_toward_features, item_step, False)
        record["objective"] = record["objective_after_item"] = float(stats[0]) + self._penalty(ex)
        record["train_rmse"] = float(np.sqrt(stats[0] / stats[1]))
        record["item_seconds"] += record["genre_seconds"]
        return record

    def _prior(self, side: str) -> np.ndarray:
        """[n, k+1] prior means of the side's rows (zeros where a side has no features)."""
        return np.ascontiguousarray(self.features[side] @ self.embedding[side])

    def _scale(self, side: str) -> np.ndarray:
        n = self.counts[side].astype(np.float64)
        return n if self.weighted else (n > 0).astype(np.float64)

    def _prior_step(self, ex: Any, side: str) -> np.ndarray:
        """The embedding minimising the side's penalty plus its ridge for the current rows (weighted ridge)."""
        moments = ex.map_blocks(side, block_genre_moments, None, side, (self.features[side], self._scale(side)))
        ftf = sum(m[0] for m in moments)
        ftx = sum(m[1] for m in moments)
        g = np.empty_like(self.embedding[side])
        eye = np.eye(len(self.names[side]))
        w_factors, w_bias = self._ridge(side)
        g[:, :-1] = np.linalg.solve(self.cfg.reg * ftf + w_factors * eye, self.cfg.reg * ftx[:, :-1])
        g[:, -1] = np.linalg.solve(self.cfg.bias_reg * ftf + w_bias * eye, self.cfg.bias_reg * ftx[:, -1])
        return g

    def _ridge(self, side: str) -> tuple[float, float]:
        """The ridge on an embedding's factor and bias columns: each genre (demographic feature) is held like
        ``genre_reg`` rows of average weight (a rated row's mean s times reg, or bias_reg), so the default
        needs no rescaling between datasets of other sizes."""
        scale = self._scale(side)
        mean = float(scale[scale > 0].mean()) if (scale > 0).any() else 1.0
        return self.cfg.genre_reg * self.cfg.reg * mean, self.cfg.genre_reg * self.cfg.bias_reg * mean

    def _penalty(self, ex: Any) -> float:
        """The regularisation terms of the objective for the current rows and embeddings."""
        total = 0.0
        for side in self.sides:
            rows = ex.matrix(side).astype(np.float64)
            if self.features[side] is not None:
                rows -= self._prior(side)
            per_row = self.cfg.reg * np.einsum("ij,ij->i", rows[:, :-1], rows[:, :-1]) + self.cfg.bias_reg * rows[:, -1] ** 2
            w_factors, w_bias = self._ridge(side)
            total += float(per_row @ self._scale(side) + w_factors * np.sum(self.embedding[side][:, :-1] ** 2)
                           + w_bias * np.sum(self.embedding[side][:, -1] ** 2))
        return total

    def model_extras(self) -> dict[str, Any]:
        """The learned embeddings, saved in model.json: genre -> [factors..., bias], and where users were
        pulled towards their demographics, feature ("occupation=writer") -> [factors..., bias]."""
        extras = {"genre_embedding": {g: [float(v) for v in row] for g, row in zip(self.genres, self.embedding["item"])}}
        if self.features["user"] is not None:
            extras["demographic_embedding"] = {f: [float(v) for v in row]
                                               for f, row in zip(self.names["user"], self.embedding["user"])}
        return extras

    @staticmethod
    def summary(record: dict[str, Any]) -> str:
        return f"objective {record['objective']:.6g}, train RMSE {record['train_rmse']:.4f}"


def nearest_features(embedding: dict[str, list[float]], n: int = 3) -> list[tuple[str, float, list[str]]]:
    """For each genre (or demographic feature) of a saved embedding (name -> [factors..., bias]): its bias
    and the ``n`` others nearest by cosine of their factor columns, nearest first -- what the model learned
    about how genres relate. Names of all-zero factor rows (genres no rated item carries) have no
    neighbours."""
    names = list(embedding)
    rows = np.array([embedding[name] for name in names], np.float64).reshape(len(names), -1)
    factors = rows[:, :-1]
    norms = np.linalg.norm(factors, axis=1)
    unit = factors / np.where(norms > 0, norms, 1.0)[:, None]
    cosine = unit @ unit.T
    out = []
    for i, name in enumerate(names):
        others = [j for j in np.argsort(-cosine[i], kind="stable") if j != i and norms[j] > 0]
        out.append((name, float(rows[i, -1]), [names[j] for j in others[:n]] if norms[i] > 0 else []))
    return out
