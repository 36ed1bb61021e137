"""Batch recommendations as Parquet on any fsspec URL, published atomically.

::

    OUT/_SUCCESS                                 JSON naming the published run; written last
    OUT/run-<id>/user_block=00000/part-0.parquet user_id, rank, item_id, score, title
    OUT/run-<id>/user_block=00001/part-0.parquet
    ...

The similar-items job writes the same way, with ``item_block=NNNNN`` parts of item_id, rank,
similar_item_id, score, title.

A run writes its parts under a fresh ``run-<id>/`` prefix; only when every part is written
does ``_SUCCESS`` (a single small object, so its replacement is atomic on object stores too)
switch readers to it, after which older runs are deleted. A run that dies leaves the previous
``_SUCCESS`` and the run it names untouched. Read with ``read_recommendations``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_dist.data.parquet_read import read_table
from recsys_dist.errors import DataError

SUCCESS = "_SUCCESS"


class RecommendationWriter:
    def __init__(self, url: str, partition: str = "user_block") -> None:
        self.url = str(url)
        self.partition = partition
        self.fs, root = fsspec.core.url_to_fs(self.url)
        self.root = root.rstrip("/")
        self.run = f"run-{uuid.uuid4().hex[:12]}"
        self.parts: list[dict[str, Any]] = []
        if self.fs.exists(self.root) and not self.fs.isdir(self.root):
            raise DataError(f"{self.url}: exists and is not a directory")
        for marker, what in (("manifest.json", "a dataset"), ("model.json", "a model")):
            if self.fs.exists(f"{self.root}/{marker}"):
                raise DataError(f"{self.url}: is {what} directory; write the results to a directory of their own")
        self.fs.makedirs(f"{self.root}/{self.run}", exist_ok=True)

    @property
    def target(self) -> tuple[str, str, str]:
        """Where ``write_part`` puts this run's parts: (output URL, run, partition column), for block tasks that
        write their own parts where they run; the caller hands their returned records to ``add_parts``."""
        return self.url, self.run, self.partition

    def write_block(self, block: int, frame: pd.DataFrame) -> None:
        self.add_parts([write_part(self.target, block, frame)])

    def add_parts(self, parts: list[dict[str, Any]]) -> None:
        self.parts.extend(parts)

    def publish(self, meta: dict[str, Any]) -> dict[str, Any]:
        marker = {"run": self.run, "parts": self.parts, "rows": sum(p["rows"] for p in self.parts), **meta}
        tmp = f"{self.root}/.{SUCCESS}.{self.run}"
        with self.fs.open(tmp, "wb") as fh:
            fh.write((json.dumps(marker, indent=2) + "\n").encode())
        self.fs.mv(tmp, f"{self.root}/{SUCCESS}")
        for path in self.fs.ls(self.root, detail=False):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("run-") and name != self.run:
                self.fs.rm(path, recursive=True)
        return marker

    def abort(self) -> None:
        self.fs.rm(f"{self.root}/{self.run}", recursive=True)


def write_part(target: tuple[str, str, str], block: int, frame: pd.DataFrame) -> dict[str, Any]:
    """Write ``frame`` as block ``block``'s part of the run ``target`` names (``RecommendationWriter.target``),
    in whatever process this runs; the record to pass to the writer's ``add_parts``."""
    url, run, partition = target
    fs, root = fsspec.core.url_to_fs(url)
    folder = f"{run}/{partition}={block:05d}"
    fs.makedirs(f"{root.rstrip('/')}/{folder}", exist_ok=True)
    with fs.open(f"{root.rstrip('/')}/{folder}/part-0.parquet", "wb") as fh:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), fh)
    return {"path": f"{folder}/part-0.parquet", "rows": len(frame)}


def read_recommendations(url: str) -> pd.DataFrame:
    """The published recommendations at ``url`` (every part of the run ``_SUCCESS`` names)."""
    fs, root = fsspec.core.url_to_fs(str(url))
    root = root.rstrip("/")
    try:
        with fs.open(f"{root}/{SUCCESS}", "rb") as fh:
            marker = json.loads(fh.read())
    except FileNotFoundError:
        raise DataError(f"{url}: no {SUCCESS}: nothing published here (or a run has not finished)") from None
    frames = []
    for part in marker["parts"]:
        with fs.open(f"{root}/{part['path']}", "rb") as fh:
            frames.append(read_table(fh).to_pandas())
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def read_ids(path: str, integer: bool, what: str) -> np.ndarray:
    """Ids from a text or CSV file (first column, one per line; a header line is skipped)."""
    try:
        # a local path through the plain open: it also reads a pipe (`--allow <(cut -f2 ids.tsv)`), which
        # fsspec's local files refuse (they seek)
        with (open(path) if "://" not in str(path) else fsspec.open(path, "rt")) as fh:
            lines = [(n, line.strip().split(",")[0]) for n, line in enumerate(fh, 1) if line.strip()]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file of {what} ids") from None
    if lines and integer and not lines[0][1].lstrip("-").isdigit():
        lines = lines[1:]  # a header
    if not integer:
        return np.array([v for _, v in lines], dtype=object)
    out = np.empty(len(lines), np.int64)
    for row, (n, v) in enumerate(lines):
        try:
            out[row] = int(v)
        except ValueError:
            raise DataError(f"{path} line {n}: {what} id {v!r} is not an integer, and this model's {what} ids "
                            "are integers") from None
    return out
