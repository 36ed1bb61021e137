"""Block loaders: module-level tasks that build one InBlock where it will be used.

A user block reads only the Parquet blocks that hold its users. The item blocks are one shuffle of
the user blocks: each user block cuts its ratings into one piece per item block
(``split_by_block``), and each item block is built from its pieces (``build_from_pieces``), so the
ratings are read from storage once, not once per item block. ``load_item_block`` (a scan of the
whole dataset, keeping one item range) remains for a job that needs one item block alone.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from recsys_dist.blocking import InBlock, stable_argsort, build_in_block
from recsys_dist.data.dataset import Dataset


def load_user_block(url: str, block_id: int, lo: int, hi: int) -> InBlock:
    r = Dataset.open(url).read_user_range(lo, hi)
    return build_in_block(block_id, lo, hi, r.user_idx, r.item_idx, r.rating)


def load_item_block(url: str, block_id: int, lo: int, hi: int) -> InBlock:
    r = Dataset.open(url).read_item_range(lo, hi)
    return build_in_block(block_id, lo, hi, r.item_idx, r.user_idx, r.rating)


Pieces = tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def split_by_block(block: InBlock, edges: np.ndarray) -> Pieces:
    """``block``'s ratings seen from the other side, cut by that side's blocks (``edges``: their first rows and
    the end): ((other row, this row, value), offsets), piece j being ``offsets[j]:offsets[j + 1]``, each piece
    in this block's row order (so its rows ascend, which ``build_from_pieces`` relies on)."""
    own = np.repeat(np.arange(block.lo, block.hi, dtype=np.int32), block.row_counts())
    which = np.searchsorted(edges, block.indices, side="right") - 1
    order = stable_argsort(which)
    offsets = np.zeros(len(edges), np.int64)
    np.cumsum(np.bincount(which, minlength=len(edges) - 1), out=offsets[1:])
    return (block.indices[order], own[order], block.values[order]), offsets


def build_from_pieces(block_id: int, lo: int, hi: int,
                      pieces: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> InBlock:
    """The InBlock of rows lo..hi-1 from its pieces, given in the order of the blocks they were cut from: the same
    block ``load_item_block`` builds from storage, bit for bit."""
    rows, others, values = (np.concatenate([p[c] for p in pieces]) if pieces else np.zeros(0, dtype)
                            for c, dtype in enumerate((np.int32, np.int32, np.float32)))
    return build_in_block(block_id, lo, hi, rows, others, values)
