"""Where training's blocks come from: how many each side gets, whether they fit the workers' memory, and
building them (and the test or cold ratings beside them) where the engine runs them."""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys_dist import progress
from recsys_dist.blocking import block_bounds
from recsys_dist.data.blocks import build_from_pieces, load_item_block, load_user_block, split_by_block
from recsys_dist.data.dataset import Dataset
from recsys_dist.errors import DataError, FitError


def default_blocks(n_rows: int, nnz: int, workers: int) -> int:
    """Enough blocks to keep every worker busy (2 each) and blocks near 1M ratings."""
    return max(1, min(n_rows, max(2 * workers, -(-nnz // 1_000_000))))


WORKER_BASELINE = 150 << 20  # a Dask worker process before any data: Python, NumPy, Numba, distributed


def worker_memory_needed(n_ratings: int, n_users: int, n_items: int, rank: int, n_workers: int,
                         blocks: dict[str, int], threads: int) -> dict[str, int]:
    """Bytes a worker needs, part by part (an estimate, on the high side):

    - its share of both sides' blocks (int32 column + float32 value per rating per side), with a
      margin because blocks do not divide evenly among workers;
    - the broadcast src matrices of both half-steps, float32 [n, k+1] (a copy may outlive its step);
    - one task's output and warm-start rows plus its kernel scratch: the part more blocks shrink.
    """
    width = (rank + 1) * 4
    rows_per_block = max(n_users / max(blocks["user"], 1), n_items / max(blocks["item"], 1))
    parts = {
        "blocks": int(1.25 * 16 * n_ratings / max(n_workers, 1)),
        "broadcast": (n_users + n_items) * width,
        "per_task": int(rows_per_block * width * 3 + threads * 12 * (rank + 1) ** 2),
        "process": WORKER_BASELINE,
    }
    parts["total"] = sum(parts.values())
    return parts


def check_worker_memory(ex: Any, train: Dataset, rank: int, blocks: dict[str, int]) -> None:
    """Stop before loading anything when the blocks and broadcast matrices cannot fit the workers'
    memory limit (Dask pauses a worker at 80 % of it and restarts it at 95 %)."""
    limit = ex.memory_limit()
    if not limit:
        return
    need = worker_memory_needed(train.n_ratings, train.n_users, train.n_items, rank, ex.n_workers, blocks,
                                max(ex.task_threads, 1))
    if need["total"] > 0.8 * limit:
        gib = 1 << 30
        raise FitError(f"training needs about {need['total'] / gib:.2f} GiB per worker ({need['blocks'] / gib:.2f} of "
                       f"ratings blocks, {need['broadcast'] / gib:.2f} of broadcast factor matrices, "
                       f"{need['per_task'] / gib:.2f} per running task, {need['process'] / gib:.2f} for the process) "
                       f"but the smallest worker's memory limit is {limit / gib:.2f} GiB, and Dask pauses a worker at "
                       f"80 % of it. Add workers, give them more memory (dask worker --memory-limit), or raise "
                       f"engine.user_blocks / engine.item_blocks (now {blocks['user']} / {blocks['item']}) to "
                       "shrink the per-task part")


def build_blocks(ex: Any, train: Dataset, sides: tuple[str, ...], n_blocks: dict[str, int],
                 test_url: str = "") -> dict[str, np.ndarray]:
    """Build ``sides``' blocks where the engine runs them; return each side's per-row rating counts and set
    ``n_blocks`` to the block counts used. The user blocks read the (user-sorted) Parquet; the item blocks are one
    shuffle of the user blocks when both are needed, so the ratings are read once. With ``test_url``, the test
    ratings too, as side ``test`` cut like the training users (so each test block reads its users' rows)."""
    bounds = {"user": block_bounds(train.n_users, n_blocks["user"]), "item": block_bounds(train.n_items, n_blocks["item"])}
    counts: dict[str, np.ndarray] = {}
    with progress.bar("building blocks", sum(len(bounds[s]) for s in sides) + (len(bounds["user"]) if test_url else 0)):
        if test_url:
            load_rating_side(ex, "test", test_url, bounds["user"])
        for side in sides:
            n_blocks[side] = len(bounds[side])
            args = [(train.url, b, lo, hi) for b, (lo, hi) in enumerate(bounds[side])]
            if side == "item" and "user" in counts:
                edges = np.array([lo for lo, _ in bounds["item"]] + [train.n_items], np.int64)
                found = ex.shuffle_blocks("item", "user", split_by_block, (edges,), build_from_pieces,
                                          [a[1:] for a in args])
            else:
                found = ex.load_blocks(side, load_user_block if side == "user" else load_item_block, args)
            counts[side] = np.concatenate(found)
    return counts


def load_rating_side(ex: Any, side: str, url: str, bounds: list[tuple[int, int]]) -> None:
    """The ratings of dataset ``url`` (test or cold ones) as side ``side`` of the executor, cut by the training
    users' bounds, so each block reads its users' rows in place."""
    data = Dataset.open(url)
    loaded = int(sum(c.sum() for c in ex.load_blocks(side, load_user_block,
                                                      [(data.url, b, lo, hi) for b, (lo, hi) in enumerate(bounds)])))
    if loaded != data.n_ratings:
        raise DataError(f"{url}: {data.n_ratings - loaded} of its {data.n_ratings} ratings are of users outside the "
                        f"training data's {bounds[-1][1]} users; split them from the same dataset (`split`)")
