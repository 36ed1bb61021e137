"""The similar-items job (Spark's ``recommendForAllItems`` counterpart): for every item with factors
(or a listed few), the K items nearest by cosine of their factors, to Parquet published atomically.

A map over item blocks on the configured engine, written as ``score`` is: each block's unit factor rows
are made from the saved model where the block lives (``similarity_rows``), the engine brings the whole
unit matrix to each worker once, and each block's task ranks its own items against it through the
parallel top-K kernel (one small factor-matrix product per item, never an items x items matrix) and
writes its own part. The client reads ids only, and publishes ``_SUCCESS`` last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys_dist import progress
from recsys_dist.blocking import InBlock, block_bounds
from recsys_dist.checkpoint import SavedModel
from recsys_dist.config import EngineConfig, SimilarItemsConfig
from recsys_dist.data.ids import lookup
from recsys_dist.data.recommendations import RecommendationWriter, read_ids, write_part
from recsys_dist.errors import DataError
from recsys_dist.executors import make_executor
from recsys_dist.kernels.row_threads import set_threads
from recsys_dist.model_blocks import model_ids, rows_only_block, titles, titles_source
from recsys_dist.recommend import similar_unit, unit_rows


@dataclass(frozen=True)
class SimilarSpec:
    """What every item-block task of one similar-items run is given."""

    model_url: str
    titles: tuple[str, str] | None  # model_blocks.titles_source of the model's training data
    target: tuple[str, str, str] | None  # RecommendationWriter.target; None: return the frame to the driver
    k: int
    listed: np.ndarray | None  # sorted item indices asked for, None: every item with factors


def run_similar_items(cfg: SimilarItemsConfig, engine: EngineConfig = EngineConfig()) -> dict[str, Any]:
    if not cfg.model or not cfg.out:
        raise DataError("similar-items needs --model DIR and --out URL")
    saved = SavedModel(cfg.model)
    if saved.n_factors == 0:
        raise DataError(f"{cfg.model}: a {saved.kind!r} model has no item factors to compare")
    multi_process = engine.name != "inprocess"
    if multi_process and str(cfg.model).startswith("memory://"):
        raise DataError(f"{cfg.model}: a memory:// model is in this process alone, and the {engine.name} engine's "
                        "workers read it themselves; save it to a path or object store, or use --engine inprocess")
    listed = None
    if cfg.items:
        item_ids = saved.ids("item")
        asked = read_ids(cfg.items, item_ids.dtype.kind in "iu", "item")
        idx = lookup(item_ids, asked)
        if (idx < 0).any():
            raise DataError(f"{cfg.items}: item id {asked[np.flatnonzero(idx < 0)[0]]!r} is not in the model")
        listed = np.unique(idx)
        del item_ids
    n_items = saved.n_rows["item"]
    writer = RecommendationWriter(cfg.out, partition="item_block")
    spec = SimilarSpec(saved.url, titles_source(saved.config.get("train_data", "")),
                       None if str(cfg.out).startswith("memory://") and multi_process else writer.target,
                       cfg.k, listed)
    try:
        with make_executor(engine) as ex:
            n_blocks = max(-(-n_items // cfg.block_items), 2 * ex.n_workers)
            ex.load_blocks("item", rows_only_block,
                           [(b, lo, hi) for b, (lo, hi) in enumerate(block_bounds(n_items, n_blocks))])
            width = _similarity_width(saved)
            ex.new_sharded("unit", "item", width + 1, similarity_rows, (saved.url,))
            asked = n_items if listed is None else len(listed)
            with progress.bar(f"similar items for {'every item with factors' if listed is None else asked}, "
                              f"top {cfg.k}", n_blocks):
                results = ex.map_blocks("item", similar_part, "unit", "unit", (spec, ex.task_threads))
        for block, result in enumerate(results):
            part = result["part"]
            if isinstance(part, pd.DataFrame):  # a memory:// output: the driver writes what the task returned
                part = write_part(writer.target, block, part)
            if part is not None:
                writer.add_parts([part])
        return writer.publish({"model": str(cfg.model), "k": cfg.k, "items": int(sum(r["items"] for r in results))})
    except BaseException:
        writer.abort()
        raise


def _similarity_width(saved: SavedModel) -> int:
    """How many factor columns similar-items compares (``ALSModel.similarity_matrix``)."""
    posterior = saved.config.get("posterior")
    if posterior is not None:
        return int(posterior["samples"]) * int(posterior["rank"])
    return saved.n_cols("item") - 1


def similarity_rows(lo: int, hi: int, url: str) -> np.ndarray:
    """Sharded-matrix init: ``unit_rows`` of rows lo..hi-1 of the model's similarity matrix (its factor
    columns alone: bpmf's side-by-side sample factors, not its bias samples)."""
    saved = SavedModel(url)
    rows = saved.rows("item", lo, hi)
    width = _similarity_width(saved)
    return unit_rows(np.hstack([rows[:, :width], rows[:, -1:]]))


def similar_part(block: InBlock, unit: np.ndarray, own: np.ndarray, spec: SimilarSpec,
                 threads: int) -> dict[str, Any]:
    """Map task: the similar items of one block's items (those listed, or every one with factors), written as
    its part where it runs. Returns the part's record (or, for a driver-only output, the frame) and how many
    items it covers."""
    set_threads(threads)
    if spec.listed is None:
        chunk = block.lo + np.flatnonzero(own[:, -1] > 0)
    else:
        chunk = spec.listed[(spec.listed >= block.lo) & (spec.listed < block.hi)]
    if not len(chunk):
        return {"part": None, "items": 0}
    found, scores = similar_unit(np.ascontiguousarray(unit[:, :-1]), unit[:, -1] > 0, chunk, spec.k)
    item_ids = model_ids(spec.model_url, "item")
    filled = found >= 0
    rows = np.nonzero(filled)
    frame = pd.DataFrame({
        "item_id": item_ids[chunk[rows[0]]],
        "rank": (rows[1] + 1).astype(np.int16),
        "similar_item_id": item_ids[found[filled]],
        "score": scores[filled],
        "title": titles(spec.titles, len(item_ids))[found[filled]],
    })
    part = frame if spec.target is None else write_part(spec.target, block.block_id, frame)
    return {"part": part, "items": int(len(chunk))}
