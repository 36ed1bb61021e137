"""The engine interface: where per-block tasks run. Executors never know what the tasks compute.

An executor keeps two kinds of state for the driver:

- resident blocks, by side: built once by a module-level ``loader(*args) -> InBlock``
  *where they will be used* (a pool process, a Dask worker) and kept there;
- named dense matrices (one per side, [n_rows, k+1] float32), which the driver reads
  and writes through ``matrix(name)``.

``solve(side, task, src, out, params, with_prev)`` is one half-step: make matrix ``src``
available to every task (the broadcast), run ``task(block, src_matrix, prev, *params) ->
(rows, stats)`` for each resident block of ``side`` -- ``prev`` is the block's current rows
of ``out`` when ``with_prev`` is set (a warm start), else None -- write each block's
``rows`` into matrix ``out`` at its range, and return the per-block ``stats`` in block
order for the driver to reduce.

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

    def new_matrix(self, name: str, n_rows: int, n_cols: int) -> np.ndarray:
        """Allocate a zeroed float32 matrix the executor can broadcast and write into."""

    def matrix(self, name: str) -> np.ndarray: ...

    def solve(self, side: str, task: Task, src: str, out: str, params: tuple,
              with_prev: bool = False) -> list[np.ndarray]: ...

    def map_blocks(self, side: str, task: Callable[..., Any], src: str | None, rows: str | None,
                   params: tuple) -> list[Any]: ...

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
    """Factor matrices held as plain numpy arrays in the driver (in-process and Dask executors)."""

    _matrices: dict[str, np.ndarray]

    def new_matrix(self, name: str, n_rows: int, n_cols: int) -> np.ndarray:
        self._matrices[name] = np.zeros((n_rows, n_cols), np.float32)
        return self._matrices[name]

    def matrix(self, name: str) -> np.ndarray:
        return self._matrices[name]
