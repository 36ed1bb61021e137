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
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from recsys_dist.als import regularization, solve_block
from recsys_dist.blocking import InBlock
from recsys_dist.config import ModelConfig
from recsys_dist.errors import DataError, FitError
from recsys_dist.kernels.als import set_threads
from recsys_dist.kernels.genre_als import solve_toward_prior
from recsys_dist.models.explicit import half_step


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


def block_genre_moments(block: InBlock, _src: None, own_rows: np.ndarray, features: np.ndarray,
                        scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map task over the item blocks: F^T S F [g, g] and F^T S X [g, k+1] of the block's own rows."""
    f = features[block.lo:block.hi]
    s = scale[block.lo:block.hi, None]
    return f.T @ (s * f), f.T @ (s * own_rows.astype(np.float64))


def solve_items_toward_genres(block: InBlock, src: np.ndarray, _prev: None, prior: np.ndarray, mu: float, reg: float,
                              bias_reg: float, weighted: bool, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Solve task of the item half-step: rows [hi-lo, k+1] and stats [sse, nnz, kernel seconds]."""
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

    def __init__(self, cfg: ModelConfig, mu: float, features: np.ndarray, genres: list[str]) -> None:
        if not features.any():
            raise DataError("model.kind = genre_als needs item genres, and this dataset has none "
                            "(items.parquet lists no genre for any item)")
        self.cfg, self.mu, self.features, self.genres = cfg, mu, features, genres
        self.rank = cfg.rank
        self.weighted = cfg.reg_mode == "weighted"
        self.embedding = np.zeros((len(genres), cfg.rank + 1))
        self.counts: dict[str, np.ndarray] = {}

    def describe(self) -> str:
        return f"Cholesky, items pulled towards the embedding of their genres ({len(self.genres)} genres)"

    def tasks_per_iteration(self, n_blocks: dict[str, int]) -> int:
        return n_blocks["user"] + 2 * n_blocks["item"]

    def prepare(self, ex: Any, counts: dict[str, np.ndarray], n_blocks: dict[str, int]) -> None:
        self.counts = counts

    def iteration(self, ex: Any, iteration: int) -> dict[str, Any]:
        cfg = self.cfg
        record: dict[str, Any] = {"solver": "cholesky"}
        user_step = (self.mu, cfg.reg, cfg.bias_reg, self.weighted, ex.task_threads, 0)
        stats = half_step(ex, record, "user", "item", solve_block, user_step, False)
        record["objective_after_user"] = float(stats[0]) + self._penalty(ex)
        t0 = time.perf_counter()
        self.embedding = self._genre_step(ex)
        record["genre_seconds"] = time.perf_counter() - t0
        record["objective_after_genres"] = float(stats[0]) + self._penalty(ex)
        prior = np.ascontiguousarray(self.features @ self.embedding)
        item_step = (prior, self.mu, cfg.reg, cfg.bias_reg, self.weighted, ex.task_threads)
        stats = half_step(ex, record, "item", "user", solve_items_toward_genres, item_step, False)
        record["objective"] = record["objective_after_item"] = float(stats[0]) + self._penalty(ex)
        record["train_rmse"] = float(np.sqrt(stats[0] / stats[1]))
        record["item_seconds"] += record["genre_seconds"]
        return record

    def _scale(self) -> np.ndarray:
        n = self.counts["item"].astype(np.float64)
        return n if self.weighted else (n > 0).astype(np.float64)

    def _genre_step(self, ex: Any) -> np.ndarray:
        """G minimising the item penalty plus genre_reg |G|^2 for the current item rows (weighted ridge)."""
        moments = ex.map_blocks("item", block_genre_moments, None, "item", (self.features, self._scale()))
        ftf = sum(m[0] for m in moments)
        ftx = sum(m[1] for m in moments)
        g = np.empty_like(self.embedding)
        eye = np.eye(len(self.genres))
        w_factors, w_bias = self._genre_weights()
        g[:, :-1] = np.linalg.solve(self.cfg.reg * ftf + w_factors * eye, self.cfg.reg * ftx[:, :-1])
        g[:, -1] = np.linalg.solve(self.cfg.bias_reg * ftf + w_bias * eye, self.cfg.bias_reg * ftx[:, -1])
        return g

    def _genre_weights(self) -> tuple[float, float]:
        """The ridge on G's factor and bias columns: each genre is held like ``genre_reg`` items of average
        weight (a rated item's mean s_i times reg, or bias_reg), so the default needs no rescaling between
        datasets of other sizes."""
        scale = self._scale()
        mean = float(scale[scale > 0].mean()) if (scale > 0).any() else 1.0
        return self.cfg.genre_reg * self.cfg.reg * mean, self.cfg.genre_reg * self.cfg.bias_reg * mean

    def _penalty(self, ex: Any) -> float:
        """The regularisation terms of the objective for the current rows and embedding."""
        items = ex.matrix("item").astype(np.float64) - self.features @ self.embedding
        per_item = self.cfg.reg * np.einsum("ij,ij->i", items[:, :-1], items[:, :-1]) + self.cfg.bias_reg * items[:, -1] ** 2
        users = regularization(ex.matrix("user"), self.counts["user"], self.cfg.reg, self.cfg.bias_reg, self.weighted)
        w_factors, w_bias = self._genre_weights()
        return float(users + per_item @ self._scale() + w_factors * np.sum(self.embedding[:, :-1] ** 2)
                     + w_bias * np.sum(self.embedding[:, -1] ** 2))

    def model_extras(self) -> dict[str, Any]:
        """The learned genre embedding, saved in model.json: genre -> [factors..., bias]."""
        return {"genre_embedding": {g: [float(v) for v in row] for g, row in zip(self.genres, self.embedding)}}

    @staticmethod
    def summary(record: dict[str, Any]) -> str:
        return f"objective {record['objective']:.6g}, train RMSE {record['train_rmse']:.4f}"
