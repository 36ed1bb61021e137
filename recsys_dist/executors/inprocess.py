"""In-process executor: the reference semantics, for tests and debugging."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from recsys_dist import progress
from recsys_dist.executors.base import DriverMatrices, Loader, Task


class InProcessExecutor(DriverMatrices):
    name = "inprocess"
    n_workers = 1

    def __init__(self, threads: int = 0) -> None:
        self.task_threads = threads
        self._blocks: dict[str, list] = {}
        self._matrices: dict[str, np.ndarray] = {}

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
              with_prev: bool = False) -> list[np.ndarray]:
        stats = []
        for block in self._blocks[side]:
            prev = self._matrices[out][block.lo:block.hi] if with_prev else None
            rows, block_stats = task(block, self._matrices[src], prev, *params)
            self._matrices[out][block.lo:block.hi] = rows
            stats.append(block_stats)
            progress.advance()
        return stats

    def map_blocks(self, side: str, task: Callable[..., Any], src: str | None, rows: str | None,
                   params: tuple) -> list[Any]:
        results = []
        for block in self._blocks[side]:
            own = None if rows is None else self._matrices[rows][block.lo:block.hi]
            results.append(task(block, None if src is None else self._matrices[src], own, *params))
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
