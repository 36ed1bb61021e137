"""Ingest: raw ratings (any supported source and format) -> a dataset directory.

Ingest streams in three passes so memory is bounded by a chunk and a block, not by
the input:

1. parse chunks, validate them, collect the distinct user and item ids and spill the
   rows (raw ids plus a sequence number) to one Parquet file;
2. with the id maps now known, map ids to dense indices and spill each row to the file
   of its user block;
3. per user block: drop duplicate (user, item) pairs keeping the latest timestamp (the
   later line on ties), sort by (user, item) and write the block.

Everything is built in a staging directory and published with the manifest last, so a
failed or interrupted ingest leaves no dataset behind and an older one intact.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_dist.data.parquet_read import read_table
from recsys_dist.config import IngestConfig
from recsys_dist.data.atomic import staged_dir
from recsys_dist.data.dataset import DatasetWriter, Ratings, default_block_count, empty_ratings, sort_dedup
from recsys_dist.data.formats import RatingScale, detect_format, generic_layout
from recsys_dist.data.ids import IdIndex, UniqueAccumulator
from recsys_dist.data.items import ITEM_COLUMNS, read_items
from recsys_dist.data.readers import RawChunk, iter_rating_chunks
from recsys_dist.data.sources import SHORTHANDS, Source, resolve_source
from recsys_dist.data.users import USER_COLUMNS, read_users
from recsys_dist.errors import DataError

log = logging.getLogger(__name__)


def ingest(cfg: IngestConfig) -> dict[str, Any]:
    """Run ingest as configured; return the written manifest (plus ``seconds``)."""
    if not cfg.out:
        raise DataError("no output directory: pass --out DIR")
    started = time.perf_counter()
    source = resolve_source(cfg.source, cfg.cache_dir or None)
    generic = generic_layout(cfg.user_col, cfg.item_col, cfg.rating_col, cfg.timestamp_col, cfg.delimiter,
                             cfg.id_type, parquet=cfg.format == "parquet")
    fmt = detect_format(source, cfg.format, generic)
    scale = RatingScale(*cfg.scale) if cfg.scale else fmt.scale
    log.info("ingest %s: format %s, ratings in %s", cfg.source, fmt.name, fmt.ratings_file)
    items_meta = read_items(source, fmt.name, fmt.items_file, fmt.genre_file)
    users_meta = read_users(source, fmt.name, fmt.users_file)
    chunks = iter_rating_chunks(source, fmt.ratings_file, fmt.layout, scale, cfg.chunk_mb << 20)
    meta = {
        "kind": "dataset",
        # where the input is, valid from any directory (a shorthand's cached archive), for split --method folds
        "source": {"spec": cfg.source, "location": _location(cfg.source, source), "format": fmt.name,
                   "ratings_file": source.describe(fmt.ratings_file),
                   "items_file": source.describe(fmt.items_file) if fmt.items_file else None,
                   "users_file": source.describe(fmt.users_file) if fmt.users_file else None},
        "has_timestamp": fmt.layout.timestamp is not None,
    }
    with staged_dir(cfg.out) as stage:
        manifest = build_dataset(stage, chunks, items_meta, scale, cfg.partitions, meta, users_meta)
    manifest["seconds"] = time.perf_counter() - started
    return manifest


def _location(spec: str, source: Source) -> str:
    if spec in SHORTHANDS:
        return str(Path(source.name).resolve())
    return spec if "://" in spec else str(Path(spec).resolve())


def ingest_arrays(user: np.ndarray, item: np.ndarray, rating: np.ndarray, timestamp: np.ndarray | None,
                  out: str, source: str) -> dict[str, Any]:
    """Write ratings given as arrays of raw ids (integers or strings) as a dataset at ``out`` (the
    Python API's way in: a DataFrame or sparse matrix becomes the same layout ingest writes)."""
    n = len(rating)
    if not len(user) == len(item) == n or (timestamp is not None and len(timestamp) != n):
        raise DataError(f"{source}: {len(user)} users, {len(item)} items and {n} ratings")
    rating = np.asarray(rating, np.float64)
    if n and not np.isfinite(rating).all():
        bad = int(np.flatnonzero(~np.isfinite(rating))[0])
        raise DataError(f"{source} row {bad}: rating {rating[bad]!r} is not a finite number")
    ts = np.zeros(n, np.int64) if timestamp is None else np.asarray(timestamp, np.int64)
    chunk = RawChunk(np.asarray(user), np.asarray(item), rating.astype(np.float32), ts, 1)
    meta = {"kind": "dataset", "source": {"spec": source, "format": "arrays"}, "has_timestamp": timestamp is not None}
    with staged_dir(out) as stage:
        return build_dataset(stage, [chunk], None, None, 0, meta)


def build_dataset(
    root: Path,
    chunks: Iterable[RawChunk],
    items_meta: pd.DataFrame | None,
    scale: RatingScale | None,
    n_blocks: int,
    meta: dict[str, Any],
    users_meta: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Write a dataset into ``root`` from raw chunks; see the module docstring for the passes."""
    spill = root / "_spill"
    spill.mkdir()
    try:
        users, items, observed = _spill_raw(chunks, spill / "raw.parquet")
        n_blocks = n_blocks or default_block_count(observed.rows, len(users))
        writer = DatasetWriter(root, len(users), len(items), n_blocks)
        block_files = _spill_by_block(spill / "raw.parquet", spill, users, items, writer)
        dropped = 0
        for block in range(writer.n_blocks):
            ratings, n_dropped = _dedup_sorted(block_files.get(block))
            dropped += n_dropped
            writer.write_block(block, ratings)
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    if dropped:
        log.warning("dropped %d duplicate (user, item) ratings, keeping the latest of each", dropped)
    item_frame, without_meta, unrated = _item_frame(items, items_meta)
    user_frame, without_demographics = _user_frame(users, users_meta)
    writer.write_id_maps(user_frame, item_frame)
    genres = sorted({g for gs in item_frame["genres"] for g in gs})
    meta = {
        **meta,
        "rating_scale": (scale or observed.scale()).to_mapping(),
        "genres": genres,
        "counts": {"rows_read": observed.rows, "duplicates_dropped": dropped,
                   "items_without_metadata": without_meta, "catalog_items_unrated": unrated,
                   **({"users_without_demographics": without_demographics} if users_meta is not None else {})},
    }
    return writer.finish(meta)


class _Observed:
    """Running facts about the ratings seen: count, range, and whether they sit on a star grid."""

    def __init__(self) -> None:
        self.rows, self.min, self.max = 0, np.inf, -np.inf
        self.whole = self.half = True

    def add(self, rating: np.ndarray) -> None:
        self.rows += len(rating)
        self.min, self.max = min(self.min, float(rating.min())), max(self.max, float(rating.max()))
        self.whole = self.whole and bool(np.all(rating == np.round(rating)))
        self.half = self.half and bool(np.all(rating * 2 == np.round(rating * 2)))

    def scale(self) -> RatingScale:
        return RatingScale(self.min, self.max, 1.0 if self.whole else 0.5 if self.half else None)


def _spill_raw(chunks: Iterable[RawChunk], path: Path) -> tuple[IdIndex, IdIndex, _Observed]:
    user_ids, item_ids, observed = UniqueAccumulator(), UniqueAccumulator(), _Observed()
    writer: pq.ParquetWriter | None = None
    try:
        for chunk in chunks:
            user_ids.add(chunk.user)
            item_ids.add(chunk.item)
            seq = np.arange(observed.rows, observed.rows + len(chunk), dtype=np.int64)
            observed.add(chunk.rating)
            table = pa.table({"user": chunk.user, "item": chunk.item, "rating": chunk.rating.astype(np.float32),
                              "timestamp": chunk.timestamp, "seq": seq})
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            elif table.schema != writer.schema:
                raise DataError(f"line {chunk.first_line}+: id types changed within the file; set ingest.id_type")
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise DataError("no ratings (empty input)")
    return IdIndex(user_ids.values()), IdIndex(item_ids.values()), observed


_BLOCK_SPILL_SCHEMA = pa.schema([("user_idx", pa.int32()), ("item_idx", pa.int32()), ("rating", pa.float32()),
                                 ("timestamp", pa.int64()), ("seq", pa.int64())])


def _spill_by_block(raw: Path, spill: Path, users: IdIndex, items: IdIndex, writer: DatasetWriter) -> dict[int, Path]:
    writers: dict[int, pq.ParquetWriter] = {}
    paths: dict[int, Path] = {}
    try:
        for batch in pq.ParquetFile(raw).iter_batches(batch_size=1 << 21):
            u = users.to_index(_column(batch, "user"))
            i = items.to_index(_column(batch, "item"))
            block = writer.block_of(u)
            order = np.argsort(block, kind="stable")
            bounds = np.searchsorted(block[order], np.arange(writer.n_blocks + 1))
            cols = [u, i, batch.column("rating").to_numpy(), batch.column("timestamp").to_numpy(),
                    batch.column("seq").to_numpy()]
            for b in np.flatnonzero(np.diff(bounds)):
                rows = order[bounds[b]: bounds[b + 1]]
                part = pa.Table.from_arrays([pa.array(c[rows]) for c in cols], schema=_BLOCK_SPILL_SCHEMA)
                if b not in writers:
                    paths[b] = spill / f"block-{b:05d}.parquet"
                    writers[b] = pq.ParquetWriter(paths[b], _BLOCK_SPILL_SCHEMA)
                writers[b].write_table(part)
    finally:
        for w in writers.values():
            w.close()
    return {int(b): p for b, p in paths.items()}


def _column(batch: pa.RecordBatch, name: str) -> np.ndarray:
    col = batch.column(name)
    if pa.types.is_integer(col.type):
        return col.to_numpy()
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)


def _dedup_sorted(path: Path | None) -> tuple[Ratings, int]:
    """Read one block's spill and keep the latest rating of each (user, item), sorted."""
    if path is None:
        return empty_ratings(), 0
    t = read_table(path)
    u, i, r, ts, seq = (t.column(n).to_numpy() for n in _BLOCK_SPILL_SCHEMA.names)
    return sort_dedup(Ratings(u, i, r, ts), seq)


def _item_frame(items: IdIndex, meta: pd.DataFrame | None) -> tuple[pd.DataFrame, int, int]:
    """items.parquet rows for the rated items, with metadata where the items file has it."""
    frame = pd.DataFrame({"item_idx": np.arange(len(items), dtype=np.int32), "item_id": items.ids})
    if meta is None or not items.is_integer:
        frame["title"] = pd.Series([None] * len(items), dtype=object)
        frame["year"] = pd.array([None] * len(items), dtype="Int16")
        frame["genres"] = [[] for _ in range(len(items))]
        return frame, len(items) if meta is not None else 0, 0
    merged = frame.merge(meta, on="item_id", how="left", validate="one_to_one")
    missing = merged["title"].isna()
    merged["genres"] = [g if isinstance(g, list) else [] for g in merged["genres"]]
    unrated = int((~meta["item_id"].isin(items.ids)).sum())
    return merged[["item_idx", *ITEM_COLUMNS]], int(missing.sum()), unrated


def _user_frame(users: IdIndex, meta: pd.DataFrame | None) -> tuple[pd.DataFrame, int]:
    """users.parquet rows, with the user file's demographics (nulls for users it does not list) when the
    source has one; and how many rated users it does not list."""
    frame = pd.DataFrame({"user_idx": np.arange(len(users), dtype=np.int32), "user_id": users.ids})
    if meta is None or not users.is_integer:
        return frame, len(users) if meta is not None else 0
    merged = frame.merge(meta, on="user_id", how="left", validate="one_to_one")
    return merged[["user_idx", *USER_COLUMNS]], int(merged["gender"].isna().sum())


def read_raw_ratings(spec: str, cfg: IngestConfig = IngestConfig()) -> RawChunk:
    """A small ratings file (fold-in input, a test file) read whole, with raw ids, in any ingest format;
    bad lines raise DataError naming the file and line as in ingest."""
    source = resolve_source(spec, cfg.cache_dir or None)
    generic = generic_layout(cfg.user_col, cfg.item_col, cfg.rating_col, "", cfg.delimiter, cfg.id_type,
                             parquet=cfg.format == "parquet")
    fmt = detect_format(source, cfg.format, generic)
    chunks = list(iter_rating_chunks(source, fmt.ratings_file, fmt.layout, RatingScale(*cfg.scale) if cfg.scale else None))
    return RawChunk(*(np.concatenate([getattr(c, f) for c in chunks]) for f in ("user", "item", "rating", "timestamp")),
                    first_line=chunks[0].first_line)
