"""A saved model on an engine's workers, for the jobs that serve it (score, similar-items, evaluate): its
user blocks and factor rows, and the ranking item matrix, each made where its block lives
(``load_model_blocks``); and what their block tasks read there: the model's ids and the catalogue's titles,
read once per process and kept while their content is the same."""

from __future__ import annotations

import functools

import numpy as np

from typing import Any

from recsys_dist import progress
from recsys_dist.blocking import InBlock, block_bounds
from recsys_dist.checkpoint import SavedModel, model_rows
from recsys_dist.data.blocks import load_user_block
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.parquet_read import read_table
from recsys_dist.errors import DataError
from recsys_dist.model import rank_shrink


def load_model_blocks(ex: Any, saved: SavedModel, train_url: str, block_users: int,
                      in_process: bool) -> list[tuple[int, int]]:
    """Put ``saved`` on the executor ``ex``: the user blocks of its training data (each user's items, which
    top-K excludes) with sharded matrix ``user``, the user rows read from the model where each block lives,
    and an item side of rows only with sharded matrix ``item``, the ranking item matrix (``ranking_rows``).
    Returns the user blocks' (lo, hi) rows: ``block_users`` users each, at least two per worker. ``in_process``:
    the tasks run in this process (the inprocess engine), so they can read a memory:// model."""
    check_model_readable(saved, in_process)
    n_users, n_items = saved.n_rows["user"], saved.n_rows["item"]
    bounds = user_block_bounds(n_users, block_users, ex.n_workers)
    args = [(train_url, b, lo, hi) for b, (lo, hi) in enumerate(bounds)]
    with progress.bar("building user blocks", len(args)):
        ex.load_blocks("user", load_user_block, args)
    ex.load_blocks("item", rows_only_block,
                   [(b, lo, hi) for b, (lo, hi) in enumerate(block_bounds(n_items, max(1, ex.n_workers)))])
    ex.new_sharded("user", "user", saved.n_cols("user"), model_rows, (saved.url, "user"))
    ex.new_sharded("item", "item", saved.n_cols("item"), ranking_rows, (saved.url,))
    return bounds


def user_block_bounds(n_users: int, block_users: int, n_workers: int) -> list[tuple[int, int]]:
    """The (lo, hi) rows of the user blocks the serving jobs cut a model into: ``block_users`` users each, at
    least two blocks per worker."""
    return block_bounds(n_users, max(-(-n_users // block_users), 2 * n_workers))


def check_model_readable(saved: SavedModel, in_process: bool) -> None:
    """Stop before any work when the engine's workers, which read the model themselves, cannot see it."""
    if not in_process and saved.url.startswith("memory://"):  # memory:// is this process's alone
        raise DataError(f"{saved.url}: a memory:// model is in this process alone, and the engine's workers read "
                        "it themselves; save it to a path or object store, or use --engine inprocess")


def ranking_rows(lo: int, hi: int, url: str) -> np.ndarray:
    """Sharded-matrix init: rows lo..hi-1 of the item matrix top-K ranks with (``ALSModel.ranking_item_matrix``)."""
    saved = SavedModel(url)
    rows = saved.rows("item", lo, hi)
    counts = saved.counts("item")
    shrink = rank_shrink(saved.kind, saved.config, None if counts is None else counts[lo:hi])
    return rows if shrink is None else (rows * shrink[:, None]).astype(np.float32)


def rows_only_block(block_id: int, lo: int, hi: int) -> InBlock:
    """Block loader: rows lo..hi-1 and no ratings, for a side that only holds a matrix (the items, in scoring)."""
    return InBlock(block_id, lo, hi, np.zeros(hi - lo + 1, np.int64), np.empty(0, np.int32), np.empty(0, np.float32))


def model_ids(url: str, side: str) -> np.ndarray:
    """A saved model's ``side`` ids, read once per process for each content of the file."""
    return _ids_of(url, side, SavedModel(url).files[f"{side}_ids.parquet"])


@functools.lru_cache(maxsize=4)
def _ids_of(url: str, side: str, _sha256: str) -> np.ndarray:
    return SavedModel(url).ids(side)


def titles_source(url: str) -> tuple[str, str] | None:
    """(URL, fingerprint digest) of a dataset whose items.parquet has the titles, None when it is not readable."""
    try:
        return (url, Dataset.open(url).fingerprint()["files_sha256"]) if url else None
    except (OSError, DataError):
        return None


def titles(source: tuple[str, str] | None, n_items: int) -> np.ndarray:
    """The items' titles from ``titles_source``'s dataset (read once per process for each content), or Nones."""
    return np.full(n_items, None, dtype=object) if source is None else _titles_of(*source)


@functools.lru_cache(maxsize=2)
def _titles_of(url: str, _digest: str) -> np.ndarray:
    with Dataset.open(url).open_file("items.parquet") as fh:
        return read_table(fh, columns=["title"]).column("title").to_numpy(zero_copy_only=False).astype(object)
