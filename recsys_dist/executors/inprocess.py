"""In-process executor: the reference semantics, for tests and debugging."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from recsys_dist import progress
from recsys_dist.executors.base import DriverMatrices, Loader, Task, check_rows_readable
from recsys_dist.kernels.half import half_copy


class InProcessExecutor(DriverMatrices):
    """Sharded matrices are whole arrays here too (this process is every block's home), but are read and
    written only block by block, as on the other engines."""

    name = "inprocess"
    n_workers = 1

    def __init__(self, threads: int = 0) -> None:
        self.task_threads = threads
        self.fetches = 0
        self._blocks: dict[str, list] = {}
        self._matrices: dict[str, np.ndarray] = {}
        self._sharded: dict[str, str] = {}  # sharded matrix -> the side whose bounds cut it

    def matrix(self, name: str) -> np.ndarray:
        if name in self._sharded:
            raise KeyError(f"{name!r} is a sharded matrix: read it with fetch")
        return super().matrix(name)

    def new_matrix(self, name: str, n_rows: int, n_cols: int) -> np.ndarray:
        self._sharded.pop(name, None)
        return super().new_matrix(name, n_rows, n_cols)

    def new_sharded(self, name: str, side: str, n_cols: int, init: Callable[..., np.ndarray] | None = None,
                    params: tuple = ()) -> None:
        blocks = self._blocks[side]
        matrix = np.zeros((blocks[-1].hi if blocks else 0, n_cols), np.float32)
        if init is not None:
            for block in blocks:
                matrix[block.lo:block.hi] = init(block.lo, block.hi, *params)
        self._matrices[name], self._sharded[name] = matrix, side

    def fetch(self, name: str) -> np.ndarray:
        self.fetches += 1
        return self._matrices[name].copy()

    def _own_rows(self, side: str, name: str) -> None:
        if name in self._sharded:
            bounds = {s: [(b.lo, b.hi) for b in self._blocks[s]] for s in {side, self._sharded[name]}}
            check_rows_readable(self._sharded[name], side, bounds, name)

    def load_blocks(self, side: str, loader: Loader, args: Sequence[tuple]) -> list[np.ndarray]:
        self._blocks[side] = []
        for a in args:
            self._blocks[side].append(loader(*a))
            progress.advance()
        return [b.row_counts() for b in self._blocks[side]]

    def shuffle_blocks(self, side: str, source: str, split: Callable[..., Any], split_args: tuple,
                       build: Loader, args: Sequence[tuple]) -> list[np.ndarray]:
        splits = [split(block, *split_args) for block in self._blocks[source]]
        self._blocks[side] = []
        for j, a in enumerate(args):
            pieces = [tuple(array[offsets[j]:offsets[j + 1]] for array in arrays) for arrays, offsets in splits]
            self._blocks[side].append(build(*a, pieces))
            progress.advance()
        return [b.row_counts() for b in self._blocks[side]]

    def solve(self, side: str, task: Task, src: str, out: str, params: tuple,
              with_prev: bool = False, half_src: bool = False) -> list[np.ndarray]:
        self._own_rows(side, out)
        matrix = half_copy(self._matrices[src]) if half_src else self._matrices[src]
        stats = []
        for block in self._blocks[side]:
            prev = self._matrices[out][block.lo:block.hi] if with_prev else None
            rows, block_stats = task(block, matrix, prev, *params)
            self._matrices[out][block.lo:block.hi] = rows
            stats.append(block_stats)
            progress.advance()
        return stats

    def map_blocks(self, side: str, task: Callable[..., Any], src: str | None, rows: str | None,
                   params: tuple, per_block: Sequence[tuple] = ()) -> list[Any]:
        if rows is not None:
            self._own_rows(side, rows)
        results = []
        for block, extra in zip(self._blocks[side], list(per_block) or [()] * len(self._blocks[side])):
            own = None if rows is None else self._matrices[rows][block.lo:block.hi]
            results.append(task(block, None if src is None else self._matrices[src], own, *extra, *params))
            progress.advance()
        return results

    def update_strata(self, side: str, task: Callable[..., Any], own: str, other: str, params: tuple,
                      per_block: Sequence[tuple]) -> list[np.ndarray]:
        stats = []
        for block, extra in zip(self._blocks[side], per_block):
            rows, other_idx, other_rows, block_stats = task(block, self._matrices[own][block.lo:block.hi].copy(),
                                                            self._matrices[other], *extra, *params)
            self._matrices[own][block.lo:block.hi] = rows
            self._matrices[other][other_idx] = other_rows
            stats.append(block_stats)
            progress.advance()
        return stats

    def memory_limit(self) -> int | None:
        return None

    def describe(self) -> str:
        return f"inprocess ({self.task_threads or 'all'} kernel threads)"

    def close(self) -> None:
        self._blocks.clear()

    def __enter__(self) -> InProcessExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
