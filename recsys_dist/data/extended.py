"""The training data of a model after fold-in: its training data plus the folded-in ratings, in the
updated model's id maps (new users take their place in id order, so every later user's index moves).
Written as a dataset beside the model, it is what score's and evaluate's exclusions, recommend and
a resumed fold-in read, and it matches the model's id maps and fingerprint like any training data."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_dist.data.dataset import Dataset, DatasetWriter, Ratings, copy_dataset
from recsys_dist.data.ids import lookup


def write_extended(train: Dataset, user_ids: np.ndarray, folded: tuple[np.ndarray, np.ndarray, np.ndarray],
                   out_url: str) -> str:
    """Write ``train`` plus the ``folded`` (raw user ids, raw item ids, ratings) to ``out_url``, in the id
    map ``user_ids`` (the fold-in model's; the items are ``train``'s). A pair in both keeps the folded-in
    rating; ratings of items ``train`` does not know are dropped, as fold-in drops them. Returns the
    dataset's absolute URL."""
    base = train.read_all()
    new_index = lookup(user_ids, train.user_index().ids)
    users, items, ratings = folded
    f_items = train.item_index().to_index(np.asarray(items)).astype(np.int64)
    keep = f_items >= 0
    f_users = lookup(user_ids, np.asarray(users)[keep])
    if (f_users < 0).any():
        raise ValueError("folded-in users missing from the updated id map")  # a caller bug, not bad input
    merged = Ratings(np.concatenate([new_index[base.user_idx], f_users]).astype(np.int32),
                     np.concatenate([base.item_idx, f_items[keep]]).astype(np.int32),
                     np.concatenate([base.rating, np.asarray(ratings, np.float32)[keep]]).astype(np.float32),
                     np.concatenate([base.timestamp, np.zeros(int(keep.sum()), np.int64)]))
    seq = np.r_[np.zeros(len(base), np.int8), np.ones(int(keep.sum()), np.int8)]
    order = np.lexsort((seq, merged.item_idx, merged.user_idx))
    merged = merged.take(order)
    last = np.ones(len(merged), bool)
    last[:-1] = (merged.user_idx[1:] != merged.user_idx[:-1]) | (merged.item_idx[1:] != merged.item_idx[:-1])
    merged = merged.take(np.flatnonzero(last))
    with tempfile.TemporaryDirectory(prefix="recsys_dist-extended-") as tmp:
        root = Path(tmp) / "data"
        writer = DatasetWriter(root, len(user_ids), train.n_items, train.n_blocks)
        for block in range(writer.n_blocks):
            lo, hi = np.searchsorted(merged.user_idx, [block * writer.block_size, (block + 1) * writer.block_size])
            writer.write_block(block, merged.take(np.arange(lo, hi)))
        users_frame = pd.DataFrame({"user_idx": np.arange(len(user_ids), dtype=np.int32), "user_id": user_ids})
        known = train.read_users().drop(columns="user_idx")
        if len(known.columns) > 1:  # demographics: the known users keep theirs, folded-in ones have none
            users_frame = users_frame.merge(known, on="user_id", how="left", validate="one_to_one")
        pq.write_table(pa.Table.from_pandas(users_frame, preserve_index=False), root / "users.parquet")
        with train.open_file("items.parquet") as src:
            (root / "items.parquet").write_bytes(src.read())
        parent = train.manifest
        writer.finish({"kind": "dataset", "source": parent.get("source"), "rating_scale": parent["rating_scale"],
                       "has_timestamp": parent.get("has_timestamp", True), "genres": parent.get("genres", []),
                       "fold_in": {"base": train.absolute_url, "folded_ratings": int(keep.sum()),
                                   "base_fingerprint": train.fingerprint()}})
        return copy_dataset(str(root), out_url)
