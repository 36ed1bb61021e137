"""The similar-items job (Spark's ``recommendForAllItems`` counterpart): for every item with factors
(or a listed few), the K items nearest by cosine of their factors, to Parquet published atomically.

Items are taken ``block_items`` at a time through the parallel top-K kernel (one small factor
matrix product per item, never an items x items matrix), one Parquet part per chunk, and
``_SUCCESS`` is written last, as for ``score``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recsys_dist import progress
from recsys_dist.checkpoint import load_model
from recsys_dist.config import SimilarItemsConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.recommendations import RecommendationWriter, read_ids
from recsys_dist.errors import DataError
from recsys_dist.recommend import similar


def run_similar_items(cfg: SimilarItemsConfig) -> dict[str, Any]:
    if not cfg.model or not cfg.out:
        raise DataError("similar-items needs --model DIR and --out URL")
    model = load_model(cfg.model)
    if model.n_factors == 0:
        raise DataError(f"{cfg.model}: a {model.kind!r} model has no item factors to compare")
    matrix = model.similarity_matrix()
    has_factors = np.abs(matrix[:, :-1]).sum(axis=1) > 0
    if cfg.items:
        listed = read_ids(cfg.items, model.item_ids_.dtype.kind in "iu", "item")
        idx = model.item_index(listed)
        if (idx < 0).any():
            missing = listed[np.flatnonzero(idx < 0)[0]]
            raise DataError(f"{cfg.items}: item id {missing!r} is not in the model")
        wanted = np.unique(idx)
    else:
        wanted = np.flatnonzero(has_factors)
    titles = _titles(model)
    writer = RecommendationWriter(cfg.out, partition="item_block")
    chunks = [wanted[i:i + cfg.block_items] for i in range(0, len(wanted), cfg.block_items)]
    try:
        with progress.bar(f"similar items for {len(wanted)} items, top {cfg.k}", len(chunks)):
            for block, chunk in enumerate(chunks):
                found, scores = similar(matrix, chunk, cfg.k)
                filled = found >= 0
                rows = np.nonzero(filled)
                writer.write_block(block, pd.DataFrame({
                    "item_id": model.item_ids_[chunk[rows[0]]],
                    "rank": (rows[1] + 1).astype(np.int16),
                    "similar_item_id": model.item_ids_[found[filled]],
                    "score": scores[filled],
                    "title": titles[found[filled]],
                }))
                progress.advance()
        return writer.publish({"model": str(cfg.model), "k": cfg.k, "items": int(len(wanted))})
    except BaseException:
        writer.abort()
        raise


def _titles(model: Any) -> np.ndarray:
    """Item titles from the model's training data when it is recorded and readable, else empty."""
    url = model.config.get("train_data", "")
    try:
        return Dataset.open(url).read_items()["title"].to_numpy(dtype=object) if url else \
            np.full(len(model.item_ids_), None, dtype=object)
    except (OSError, DataError):
        return np.full(len(model.item_ids_), None, dtype=object)
