"""Write synthetic data: straight to the dataset layout, or as raw MovieLens files
(ml-100k, ml-1m or ml-csv) for exercising and benchmarking ingest. Both stream one
block of users at a time and publish atomically."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from recsys_dist.config import SynthConfig
from recsys_dist.data.atomic import MANIFEST, staged_dir, write_bytes_atomic
from recsys_dist.data.dataset import DatasetWriter, default_block_count
from recsys_dist.data.synth import GENRES, Planted, synth_meta, timed_generate
from recsys_dist.errors import ConfigError, DataError

RAW_MARKER = "SYNTH.json"  # written last in raw outputs; lets a rerun replace them


def synth(cfg: SynthConfig) -> dict[str, Any]:
    """Generate and write as configured; return the manifest (or a summary for raw formats)."""
    if not cfg.out:
        raise DataError("no output directory: pass --out DIR")
    if cfg.format in ("ml-100k", "ml-1m") and cfg.stars == "half":
        raise ConfigError(f"synth.stars: the {cfg.format} format stores whole stars only")
    planted, gen_seconds = timed_generate(cfg)
    started = time.perf_counter()
    with staged_dir(cfg.out, replaceable=(MANIFEST, RAW_MARKER)) as stage:
        if cfg.format == "dataset":
            result = _write_dataset(stage, planted, cfg, gen_seconds)
        else:
            result = _write_raw(stage, planted, cfg.format)
            result["source"] = synth_meta(cfg, planted, gen_seconds)
            write_bytes_atomic(stage / RAW_MARKER, pd.Series(result).to_json(indent=2).encode())
    result["write_seconds"] = time.perf_counter() - started
    result["generate_seconds"] = gen_seconds
    return result


def _blocks(planted: Planted, n_blocks: int) -> list[tuple[int, int]]:
    size = -(-planted.n_users // n_blocks)
    return [(lo, min(lo + size, planted.n_users)) for lo in range(0, planted.n_users, size)]


def _write_dataset(root: Path, planted: Planted, cfg: SynthConfig, gen_seconds: float) -> dict[str, Any]:
    n_blocks = cfg.partitions or default_block_count(planted.n_ratings, planted.n_users)
    writer = DatasetWriter(root, planted.n_users, planted.n_items, n_blocks)
    sq_err = 0.0
    for block in range(writer.n_blocks):
        lo, hi = block * writer.block_size, min((block + 1) * writer.block_size, planted.n_users)
        ratings, truth = planted.ratings(lo, hi)
        sq_err += float(np.sum((ratings.rating - truth) ** 2))
        writer.write_block(block, ratings)
    users = pd.DataFrame({"user_idx": np.arange(planted.n_users, dtype=np.int32),
                          "user_id": np.arange(1, planted.n_users + 1, dtype=np.int64)})
    items = planted.item_meta.copy()
    items.insert(0, "item_idx", np.arange(planted.n_items, dtype=np.int32))
    writer.write_id_maps(users, items)
    meta = {
        "kind": "dataset",
        "source": synth_meta(cfg, planted, gen_seconds),
        "has_timestamp": True,
        "rating_scale": planted.scale.to_mapping(),
        "genres": sorted(GENRES),
        "planted_rmse": (sq_err / planted.n_ratings) ** 0.5,
        "counts": {"rows_read": planted.n_ratings, "duplicates_dropped": 0},
    }
    return writer.finish(meta)


def _write_raw(root: Path, planted: Planted, fmt: str) -> dict[str, Any]:
    """Raw MovieLens files with the shape's original ids (users 1..n, sparse item ids)."""
    writers: dict[str, tuple[str, Callable[[BinaryIO, pd.DataFrame, bool], None]]] = {
        "ml-100k": ("u.data", _rows_tab),
        "ml-1m": ("ratings.dat", _rows_colons),
        "ml-csv": ("ratings.csv", _rows_csv),
    }
    name, write_rows = writers[fmt]
    n_blocks = max(1, -(-planted.n_ratings // 2_000_000))
    with open(root / name, "wb") as fh:
        for n, (lo, hi) in enumerate(_blocks(planted, n_blocks)):
            ratings, _ = planted.ratings(lo, hi)
            frame = pd.DataFrame({"user": ratings.user_idx.astype(np.int64) + 1,
                                  "item": planted.item_ids[ratings.item_idx], "rating": ratings.rating,
                                  "timestamp": ratings.timestamp})
            write_rows(fh, frame, n == 0)
    meta = planted.item_meta
    if fmt == "ml-100k":
        _write_u_item(root, meta)
    elif fmt == "ml-1m":
        lines = [f"{i}::{t}::{'|'.join(g)}" for i, t, g in zip(meta.item_id, meta.title, meta.genres)]
        (root / "movies.dat").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
        users = [f"{u}::M::25::0::00000" for u in range(1, planted.n_users + 1)]
        (root / "users.dat").write_text("\n".join(users) + "\n")
    else:
        frame = pd.DataFrame({"movieId": meta.item_id, "title": meta.title,
                              "genres": ["|".join(g) or "(no genres listed)" for g in meta.genres]})
        frame.to_csv(root / "movies.csv", index=False)
    return {"format": fmt, "counts": {"ratings": planted.n_ratings, "users": planted.n_users, "items": planted.n_items}}


def _rows_csv(fh: BinaryIO, frame: pd.DataFrame, first: bool) -> None:
    table = pa.table({"userId": frame.user, "movieId": frame.item, "rating": frame.rating.astype(np.float64),
                      "timestamp": frame.timestamp})
    if first:
        fh.write(b"userId,movieId,rating,timestamp\n")
    pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none"))


def _rows_tab(fh: BinaryIO, frame: pd.DataFrame, first: bool) -> None:
    frame = frame.assign(rating=frame.rating.astype(np.int64))
    fh.write(frame.to_csv(sep="\t", header=False, index=False).encode())


def _rows_colons(fh: BinaryIO, frame: pd.DataFrame, first: bool) -> None:
    frame = frame.assign(rating=frame.rating.astype(np.int64))
    fh.write(frame.to_csv(sep="\t", header=False, index=False).replace("\t", "::").encode())


def _write_u_item(root: Path, meta: pd.DataFrame) -> None:
    order = ("unknown",) + GENRES
    lines = []
    for item_id, title, year, genres in zip(meta.item_id, meta.title, meta.year, meta.genres):
        flags = "|".join("1" if g in genres else "0" for g in order)
        lines.append(f"{item_id}|{title}|01-Jan-{year}||http://example.invalid/{item_id}|{flags}")
    (root / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (root / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(order)) + "\n")
