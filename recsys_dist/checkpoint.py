"""Saving and loading models and training checkpoints to any fsspec URL.

A model directory is complete only when ``model.json`` exists: it is written last and
lists the SHA-256 of every other file, and a rewrite removes it first, so a crash mid-save
never leaves something that loads as a model. Checkpoints follow the same rule with
``state.json`` inside ``checkpoints/iter-NNNNN/``; the last ``keep`` are kept.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_dist.data.parquet_read import read_table
from recsys_dist.errors import CheckpointError
from recsys_dist.model import ALSModel

MODEL_FILE = "model.json"
STATE_FILE = "state.json"
FORMAT_VERSION = 1


def _fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, root = fsspec.core.url_to_fs(str(url))
    return fs, root.rstrip("/")


def _put(fs: fsspec.AbstractFileSystem, path: str, data: bytes | memoryview) -> str:
    tmp = f"{path}.tmp"
    try:
        with fs.open(tmp, "wb") as fh:
            fh.write(data)
        fs.mv(tmp, path)
    except OSError as exc:  # e.g. a full disk: leave no half-written file behind, say which output failed
        try:
            fs.rm(tmp)
        except OSError:
            pass
        raise CheckpointError(f"{path}: cannot write {len(data) / 1e6:.1f} MB ({exc.strerror or exc}); "
                              "free space there or write elsewhere") from None
    return hashlib.sha256(data).hexdigest()


def _npy(array: np.ndarray) -> memoryview:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getbuffer()  # not getvalue(): no second copy of a file that can be tens of MB


def _parquet(column: str, values: np.ndarray) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({column: values}), buf)
    return buf.getvalue()


def _read(fs: fsspec.AbstractFileSystem, path: str, sha256: str | None, what: str) -> bytes:
    try:
        with fs.open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing from the {what}") from None
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise CheckpointError(f"{path}: checksum mismatch; the {what} is corrupt, retrain or restore it")
    return data


def save_model(model: ALSModel, url: str, extra: dict[str, Any] | None = None) -> None:
    fs, root = begin_model(url)
    matrices = {f"{side}_matrix.npy": _put(fs, f"{root}/{side}_matrix.npy", _npy(m))
                for side, m in (("user", model.user_matrix_), ("item", model.item_matrix_))}
    finish_model(url, model.kind, model.mu_, model.n_factors, model.user_ids_, model.item_ids_, model.config,
                 {"user": model.user_counts_, "item": model.item_counts_}, model.rating_scale_, matrices, extra)


def begin_model(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Make the model directory ``url`` and mark it incomplete (no model.json) before any file of it is written;
    an earlier model's matrix files go too (a block-written one leaves a directory of parts per matrix)."""
    fs, root = _fs(url)
    fs.makedirs(root, exist_ok=True)
    if fs.exists(f"{root}/{MODEL_FILE}"):
        fs.rm(f"{root}/{MODEL_FILE}")
    for side in ("user", "item"):
        for old in (f"{root}/{side}_matrix", f"{root}/{side}_matrix.npy"):
            if fs.exists(old):
                fs.rm(old, recursive=True)
    return fs, root


def finish_model(url: str, kind: str, mu: float, n_factors: int, user_ids: np.ndarray, item_ids: np.ndarray,
                 config: dict[str, Any], counts: dict[str, np.ndarray | None], rating_scale: tuple[float, float] | None,
                 matrix_files: dict[str, str], extra: dict[str, Any] | None = None) -> None:
    """Write the id maps and counts, then model.json (last) listing them and ``matrix_files`` (name -> SHA-256
    of each matrix file already written: ``user_matrix.npy``, or the ``write_rows_part`` parts of a model
    written block by block where its blocks live)."""
    fs, root = _fs(url)
    # made and written one at a time: at 4 M users each is tens of MB, and the client holds one at most
    files = {"user_ids.parquet": lambda: _parquet("user_id", user_ids),
             "item_ids.parquet": lambda: _parquet("item_id", item_ids),
             **{f"{side}_counts.npy": (lambda c=side_counts: _npy(np.asarray(c, np.int64)))
                for side, side_counts in counts.items() if side_counts is not None}}
    sums = {**matrix_files, **{name: _put(fs, f"{root}/{name}", make()) for name, make in files.items()}}
    meta = {"format_version": FORMAT_VERSION, "kind": kind, "mu": mu, "n_factors": n_factors,
            "n_users": len(user_ids), "n_items": len(item_ids), "config": config,
            "rating_scale": None if rating_scale is None else list(rating_scale), "files": sums, **(extra or {})}
    _put(fs, f"{root}/{MODEL_FILE}", (json.dumps(meta, indent=2) + "\n").encode())


def update_model(url: str, extra: dict[str, Any]) -> None:
    """Add ``extra``'s keys to a saved model's model.json (rewritten atomically; its files are not read)."""
    fs, root = _fs(url)
    meta = _model_meta(fs, root, url)
    _put(fs, f"{root}/{MODEL_FILE}", (json.dumps({**meta, **extra}, indent=2) + "\n").encode())


def write_json(url: str, name: str, obj: Any) -> None:
    """Write ``name`` (JSON) into the directory ``url`` atomically."""
    fs, root = _fs(url)
    fs.makedirs(root, exist_ok=True)
    _put(fs, f"{root}/{name}", (json.dumps(obj, indent=2, default=float) + "\n").encode())


def write_text(url: str, text: str) -> None:
    """Write the file ``url`` (a path or fsspec URL) atomically: a reader never sees half of it."""
    fs, path = _fs(url)  # split after resolving: memory://report.html has no parent "memory:"
    parent = fs._parent(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    _put(fs, path, text.encode())


def write_json_lines(url: str, name: str, records: list[dict[str, Any]]) -> None:
    """Write ``name`` into ``url`` as one JSON object per line, atomically (object stores cannot append)."""
    fs, root = _fs(url)
    fs.makedirs(root, exist_ok=True)
    _put(fs, f"{root}/{name}", "".join(json.dumps(r, default=float) + "\n" for r in records).encode())


def write_npy(url: str, name: str, array: np.ndarray) -> None:
    """Write ``name`` (.npy) into the directory ``url`` atomically."""
    fs, root = _fs(url)
    fs.makedirs(root, exist_ok=True)
    _put(fs, f"{root}/{name}", _npy(array))


def read_npy(url: str, name: str) -> np.ndarray | None:
    """The array ``name`` in the directory ``url``, or None when absent."""
    fs, root = _fs(url)
    try:
        with fs.open(f"{root}/{name}", "rb") as fh:
            return np.load(io.BytesIO(fh.read()), allow_pickle=False)
    except FileNotFoundError:
        return None


def read_json(url: str, name: str) -> Any:
    """The JSON file ``name`` in the directory ``url``, or None when absent."""
    fs, root = _fs(url)
    try:
        with fs.open(f"{root}/{name}", "rb") as fh:
            return json.loads(fh.read())
    except FileNotFoundError:
        return None


def read_json_lines(url: str, name: str) -> list[dict[str, Any]]:
    fs, root = _fs(url)
    try:
        with fs.open(f"{root}/{name}", "rb") as fh:
            return [json.loads(line) for line in fh.read().decode().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _model_meta(fs: fsspec.AbstractFileSystem, root: str, url: str) -> dict[str, Any]:
    try:
        with fs.open(f"{root}/{MODEL_FILE}", "rb") as fh:
            meta = json.loads(fh.read())
    except FileNotFoundError:
        raise CheckpointError(f"{url}: not a saved model (no {MODEL_FILE}); train one with `train --out`") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{url}: model format {meta.get('format_version')}, expected {FORMAT_VERSION}")
    return meta


class SavedModel:
    """A saved model as model.json describes it, its matrices unread: what a job needs to plan block tasks
    that read the rows they use where they run (``model_rows``), so no process holds a whole matrix."""

    def __init__(self, url: str) -> None:
        self.url = str(url)
        self._fs, self._root = _fs(url)
        self.meta = _model_meta(self._fs, self._root, self.url)
        self.files: dict[str, str] = self.meta["files"]
        self.kind: str = self.meta["kind"]
        self.mu = float(self.meta["mu"])
        self.config: dict[str, Any] = self.meta.get("config", {})
        self.n_rows = {"user": int(self.meta["n_users"]), "item": int(self.meta["n_items"])}
        self.n_factors = int(self.meta["n_factors"])

    def ids(self, side: str) -> np.ndarray:
        name = f"{side}_ids.parquet"
        table = read_table(io.BytesIO(_read(self._fs, f"{self._root}/{name}", self.files[name], "model")))
        values = table.column(f"{side}_id").to_numpy(zero_copy_only=False)
        return values if values.dtype.kind in "iu" else values.astype(object)

    def counts(self, side: str) -> np.ndarray | None:
        """Each row's training ratings, or None for a model saved before they were recorded."""
        name = f"{side}_counts.npy"
        if name not in self.files:
            return None
        return np.load(io.BytesIO(_read(self._fs, f"{self._root}/{name}", self.files[name], "model")),
                       allow_pickle=False)

    def rows(self, side: str, lo: int | None = None, hi: int | None = None) -> np.ndarray:
        """Rows lo..hi-1 (all when None) of the ``side`` matrix: from its one file, or the block parts covering them."""
        rows = _matrix_rows(self._fs, self._root, self.files, f"{side}_matrix", lo, hi, what="model")
        want = (self.n_rows[side] if hi is None else hi) - (lo or 0)
        if len(rows) != want:
            raise CheckpointError(f"{self.url}: the {side} matrix has {len(rows)} rows where {want} were expected "
                                  f"(its ids number {self.n_rows[side]}); the model is incomplete: train it again")
        return rows

    def n_cols(self, side: str) -> int:
        """The width of the ``side`` matrix (factors, bias and whatever a kind adds), from its first file's header."""
        name = f"{side}_matrix"
        parts = _parts(self.files, name)
        file = f"{name}.npy" if f"{name}.npy" in self.files else parts[0][2] if parts else None
        if file is None:
            raise CheckpointError(f"{self.url}: no {name} in the model")
        with self._fs.open(f"{self._root}/{file}", "rb") as fh:
            version = np.lib.format.read_magic(fh)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape = header(fh)[0]
        return int(shape[1])


def model_rows(lo: int, hi: int, url: str, side: str) -> np.ndarray:
    """Sharded-matrix init: rows lo..hi-1 of a saved model's ``side`` matrix, read where the block lives."""
    return SavedModel(url).rows(side, lo, hi)


def load_model(url: str) -> ALSModel:
    saved = SavedModel(url)
    scale = saved.meta.get("rating_scale")
    return ALSModel(saved.kind, saved.mu, saved.rows("user"), saved.rows("item"), saved.ids("user"), saved.ids("item"),
                    saved.config, saved.counts("user"), saved.counts("item"),
                    None if scale is None else tuple(float(x) for x in scale))


def save_checkpoint(url: str, iteration: int, matrices: dict[str, np.ndarray], state: dict[str, Any],
                    keep: int = 2) -> str:
    path = begin_checkpoint(url, iteration)
    fs, _ = _fs(path)
    sums = {f"{name}.npy": _put(fs, f"{_fs(path)[1]}/{name}.npy", _npy(m)) for name, m in matrices.items()}
    finish_checkpoint(url, iteration, sums, state, keep)
    return path


def begin_checkpoint(url: str, iteration: int) -> str:
    """The URL of checkpoint ``iteration``'s directory, made and marked incomplete (no state file)."""
    fs, root = _fs(url)
    path = f"{root}/checkpoints/iter-{iteration:05d}"
    fs.makedirs(path, exist_ok=True)
    if fs.exists(f"{path}/{STATE_FILE}"):
        fs.rm(f"{path}/{STATE_FILE}")
    return f"{str(url).rstrip('/')}/checkpoints/iter-{iteration:05d}"


def finish_checkpoint(url: str, iteration: int, files: dict[str, str], state: dict[str, Any], keep: int = 2) -> None:
    """Write the state file (``files``: name -> SHA-256 of each file already written), then drop old checkpoints."""
    fs, root = _fs(url)
    path = f"{root}/checkpoints/iter-{iteration:05d}"
    _put(fs, f"{path}/{STATE_FILE}", json.dumps({"iteration": iteration, "files": files, **state}).encode())
    done = _complete_checkpoints(fs, root)
    for old in done[:-keep]:
        fs.rm(f"{root}/checkpoints/{old}", recursive=True)


def write_rows_part(block: Any, _src: None, own_rows: np.ndarray, path: str, name: str) -> tuple[str, str]:
    """Map task: write the block's rows of matrix ``name`` as ``name/part-LO-HI.npy`` under the checkpoint or
    model directory ``path`` (where the block lives); return (that file name, its SHA-256) for the state file
    or model.json."""
    fs, root = _fs(path)
    fs.makedirs(f"{root}/{name}", exist_ok=True)
    file = f"{name}/part-{block.lo:010d}-{block.hi:010d}.npy"
    return file, _put(fs, f"{root}/{file}", _npy(np.ascontiguousarray(own_rows)))


def _parts(files: dict[str, str], name: str) -> list[tuple[int, int, str]]:
    """(lo, hi, file) of matrix ``name``'s block files, in row order (none for a single-file matrix)."""
    found = []
    for file in files:
        if file.startswith(f"{name}/part-") and file.endswith(".npy"):
            lo, hi = file[len(name) + 6:-4].split("-")
            found.append((int(lo), int(hi), file))
    return sorted(found)


def _matrix_rows(fs: fsspec.AbstractFileSystem, path: str, files: dict[str, str], name: str, lo: int | None = None,
                 hi: int | None = None, what: str = "checkpoint") -> np.ndarray:
    """Rows lo..hi-1 (all when None) of a checkpoint's (or model's) matrix, from its single file or the block
    files covering them."""
    def load(file: str) -> np.ndarray:
        return np.load(io.BytesIO(_read(fs, f"{path}/{file}", files[file], what)), allow_pickle=False)

    if f"{name}.npy" in files:
        return load(f"{name}.npy")[lo:hi]
    parts = _parts(files, name)
    if not parts:
        raise CheckpointError(f"{path}: no {name} matrix in the {what}")
    first, last = (parts[0][0] if lo is None else lo), (parts[-1][1] if hi is None else hi)
    pieces = [load(file)[max(first, a) - a:min(last, b) - a] for a, b, file in parts if a < last and b > first]
    return np.concatenate(pieces) if pieces else np.zeros((0, 0), np.float32)


def checkpoint_state(url: str) -> tuple[int, tuple[str, dict[str, str]], dict[str, Any]] | None:
    """(iteration, (directory URL, files), state) of the newest complete checkpoint, without reading a matrix."""
    fs, root = _fs(url)
    done = _complete_checkpoints(fs, root)
    if not done:
        return None
    state = json.loads(_read(fs, f"{root}/checkpoints/{done[-1]}/{STATE_FILE}", None, "checkpoint"))
    return int(state["iteration"]), (f"{str(url).rstrip('/')}/checkpoints/{done[-1]}", state["files"]), state


def checkpoint_rows(lo: int, hi: int, where: tuple[str, dict[str, str]], name: str) -> np.ndarray:
    """Sharded-matrix init: rows lo..hi-1 of matrix ``name`` of the checkpoint ``where`` (``checkpoint_state``'s
    directory and files), whichever block count or engine wrote it."""
    path, files = where
    fs, root = _fs(path)
    rows = _matrix_rows(fs, root, files, name, lo, hi)
    if len(rows) != hi - lo:
        raise CheckpointError(f"{path}: the {name} matrix has no rows {lo}-{hi - 1}; train into a new --out")
    return rows


def load_latest_checkpoint(url: str) -> tuple[int, dict[str, np.ndarray], dict[str, Any]] | None:
    fs, root = _fs(url)
    done = _complete_checkpoints(fs, root)
    if not done:
        return None
    path = f"{root}/checkpoints/{done[-1]}"
    state = json.loads(_read(fs, f"{path}/{STATE_FILE}", None, "checkpoint"))
    names = {file[:-4] if "/" not in file else file.split("/", 1)[0] for file in state["files"]}
    matrices = {name: _matrix_rows(fs, path, state["files"], name) for name in names}
    return int(state["iteration"]), matrices, state


def clear_training_state(url: str) -> list[str]:
    """Remove an earlier run's checkpoints and iteration log from the model directory ``url`` (only
    those: nothing else there is touched, and the model files are rewritten by the new run); return what went."""
    fs, root = _fs(url)
    removed = []
    if _complete_checkpoints(fs, root) or fs.exists(f"{root}/checkpoints"):
        fs.rm(f"{root}/checkpoints", recursive=True)
        removed.append("checkpoints/")
    if fs.exists(f"{root}/train_log.jsonl"):
        fs.rm(f"{root}/train_log.jsonl")
        removed.append("train_log.jsonl")
    return removed


def latest_checkpoint(url: str) -> str | None:
    """The URL of the newest complete checkpoint under ``url``, or None."""
    fs, root = _fs(url)
    done = _complete_checkpoints(fs, root)
    return f"{str(url).rstrip('/')}/checkpoints/{done[-1]}" if done else None


def _complete_checkpoints(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    base = f"{root}/checkpoints"
    if not fs.exists(base):
        return []
    names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(base, detail=False))
    return [n for n in names if n.startswith("iter-") and fs.exists(f"{base}/{n}/{STATE_FILE}")]
