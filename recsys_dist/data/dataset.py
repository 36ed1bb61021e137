"""The dataset layout shared by ingest, synth, split and training.

::

    DATASET/
      manifest.json                      written last; without it the directory is not a dataset
      users.parquet                      user_idx int32, user_id (int64 or string)
      items.parquet                      item_idx int32, item_id, title, year, genres list<string>
      ratings/user_block=00000/part-0.parquet
      ratings/user_block=00001/part-0.parquet
      ...

Ratings are partitioned into contiguous ranges of ``user_idx`` (block ``b`` holds
users ``b*block_size .. (b+1)*block_size-1``) and sorted by (user_idx, item_idx) inside
each file, so one user block is read without touching the others and a CSR block can be
built from it without another sort. Every dataset of a split (train/, test/, cold/) keeps
the id maps of the dataset it came from, so indices mean the same thing in all of them.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_dist.data.parquet_read import read_table
from recsys_dist.data.atomic import MANIFEST, sha256_file, write_bytes_atomic
from recsys_dist.data.ids import IdIndex
from recsys_dist.errors import DataError

SCHEMA_VERSION = 1
RATINGS_SCHEMA = pa.schema(
    [("user_idx", pa.int32()), ("item_idx", pa.int32()), ("rating", pa.float32()), ("timestamp", pa.int64())]
)


@dataclass(frozen=True, slots=True)
class Ratings:
    """Ratings as parallel arrays (COO), indices dense."""

    user_idx: np.ndarray
    item_idx: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray

    def __len__(self) -> int:
        return len(self.rating)

    def take(self, rows: np.ndarray) -> Ratings:
        return Ratings(self.user_idx[rows], self.item_idx[rows], self.rating[rows], self.timestamp[rows])

    @classmethod
    def concat(cls, parts: list[Ratings]) -> Ratings:
        if not parts:
            return empty_ratings()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("user_idx", "item_idx", "rating", "timestamp")))

    def to_table(self) -> pa.Table:
        return pa.table(
            [
                pa.array(np.asarray(self.user_idx, np.int32)),
                pa.array(np.asarray(self.item_idx, np.int32)),
                pa.array(np.asarray(self.rating, np.float32)),
                pa.array(np.asarray(self.timestamp, np.int64)),
            ],
            schema=RATINGS_SCHEMA,
        )

    @classmethod
    def from_table(cls, table: pa.Table) -> Ratings:
        cols = [table.column(n).to_numpy() for n in RATINGS_SCHEMA.names]
        return cls(*(np.ascontiguousarray(c, dtype=t) for c, t in zip(cols, (np.int32, np.int32, np.float32, np.int64))))


def empty_ratings() -> Ratings:
    return Ratings(np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float32), np.empty(0, np.int64))


def sort_dedup(ratings: Ratings, seq: np.ndarray) -> tuple[Ratings, int]:
    """Sort by (user, item) keeping one rating per pair: the latest timestamp, then the highest ``seq``
    (the later input line). Returns the kept ratings and how many were dropped."""
    order = np.lexsort((seq, ratings.timestamp, ratings.item_idx, ratings.user_idx))
    r = ratings.take(order)
    last = np.ones(len(r), dtype=bool)
    last[:-1] = (r.user_idx[1:] != r.user_idx[:-1]) | (r.item_idx[1:] != r.item_idx[:-1])
    return (r if last.all() else r.take(np.flatnonzero(last))), int(len(r) - last.sum())


def default_block_count(n_ratings: int, n_users: int) -> int:
    """About 2M ratings a block, at least 4 blocks so small data still exercises blocking."""
    return max(1, min(n_users, max(4, math.ceil(n_ratings / 2_000_000))))


class DatasetWriter:
    """Writes one dataset directory; ``finish`` writes the manifest, which must come last."""

    def __init__(self, root: Path, n_users: int, n_items: int, n_blocks: int) -> None:
        if n_users < 1 or n_items < 1:
            raise DataError(f"{root}: a dataset needs at least one user and one item")
        self.root = Path(root)
        self.n_users, self.n_items = n_users, n_items
        self.n_blocks = max(1, min(n_blocks, n_users))
        self.block_size = math.ceil(n_users / self.n_blocks)
        self.n_blocks = math.ceil(n_users / self.block_size)
        self._blocks: dict[int, dict[str, Any]] = {}
        self._sum = 0.0
        self._min, self._max = math.inf, -math.inf
        self.root.mkdir(parents=True, exist_ok=True)

    def block_of(self, user_idx: np.ndarray) -> np.ndarray:
        return np.asarray(user_idx) // self.block_size

    @staticmethod
    def block_path(block: int) -> str:
        return f"ratings/user_block={block:05d}/part-0.parquet"

    def write_block(self, block: int, ratings: Ratings) -> None:
        """Write block ``block``; rows must lie in its user range and be sorted by (user, item)."""
        lo, hi = block * self.block_size, min((block + 1) * self.block_size, self.n_users)
        if len(ratings) and (ratings.user_idx.min() < lo or ratings.user_idx.max() >= hi):
            raise DataError(f"block {block}: user indices outside [{lo}, {hi})")
        rel = self.block_path(block)
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(ratings.to_table(), path, row_group_size=1 << 20)
        self._blocks[block] = {"block": block, "path": rel, "rows": len(ratings), "user_range": [lo, hi]}
        if len(ratings):
            self._sum += float(ratings.rating.sum(dtype=np.float64))
            self._min = min(self._min, float(ratings.rating.min()))
            self._max = max(self._max, float(ratings.rating.max()))

    def write_id_maps(self, users: pd.DataFrame, items: pd.DataFrame) -> None:
        for name, frame, n in (("users", users, self.n_users), ("items", items, self.n_items)):
            if len(frame) != n:
                raise DataError(f"{name}.parquet: {len(frame)} rows for {n} indices")
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), self.root / f"{name}.parquet")

    def copy_id_maps_from(self, source: Dataset) -> None:
        for name in ("users.parquet", "items.parquet"):
            with source.open_file(name) as src:
                (self.root / name).write_bytes(src.read())

    def finish(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Fill absent blocks with empty files, checksum everything and write the manifest."""
        for block in range(self.n_blocks):
            if block not in self._blocks:
                self.write_block(block, empty_ratings())
        n_ratings = sum(b["rows"] for b in self._blocks.values())
        files = {}
        for path in sorted(p for p in self.root.rglob("*") if p.is_file() and p.name != MANIFEST):
            rel = path.relative_to(self.root).as_posix()
            files[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **meta,
            "counts": {"ratings": n_ratings, "users": self.n_users, "items": self.n_items, **meta.get("counts", {})},
            "rating_stats": {
                "mean": self._sum / n_ratings if n_ratings else None,
                "min": self._min if n_ratings else None,
                "max": self._max if n_ratings else None,
            },
            "partitioning": {"column": "user_idx", "n_blocks": self.n_blocks, "block_size": self.block_size},
            "blocks": [self._blocks[b] for b in range(self.n_blocks)],
            "files": files,
        }
        write_bytes_atomic(self.root / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
        return manifest


def sibling_url(url: str | Path, name: str) -> str:
    """The URL of ``name`` beside ``url`` (SPLITDIR/test -> SPLITDIR/cold), for paths and fsspec URLs
    alike: ``Path`` would turn file:///x/test into file:/x/cold."""
    base = str(url).rstrip("/")
    return f"{base.rsplit('/', 1)[0]}/{name}" if "/" in base else name


def is_dataset(url: str) -> bool:
    """Whether ``url`` holds a published dataset (its manifest)."""
    fs, root = fsspec.core.url_to_fs(str(url))
    return bool(fs.exists(f"{root.rstrip('/')}/{MANIFEST}"))


def copy_dataset(src: str, dst_url: str) -> str:
    """Copy the local dataset directory ``src`` to ``dst_url`` (a path or fsspec URL), manifest last;
    return the destination as an absolute URL."""
    fs, root = fsspec.core.url_to_fs(str(dst_url))
    root = root.rstrip("/")
    files = sorted(p for p in Path(src).rglob("*") if p.is_file() and p.name != MANIFEST)
    for path in files + [Path(src) / MANIFEST]:
        target = f"{root}/{path.relative_to(src).as_posix()}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(path), target)
    return fs.unstrip_protocol(root) if "://" in str(dst_url) else str(Path(root).resolve())


class Dataset:
    """A dataset directory (local path or fsspec URL) opened through its manifest."""

    def __init__(self, url: str, manifest: dict[str, Any], fs: fsspec.AbstractFileSystem, root: str) -> None:
        self.url, self.manifest, self._fs, self._root = url, manifest, fs, root

    @classmethod
    def open(cls, url: str | Path) -> Dataset:
        url = str(url)
        fs, root = fsspec.core.url_to_fs(url)
        root = root.rstrip("/")
        manifest_path = f"{root}/{MANIFEST}"
        try:
            with fs.open(manifest_path, "rb") as fh:
                manifest = json.loads(fh.read())
        except FileNotFoundError:
            raise DataError(
                f"{url}: not a dataset (no {MANIFEST}; an interrupted job leaves none): run ingest, synth or split first"
            ) from None
        except NotADirectoryError:  # e.g. the raw ml-100k.zip given where its ingested dataset belongs
            raise DataError(f"{url}: a file, not a dataset directory; ingest it first (python -m recsys_dist ingest "
                            f"--source {url} --out DIR) and pass DIR") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"{url}/{MANIFEST}: unreadable manifest: {exc}") from None
        version = manifest.get("schema_version")
        if version != SCHEMA_VERSION:
            raise DataError(f"{url}/{MANIFEST}: schema version {version}, this recsys_dist reads {SCHEMA_VERSION}")
        return cls(url, manifest, fs, root)

    # -- sizes ------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return int(self.manifest["counts"]["users"])

    @property
    def n_items(self) -> int:
        return int(self.manifest["counts"]["items"])

    @property
    def n_ratings(self) -> int:
        return int(self.manifest["counts"]["ratings"])

    @property
    def n_blocks(self) -> int:
        return int(self.manifest["partitioning"]["n_blocks"])

    @property
    def block_size(self) -> int:
        return int(self.manifest["partitioning"]["block_size"])

    @property
    def rating_scale(self) -> tuple[float, float, float | None]:
        s = self.manifest["rating_scale"]
        return float(s["min"]), float(s["max"]), (None if s.get("step") is None else float(s["step"]))

    # -- reading ----------------------------------------------------------------------
    @property
    def absolute_url(self) -> str:
        """This dataset's location as an absolute URL (a local path made absolute), valid from any directory."""
        return self.url if "://" in self.url else str(Path(self.url).resolve())

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this data: its rating count and a digest of every file's checksum. Two folds of
        one dataset share their id maps and sizes but never this."""
        files = json.dumps(self.manifest.get("files", {}), sort_keys=True).encode()
        return {"ratings": self.n_ratings, "files_sha256": hashlib.sha256(files).hexdigest()[:16]}

    def open_file(self, rel: str):  # noqa: ANN201 - a binary file object
        return self._fs.open(f"{self._root}/{rel}", "rb")

    def read_block(self, block: int) -> Ratings:
        entry = self.manifest["blocks"][block]
        with self.open_file(entry["path"]) as fh:
            return Ratings.from_table(read_table(fh))

    def iter_blocks(self) -> Iterator[tuple[int, Ratings]]:
        for block in range(self.n_blocks):
            yield block, self.read_block(block)

    def read_user_range(self, lo: int, hi: int) -> Ratings:
        """Ratings of users lo..hi-1, reading only the blocks that overlap the range."""
        first, last = lo // self.block_size, (max(hi, lo + 1) - 1) // self.block_size
        parts = []
        for block in range(first, min(last, self.n_blocks - 1) + 1):
            part = self.read_block(block)
            keep = (part.user_idx >= lo) & (part.user_idx < hi)
            parts.append(part if keep.all() else part.take(np.flatnonzero(keep)))
        return Ratings.concat(parts)

    def read_item_range(self, lo: int, hi: int) -> Ratings:
        """Ratings of items lo..hi-1: a scan of every block, keeping one block in memory at a time."""
        parts = []
        for _, part in self.iter_blocks():
            keep = (part.item_idx >= lo) & (part.item_idx < hi)
            parts.append(part.take(np.flatnonzero(keep)))
        return Ratings.concat(parts)

    def item_counts(self, at_least: float | None = None) -> np.ndarray:
        """Ratings per item (only those >= ``at_least`` when given), reading two columns a block at a time."""
        counts = np.zeros(self.n_items, np.int64)
        for entry in self.manifest["blocks"]:
            with self.open_file(entry["path"]) as fh:
                table = read_table(fh, ["item_idx", "rating"])
            items = table.column("item_idx").to_numpy()
            if at_least is not None:
                items = items[table.column("rating").to_numpy() >= at_least]
            counts += np.bincount(items, minlength=self.n_items)
        return counts

    def rating_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Ratings per user and per item (int64), reading two columns a block at a time."""
        users, items = np.zeros(self.n_users, np.int64), np.zeros(self.n_items, np.int64)
        for entry in self.manifest["blocks"]:
            with self.open_file(entry["path"]) as fh:
                table = read_table(fh, ["user_idx", "item_idx"])
            users += np.bincount(table.column("user_idx").to_numpy(), minlength=self.n_users)
            items += np.bincount(table.column("item_idx").to_numpy(), minlength=self.n_items)
        return users, items

    def read_all(self) -> Ratings:
        return Ratings.concat([r for _, r in self.iter_blocks()])

    def read_users(self) -> pd.DataFrame:
        with self.open_file("users.parquet") as fh:
            return read_table(fh).to_pandas()

    def read_items(self) -> pd.DataFrame:
        with self.open_file("items.parquet") as fh:
            return read_table(fh).to_pandas()

    def user_index(self) -> IdIndex:
        return IdIndex(self._ids("users.parquet", "user_id"))

    def item_index(self) -> IdIndex:
        return IdIndex(self._ids("items.parquet", "item_id"))

    def _ids(self, name: str, column: str) -> np.ndarray:
        # the id column alone: items.parquet's titles and genres, read whole into pandas, were most of a
        # training client's memory on a 1 M-item catalogue
        with self.open_file(name) as fh:
            return read_table(fh, columns=[column]).column(column).to_numpy()

    def verify(self) -> None:
        """Check every file against the manifest's SHA-256; raise naming the first bad one."""
        for rel, expect in self.manifest["files"].items():
            digest = hashlib.sha256()
            try:
                with self.open_file(rel) as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(chunk)
            except FileNotFoundError:
                raise DataError(f"{self.url}/{rel}: listed in the manifest but missing") from None
            if digest.hexdigest() != expect["sha256"]:
                raise DataError(f"{self.url}/{rel}: checksum mismatch (file changed or corrupt); re-run the job that wrote it")
