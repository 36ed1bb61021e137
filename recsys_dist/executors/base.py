"""The engine interface: where per-block tasks run. Executors never know what the tasks compute.

An executor keeps three kinds of state for the driver:

- resident blocks, by side: built once by a module-level ``loader(*args) -> InBlock``
  *where they will be used* (a pool process, a Dask worker) and kept there;
- sharded matrices (the factor matrices while training), made by ``new_sharded(name, side, n_cols,
  init, params)``: cut by ``side``'s block bounds and living where that side's blocks live, each
  block's rows made there by a module-level ``init(lo, hi, *params) -> rows`` (zeros without one)
  and rewritten there by ``solve``. No engine builds one in the driver: the Dask engine keeps one
  future per block on the workers, the shared-memory engine one segment, the in-process one an array.
  ``matrix(name)`` refuses them; the driver sees them only through the (small) results of block
  tasks, or through ``fetch(name)``, the one explicit, counted, O(n k) copy of a whole matrix into
  the caller (``fetches`` counts the calls), for callers that really want it in memory;
- driver matrices (``new_matrix(name, n_rows, n_cols)``, any shape, [n_rows, n_cols] float32),
  held by the caller, which reads and writes them through ``matrix(name)`` and the executor
  broadcasts from there: for a model already in memory (scoring) and the kinds not yet sharded.

A call names either driver matrices only or sharded ones only. A task over a side may read the rows
of a matrix sharded by another side when both sides have the same bounds (test ratings are
loaded as a side blocked like the users, and read the user rows in place).

``solve(side, task, src, out, params, with_prev)`` is one half-step: make matrix ``src``
available to every task (the broadcast: for a sharded ``src`` assembled from its blocks where the tasks
run, once per worker, never through the driver), run ``task(block, src_matrix, prev, *params) ->
(rows, stats)`` for each resident block of ``side`` -- ``prev`` is the block's current rows
of ``out`` when ``with_prev`` is set (a warm start), else None -- write each block's
``rows`` into matrix ``out`` at its range, and return the per-block ``stats`` in block
order for the driver to reduce. With ``half_src`` the tasks get ``src`` as its float16 bits (uint16, for
the explicit CG kernels: kernels/half.py), made once per half-step, never by the driver from a sharded
matrix (the shared-memory engine one copy, by the pool; the Dask engine each src block where it lives,
before it is sent). A solve task reads ``src_matrix`` only at the rows its block's
``indices`` name: an engine may send it only those rows, the block re-indexed to match (the
Dask engine's routed mode, ``dask_routing``).

``map_blocks(side, task, src, rows, params)`` is the read-only twin used by scoring,
evaluation and reductions: the same broadcast of ``src`` (none when ``src`` is None),
``task(block, src_matrix, own_rows, *params)`` for each resident block -- ``own_rows`` is the
block's rows of matrix ``rows`` (or None) -- and the tasks' (small) results returned in block
order. Nothing is written. (YᵀY of a side is such a map with ``src`` None, summed by the driver.)

``update_strata(side, task, own, other, params, per_block)`` is one sub-epoch of stratified
SGD (BPR): ``task(block, own_rows, other_matrix, *per_block[b], *params) -> (rows, other_idx,
other_rows, stats)`` for each block b of ``side``; ``rows`` replace the block's rows of matrix
``own`` and ``other_rows`` the rows ``other_idx`` of matrix ``other``. The caller guarantees
that no two blocks' ``other_idx`` overlap and that a task reads only its own ``other_idx``
rows, so the order in which tasks run cannot change the result.

``shuffle_blocks(side, source, split, split_args, build, args)`` builds the blocks of ``side`` from the
resident blocks of ``source`` in one shuffle, where both live: ``split(block, *split_args) -> ((arrays...),
offsets)`` cuts each source block into one piece per new block (piece j = each array's
``offsets[j]:offsets[j + 1]``), and ``build(*args[j], pieces) -> InBlock`` builds new block j from its
pieces, given in source block order. Returns each new block's per-row rating counts, as ``load_blocks``.
The pieces are released once the blocks are built.

These two, ``load_blocks`` and ``shuffle_blocks`` call ``progress.advance()`` once per block as it finishes (in
whatever order blocks finish), which moves the console bar the driver opened around them; without
a bar it does nothing.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

import numpy as np

Loader = Callable[..., Any]
Task = Callable[..., tuple[np.ndarray, np.ndarray]]


class Executor(Protocol):
    name: str
    n_workers: int
    task_threads: int
    """Kernel threads each task should use (so workers x threads fits the cores)."""

    def load_blocks(self, side: str, loader: Loader, args: Sequence[tuple]) -> list[np.ndarray]:
        """Build and keep the blocks of ``side``; return each block's per-row rating counts. A string among a
        loader's ``args`` is the location of the dataset it reads (where the engine runs it, not here)."""

    def shuffle_blocks(self, side: str, source: str, split: Callable[..., Any], split_args: tuple,
                       build: Loader, args: Sequence[tuple]) -> list[np.ndarray]:
        """Build the blocks of ``side`` from those of ``source`` (see the module docstring)."""

    fetches: int
    """How many times ``fetch`` copied a sharded matrix into the caller."""

    def new_matrix(self, name: str, n_rows: int, n_cols: int) -> np.ndarray:
        """Allocate a zeroed float32 driver matrix the executor can broadcast and write into."""

    def matrix(self, name: str) -> np.ndarray:
        """A driver matrix itself (not a sharded one: see ``fetch``)."""

    def new_sharded(self, name: str, side: str, n_cols: int, init: Callable[..., np.ndarray] | None = None,
                    params: tuple = ()) -> None:
        """Create matrix ``name`` [rows of ``side``, n_cols] float32 sharded by ``side``'s block bounds: each
        block's rows ``init(lo, hi, *params)`` (zeros when ``init`` is None), made where the block lives."""

    def fetch(self, name: str) -> np.ndarray:
        """The whole matrix ``name`` as a new array in the caller: O(n k) bytes moved and held, counted in
        ``fetches``. Training never calls it for the sharded kinds; keep it for what must be in memory."""

    def solve(self, side: str, task: Task, src: str, out: str, params: tuple,
              with_prev: bool = False, half_src: bool = False) -> list[np.ndarray]: ...

    def map_blocks(self, side: str, task: Callable[..., Any], src: str | None, rows: str | None,
                   params: tuple, per_block: Sequence[tuple] = ()) -> list[Any]:
        """``task(block, src matrix, the block's rows of ``rows``, *extra, *params)`` for every block of
        ``side``, results in block order; ``extra`` is the block's entry of ``per_block`` (empty when not
        given): what only that block needs, so nothing the size of a side travels to every task."""

    def update_strata(self, side: str, task: Callable[..., Any], own: str, other: str, params: tuple,
                      per_block: Sequence[tuple]) -> list[np.ndarray]: ...

    def memory_limit(self) -> int | None:
        """Bytes each worker may use, where a scheduler enforces a limit; else None."""

    def describe(self) -> str:
        """One line for logs: engine, workers, addresses."""

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...


class DriverMatrices:
    """Driver matrices held as plain numpy arrays in the driver (in-process and Dask executors)."""

    _matrices: dict[str, np.ndarray]

    def new_matrix(self, name: str, n_rows: int, n_cols: int) -> np.ndarray:
        self._matrices[name] = np.zeros((n_rows, n_cols), np.float32)
        return self._matrices[name]

    def matrix(self, name: str) -> np.ndarray:
        if name not in self._matrices:
            raise KeyError(f"{name!r} is not a driver matrix (a sharded one is read with fetch)")
        return self._matrices[name]


def check_same_kind(names: Sequence[str | None], sharded: set[str] | dict) -> bool:
    """Whether the named matrices of one call are sharded (True) or driver matrices (False); never both."""
    kinds = {name in sharded for name in names if name is not None}
    if len(kinds) > 1:
        raise ValueError(f"matrices {[n for n in names if n]}: a call names sharded or driver matrices, not both")
    return kinds == {True}


def check_rows_readable(matrix_side: str, side: str, bounds: dict[str, list[tuple[int, int]]], name: str) -> None:
    """Check that a task over ``side`` may read its own rows of ``name``, sharded by ``matrix_side``."""
    if bounds.get(matrix_side) != bounds.get(side):
        raise ValueError(f"matrix {name!r} is sharded by the {matrix_side} blocks, whose bounds differ from the "
                         f"{side} blocks': load {side} with the same bounds to read its rows in place")
