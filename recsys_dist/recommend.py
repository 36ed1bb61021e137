"""Top-K recommendations and similar items from factor matrices (bias in the last column).

Functions take arrays, not a model, so ``model.py`` can build its API on them and a
scoring task can run them on a block of users wherever an executor puts it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys_dist.blocking import InBlock
from recsys_dist.evaluate import ranking_sums
from recsys_dist.kernels.row_threads import set_threads
from recsys_dist.kernels.topk import rank_stats_rows, topk_rows


def lists_to_csr(lists: list[np.ndarray] | None, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row index lists as CSR with ascending indices (an empty CSR when ``lists`` is None)."""
    if lists is None:
        return np.zeros(n_rows + 1, np.int64), np.empty(0, np.int32)
    if len(lists) != n_rows:
        raise ValueError(f"{len(lists)} exclusion lists for {n_rows} rows")
    rows = [np.unique(np.asarray(x, np.int64)) for x in lists]
    rows = [r[r >= 0] for r in rows]  # unknown ids (-1) exclude nothing
    indptr = np.zeros(n_rows + 1, np.int64)
    np.cumsum([len(r) for r in rows], out=indptr[1:])
    indices = np.concatenate(rows) if rows else np.empty(0, np.int64)
    return indptr, np.ascontiguousarray(indices, np.int32)


def top_k(user_matrix: np.ndarray, item_matrix: np.ndarray, mu: float, user_idx: np.ndarray, k: int,
          exclude: list[np.ndarray] | None = None, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k highest predicted ratings mu + b_u + b_i + p_u . q_i for each user index (-1: unknown
    user, ranked by mu + b_i). ``exclude[r]`` lists items never returned for row r; ``allowed``
    masks the catalogue. Returns items int32[n, k] (-1 when fewer candidates) and scores float32[n, k]."""
    user_idx = np.asarray(user_idx, np.int64)
    known = user_idx >= 0
    queries = np.zeros((len(user_idx), user_matrix.shape[1] - 1), np.float32)
    queries[known] = user_matrix[user_idx[known], :-1]
    query_bias = np.full(len(user_idx), mu, np.float64)
    query_bias[known] += user_matrix[user_idx[known], -1]
    return _select(queries, np.ascontiguousarray(item_matrix[:, :-1]), query_bias,
                   item_matrix[:, -1].astype(np.float64), k, exclude, allowed)


def block_top_k_rows(block: InBlock, item_matrix: np.ndarray, user_rows: np.ndarray, mu: float, k: int,
                     allowed: np.ndarray | None, keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k of the block's users that ``keep`` marks (a mask over the block's rows; all when None), never an
    item the user rated in the block: (their local indices, items int32[n, k], scores float32[n, k])."""
    users, queries, query_bias, indptr, indices = _block_queries(block, user_rows, mu, keep)
    allowed = np.ones(len(item_matrix), np.bool_) if allowed is None else np.asarray(allowed, np.bool_)
    items = np.empty((len(users), k), np.int32)
    scores = np.empty((len(users), k), np.float32)
    topk_rows(queries, np.ascontiguousarray(item_matrix[:, :-1]), query_bias, item_matrix[:, -1].astype(np.float64),
              allowed, indptr, indices, k, items, scores)
    return users, items, scores


def rank_block(block: InBlock, item_matrix: np.ndarray, user_rows: np.ndarray, wanted: np.ndarray,
               rel_indptr: np.ndarray, rel_indices: np.ndarray, mu: float, k: int, ks: list[int], n_items: int,
               threads: int) -> dict[str, Any]:
    """Executor task of evaluation, with the block's own slices (``map_blocks``' per-block part): the users
    ``wanted`` marks (a mask over the block's rows) get their top-k without their training items, scored
    against their relevant items (``rel_indptr``/``rel_indices``: a CSR over the block's rows) as
    ``evaluate.ranking_sums``, and from their whole ranked lists AUC and reciprocal rank, summed; only the
    sums travel back (reduced by ``evaluate.finish_ranking``)."""
    set_threads(threads)
    keep = np.asarray(wanted, bool)
    users, items, _ = block_top_k_rows(block, item_matrix, user_rows, mu, k, None, keep)
    _, queries, query_bias, indptr, indices = _block_queries(block, user_rows, mu, keep)
    counts = rel_indptr[users + 1] - rel_indptr[users]
    sub_indptr = np.zeros(len(users) + 1, np.int64)
    np.cumsum(counts, out=sub_indptr[1:])
    relevant = [rel_indices[rel_indptr[u]:rel_indptr[u + 1]] for u in users]
    sub = np.concatenate(relevant) if len(users) else np.empty(0, np.int32)
    auc, rr = np.empty(len(users)), np.empty(len(users))
    rank_stats_rows(queries, np.ascontiguousarray(item_matrix[:, :-1]), query_bias,
                    item_matrix[:, -1].astype(np.float64), indptr, indices, sub_indptr,
                    np.ascontiguousarray(sub, np.int32), auc, rr)
    # relevant items the user also rated in training: excluded from the lists, so never a hit (a wrong --data)
    keys = np.repeat(np.arange(len(users), dtype=np.int64), np.diff(indptr)) * n_items + indices
    in_training = int(np.isin(np.repeat(np.arange(len(users), dtype=np.int64), counts) * n_items + sub, keys).sum())
    # a user whose every candidate is relevant has no AUC: averaged over the others
    return {"users": int(len(users)), "in_training": in_training, "at": ranking_sums(items, relevant, ks, n_items),
            "auc": (float(np.nansum(auc)), int(np.isfinite(auc).sum())),
            "rr": (float(np.nansum(rr)), int(np.isfinite(rr).sum()))}


def _block_queries(block: InBlock, user_rows: np.ndarray, mu: float, keep: np.ndarray | None):  # noqa: ANN202
    """The kept users of a block (local indices; all when None), their factor rows and biases, and their
    training items as CSR."""
    counts = np.diff(block.indptr)
    keep = np.ones(block.hi - block.lo, bool) if keep is None else keep
    users = np.flatnonzero(keep)
    indptr = np.zeros(len(users) + 1, np.int64)
    np.cumsum(counts[users], out=indptr[1:])
    indices = block.indices if keep.all() else block.indices[np.repeat(keep, counts)]
    rows = user_rows[users]
    return (users, np.ascontiguousarray(rows[:, :-1], np.float32), mu + rows[:, -1].astype(np.float64), indptr,
            np.ascontiguousarray(indices, np.int32))


def similar(item_matrix: np.ndarray, item_idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k items nearest to each given item by cosine similarity of their factors, itself excluded."""
    unit = unit_rows(item_matrix)
    return similar_unit(np.ascontiguousarray(unit[:, :-1]), unit[:, -1] > 0, item_idx, k)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row's factors (all columns but the last) scaled to unit length, and in the last column 1 where
    the row has factors, 0 where they are all zero. Row by row: a block of rows gives the same as the whole."""
    factors = matrix[:, :-1].astype(np.float64)
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    unit = np.divide(factors, norms, out=np.zeros_like(factors), where=norms > 0)
    return np.hstack([unit, norms > 0]).astype(np.float32)


def similar_unit(unit: np.ndarray, has_factors: np.ndarray, item_idx: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray]:
    """``similar`` from unit factors (``unit_rows`` without its last column) and which items have factors."""
    item_idx = np.asarray(item_idx, np.int64)
    return _select(unit[item_idx], unit, np.zeros(len(item_idx)), np.zeros(len(unit), np.float64), k,
                   [np.array([i]) for i in item_idx], has_factors)


def _select(queries, items, query_bias, item_bias, k, exclude, allowed):  # noqa: ANN001, ANN202
    n = len(queries)
    indptr, indices = lists_to_csr(exclude, n)
    allowed = np.ones(len(items), np.bool_) if allowed is None else np.asarray(allowed, np.bool_)
    out_items = np.empty((n, k), np.int32)
    out_scores = np.empty((n, k), np.float32)
    topk_rows(np.ascontiguousarray(queries, np.float32), items, query_bias, item_bias, allowed, indptr, indices, k,
              out_items, out_scores)
    return out_items, out_scores
