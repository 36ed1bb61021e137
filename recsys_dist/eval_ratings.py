"""A saved model's RMSE and MAE on rated pairs, as sums reduced over blocks on an engine: the driver cuts the
pairs by the model's user blocks and each block task predicts its own from the user rows it reads from the
saved model where it runs and the item matrix (made on the workers), so no process holds a factor matrix.

The pairs are in the model's indices; -1 marks a user or item the model does not know, predicted by the
bias fallback as ``ALSModel.predict_idx`` does: a known item's pairs with an unknown user by a map over
the item blocks (mu + the item's bias), a pair of two unknowns by the driver (mu).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys_dist import progress
from recsys_dist.als import block_errors, error_metrics, error_sums
from recsys_dist.blocking import InBlock, block_bounds
from recsys_dist.checkpoint import SavedModel, model_rows
from recsys_dist.model_blocks import check_model_readable, rows_only_block, user_block_bounds
from recsys_dist.train_metrics import clip_range


def block_rating_metrics(ex: Any, saved: SavedModel, users: np.ndarray, items: np.ndarray, ratings: np.ndarray,
                         block_users: int, in_process: bool) -> dict[str, float | int]:
    """``evaluate.rating_metrics`` (rmse, mae, n) of ``saved``'s predictions for the pairs (users[p], items[p])
    against ``ratings``, from per-block sums on the executor ``ex``; ``block_users`` users per block, at least
    two blocks per worker. ``in_process``: the tasks run in this process, so they can read a memory:// model."""
    check_model_readable(saved, in_process)
    n_users, n_items = saved.n_rows["user"], saved.n_rows["item"]
    scale = saved.meta.get("rating_scale")
    mu = saved.mu
    clip = clip_range(mu, saved.kind, saved.config, None if scale is None else tuple(float(x) for x in scale))
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    ratings = np.asarray(ratings, np.float32)
    known = users >= 0
    order = np.argsort(users[known], kind="stable")
    known_users, known_items, known_ratings = users[known][order], items[known][order], ratings[known][order]
    bounds = user_block_bounds(n_users, block_users, ex.n_workers)
    cuts = np.searchsorted(known_users, [lo for lo, _ in bounds] + [n_users])
    args = [(b, lo, hi, known_users[cuts[b]:cuts[b + 1]], known_items[cuts[b]:cuts[b + 1]],
             known_ratings[cuts[b]:cuts[b + 1]]) for b, (lo, hi) in enumerate(bounds)]
    item_bounds = block_bounds(n_items, max(1, ex.n_workers))
    unknown = ~known
    any_unknown = bool(unknown.any())
    # a tick per block: the rated blocks built and mapped, the item blocks built (and mapped for unknown users)
    with progress.bar("scoring the rated pairs", 2 * len(bounds) + len(item_bounds) * (1 + any_unknown)):
        ex.load_blocks("rated", pairs_block, args)
        ex.load_blocks("item", rows_only_block, [(b, lo, hi) for b, (lo, hi) in enumerate(item_bounds)])
        # the user rows on the rated pairs' blocks (cut like the model's users), the items' as saved
        ex.new_sharded("rated_user", "rated", saved.n_cols("user"), model_rows, (saved.url, "user"))
        ex.new_sharded("item", "item", saved.n_cols("item"), model_rows, (saved.url, "item"))
        sums = ex.map_blocks("rated", block_errors, "item", "rated_user", (mu, clip))
        if any_unknown:
            item_known = unknown & (items >= 0)
            sums += ex.map_blocks("item", unknown_user_errors, None, "item",
                                  (items[item_known], ratings[item_known], mu, clip))
    if any_unknown:
        both = unknown & (items < 0)
        sums.append(error_sums(np.full(int(both.sum()), mu), ratings[both], clip))
    return error_metrics(sums)


def pairs_block(block_id: int, lo: int, hi: int, users: np.ndarray, items: np.ndarray,
                ratings: np.ndarray) -> InBlock:
    """Block loader: rated pairs of users lo..hi-1 (sorted by user; items global, -1 unknown) as their CSR."""
    indptr = np.zeros(hi - lo + 1, np.int64)
    np.cumsum(np.bincount(users - lo, minlength=hi - lo), out=indptr[1:])
    return InBlock(block_id, lo, hi, indptr, np.ascontiguousarray(items, np.int32),
                   np.ascontiguousarray(ratings, np.float32))


def unknown_user_errors(block: InBlock, _src: None, item_rows: np.ndarray, items: np.ndarray, ratings: np.ndarray,
                        mu: float, clip: tuple[float, float] | None) -> tuple[float, float, int]:
    """Map task over item blocks: ``block_errors``' sums for the pairs of users the model does not know whose
    items are this block's, predicted as ``predict_idx`` does: mu + the item's bias."""
    mine = (items >= block.lo) & (items < block.hi)
    predicted = mu + item_rows[items[mine] - block.lo, -1].astype(np.float64)
    return error_sums(predicted, ratings[mine], clip)
