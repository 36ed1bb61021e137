"""Block loaders: module-level tasks that build one InBlock from a dataset where it will be used.

A user block reads only the Parquet blocks that hold its users; an item block scans the
user blocks once, keeping only its items, so no process ever holds the whole table.
"""

from __future__ import annotations

from recsys_dist.blocking import InBlock, build_in_block
from recsys_dist.data.dataset import Dataset


def load_user_block(url: str, block_id: int, lo: int, hi: int) -> InBlock:
    r = Dataset.open(url).read_user_range(lo, hi)
    return build_in_block(block_id, lo, hi, r.user_idx, r.item_idx, r.rating)


def load_item_block(url: str, block_id: int, lo: int, hi: int) -> InBlock:
    r = Dataset.open(url).read_item_range(lo, hi)
    return build_in_block(block_id, lo, hi, r.item_idx, r.user_idx, r.rating)
