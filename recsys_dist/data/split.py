"""Split a dataset into train/, test/ and (when needed) cold/ datasets.

All three keep the parent's id maps and user partitioning. Test rows whose user or item
has no rating in train cannot be scored by a factor model; they are moved to cold/
and counted, never dropped. The split directory is published atomically with a
``split.json`` summary.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow.parquet as pq

from recsys_dist.data.parquet_read import read_table
from recsys_dist.config import SplitConfig
from recsys_dist.data import split_methods as methods
from recsys_dist.data.atomic import staged_dir, write_bytes_atomic
from recsys_dist.data.dataset import Dataset, DatasetWriter, Ratings
from recsys_dist.data.predefined import predefined_parts
from recsys_dist.errors import DataError

SUMMARY = "split.json"
PARTS = ("train", "test", "cold")


def split(cfg: SplitConfig) -> dict[str, Any]:
    """Run a split as configured; return the summary written to ``split.json``."""
    if not cfg.out:
        raise DataError("no output directory: pass --out DIR")
    started = time.perf_counter()
    ds = Dataset.open(cfg.data)
    with staged_dir(cfg.out, replaceable=(SUMMARY,)) as stage:
        pending = stage / "_pending"
        pending.mkdir()
        train = DatasetWriter(stage / "train", ds.n_users, ds.n_items, ds.n_blocks)
        if cfg.method in ("folds", "predefined"):
            _write_predefined(cfg, ds, train, pending)
        else:
            _write_by_rule(ds, _rule(cfg, ds), train, pending)
        counts = _write_test_and_cold(ds, train, stage, pending, _meta(cfg, ds))
        shutil.rmtree(pending)
        summary = {"method": cfg.method, "data": str(cfg.data), "config": _settings(cfg), "counts": counts,
                   "seconds": round(time.perf_counter() - started, 3)}
        write_bytes_atomic(stage / SUMMARY, (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def _rule(cfg: SplitConfig, ds: Dataset) -> Callable[[Ratings], np.ndarray]:
    if cfg.method == "random":
        return lambda r: methods.random_holdout(r, cfg.test_fraction, cfg.seed)
    if cfg.method == "temporal":
        cutoff = methods.parse_cutoff(cfg.cutoff) if cfg.cutoff else _time_quantile(ds, 1.0 - cfg.test_fraction)
        return lambda r: methods.temporal(r, cutoff)
    if cfg.method == "last-k":
        return lambda r: methods.last_k(r, cfg.k)
    if cfg.method in ("cold-items", "cold-users"):
        users = cfg.method == "cold-users"
        chosen = methods.chosen_rows(ds.n_users if users else ds.n_items, cfg.fraction, cfg.seed, 1 + users)
        return lambda r: methods.cold_holdout(r, chosen, users, cfg.test_fraction, cfg.seed)
    return lambda r: methods.kfold(r, cfg.n_folds, int(cfg.fold), cfg.seed)


def _time_quantile(ds: Dataset, q: float) -> int:
    if not ds.manifest.get("has_timestamp", True):
        raise DataError(f"{ds.url}: a temporal split needs timestamps, and this dataset has none")
    ts = np.concatenate([r.timestamp for _, r in ds.iter_blocks()])
    return int(np.quantile(ts, q, method="higher"))


def _write_by_rule(ds: Dataset, is_test: Callable[[Ratings], np.ndarray], train: DatasetWriter, pending: Path) -> None:
    for block, ratings in ds.iter_blocks():
        mask = is_test(ratings)
        train.write_block(block, ratings.take(np.flatnonzero(~mask)))
        pq.write_table(ratings.take(np.flatnonzero(mask)).to_table(), pending / f"{block:05d}.parquet")


def _write_predefined(cfg: SplitConfig, ds: Dataset, train: DatasetWriter, pending: Path) -> None:
    train_rows, test_rows = predefined_parts(cfg, ds)
    for block in range(ds.n_blocks):
        lo, hi = block * ds.block_size, (block + 1) * ds.block_size
        for rows, sink in ((train_rows, None), (test_rows, pending / f"{block:05d}.parquet")):
            a, b = np.searchsorted(rows.user_idx, [lo, hi])
            part = rows.take(np.arange(a, b))
            if sink is None:
                train.write_block(block, part)
            else:
                pq.write_table(part.to_table(), sink)


def _write_test_and_cold(ds: Dataset, train: DatasetWriter, stage: Path, pending: Path, meta: dict[str, Any]) -> dict:
    seen_user = np.zeros(ds.n_users, dtype=bool)
    seen_item = np.zeros(ds.n_items, dtype=bool)
    for block in range(train.n_blocks):
        part = Ratings.from_table(read_table(train.root / train.block_path(block)))
        seen_user[part.user_idx] = True
        seen_item[part.item_idx] = True
    writers = {name: DatasetWriter(stage / name, ds.n_users, ds.n_items, ds.n_blocks) for name in ("test", "cold")}
    cold_users: set[int] = set()
    cold_items: set[int] = set()
    for block in range(ds.n_blocks):
        rows = Ratings.from_table(read_table(pending / f"{block:05d}.parquet"))
        cold = ~seen_user[rows.user_idx] | ~seen_item[rows.item_idx]
        writers["test"].write_block(block, rows.take(np.flatnonzero(~cold)))
        writers["cold"].write_block(block, rows.take(np.flatnonzero(cold)))
        cold_users.update(rows.user_idx[~seen_user[rows.user_idx]].tolist())
        cold_items.update(rows.item_idx[~seen_item[rows.item_idx]].tolist())
    counts: dict[str, Any] = {}
    extra = {"cold_users": len(cold_users), "cold_items": len(cold_items)}
    for name, writer in (("train", train), *writers.items()):
        writer.copy_id_maps_from(ds)
        manifest = writer.finish({**meta, "split_part": name, "counts": extra if name == "cold" else {}})
        counts[name] = manifest["counts"]["ratings"]
    if counts["cold"] == 0:
        shutil.rmtree(stage / "cold")
    counts.update(extra)
    return counts


def _meta(cfg: SplitConfig, ds: Dataset) -> dict[str, Any]:
    parent = ds.manifest
    return {"kind": "dataset", "source": parent["source"], "rating_scale": parent["rating_scale"],
            "has_timestamp": parent.get("has_timestamp", True), "genres": parent.get("genres", []),
            "split": {"method": cfg.method, **_settings(cfg), "parent": str(cfg.data)}}


def _settings(cfg: SplitConfig) -> dict[str, Any]:
    keys = {"random": ("test_fraction", "seed"), "temporal": ("cutoff", "test_fraction"), "last-k": ("k",),
            "kfold": ("n_folds", "fold", "seed"), "folds": ("fold", "archive"), "predefined": ("train_file", "test_file"),
            "cold-items": ("fraction", "test_fraction", "seed"), "cold-users": ("fraction", "test_fraction", "seed")}
    return {k: getattr(cfg, k) for k in keys[cfg.method]}
