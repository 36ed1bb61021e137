"""What block tasks of the serving jobs (score, similar-items) read where they run: a saved model's ids and
the catalogue's titles, read once per process and kept while their content is the same, and the loader of
a side that only holds a matrix."""

from __future__ import annotations

import functools

import numpy as np

from recsys_dist.blocking import InBlock
from recsys_dist.checkpoint import SavedModel
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.parquet_read import read_table
from recsys_dist.errors import DataError


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
