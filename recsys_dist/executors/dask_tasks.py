"""The functions the Dask executor's tasks run on the workers (module level, so they pickle by name):
a block task sized to its worker's share of the cores, the pieces of the block shuffle, the sharded rows'
making and assembly. ``dask`` (the client side) submits them."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import numpy as np

from recsys_dist.errors import FitError
from recsys_dist.executors.base import Loader, Task
from recsys_dist.kernels.half import half_copy
from recsys_dist.kernels.row_threads import set_threads


def _size_threads(threads: dict[str, int]) -> None:
    if threads:
        from distributed import get_worker

        set_threads(threads.get(get_worker().address, 1))


def _solve_remote(task: Task, block, src: np.ndarray, prev, params: tuple, threads: dict[str, int],  # noqa: ANN001, ANN202
                  extra: tuple = ()):
    _size_threads(threads)
    rows, stats = task(block, src, prev, *params)
    return block.lo, block.hi, rows, stats


def _map_remote(task: Callable[..., Any], block, src: np.ndarray, rows, params: tuple,  # noqa: ANN001
                threads: dict[str, int], extra: tuple = ()) -> Any:
    _size_threads(threads)
    return task(block, src, rows_of(rows), *extra, *params)


def _update_remote(task: Callable[..., Any], block, other: np.ndarray, own, params: tuple,  # noqa: ANN001
                   threads: dict[str, int], extra: tuple) -> tuple:
    _size_threads(threads)
    rows, other_idx, other_rows, stats = task(block, np.array(own), other, *extra, *params)
    return block.lo, block.hi, rows, other_idx, other_rows, stats


def _piece(split: tuple, j: int) -> tuple:
    # views: the split's arrays are held once however many pieces wait on this worker (a piece sent to
    # another worker is serialised as its own bytes only)
    arrays, offsets = split
    return tuple(a[offsets[j]:offsets[j + 1]] for a in arrays)


def _build(build: Loader, args: tuple, pieces: list) -> Any:
    return build(*args, pieces)


def _init_rows(init: Callable[..., np.ndarray] | None, lo: int, hi: int, n_cols: int, params: tuple,
               name: str) -> np.ndarray:
    if init is None:
        return np.zeros((hi - lo, n_cols), np.float32)
    rows = np.ascontiguousarray(init(lo, hi, *params), np.float32)
    if rows.shape != (hi - lo, n_cols):
        raise FitError(f"{name}: init made rows of shape {rows.shape} for rows {lo}-{hi - 1}, not {(hi - lo, n_cols)}")
    return rows


@dataclasses.dataclass
class Solved:
    """What a sharded half-step's block task leaves on its worker: the block's new rows (the rows future of
    the matrix from then on) and its small stats (collected by one ``_stats`` task per worker). One task
    per block, not three: a task costs the scheduler, the worker and the client CPU the kernels share."""

    rows: np.ndarray
    stats: Any

    def __sizeof__(self) -> int:  # what dask.sizeof sees: its transfer counters and memory limits count the rows
        from dask.sizeof import sizeof

        return 64 + sizeof(self.rows) + sizeof(self.stats)


def rows_of(part: Any) -> Any:
    """The rows of a sharded matrix's block future's value: a Solved's rows, or the array ``_init_rows`` made."""
    return part.rows if isinstance(part, Solved) else part


def half_rows(part: Any) -> np.ndarray:
    """The float16 bits of a sharded matrix's block rows (solve's half_src), made where the rows live: each
    block is narrowed once per half-step, and every send of it is half the bytes."""
    return half_copy(rows_of(part))


def _assemble(*parts: Any) -> np.ndarray:
    """The whole src matrix on this worker, from its row blocks (the peers' fetched by Dask)."""
    return np.concatenate([rows_of(part) for part in parts])


def _solve_sharded(task: Task, block, src: np.ndarray, prev, params: tuple, threads: dict[str, int],  # noqa: ANN001
                   extra: tuple = ()) -> Solved:
    _size_threads(threads)
    return Solved(*task(block, src, rows_of(prev), *params))


def _stats(*solved: Solved) -> list:
    """The stats of one worker's blocks: a single small result for the client, the rows left in place."""
    return [s.stats for s in solved]


def _transferred(dask_worker) -> int:  # noqa: ANN001 - run by Client.run, which passes the worker
    return int(dask_worker.transfer_outgoing_bytes_total)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def kernel_threads(cores: dict[str, int], nthreads: dict[str, int]) -> dict[str, int]:
    """Kernel threads per task on each worker: the host's cores shared among all task slots on that host."""
    def host(address: str) -> str:
        return address.split("://", 1)[-1].rsplit(":", 1)[0]

    slots: dict[str, int] = {}
    for address, n in nthreads.items():
        slots[host(address)] = slots.get(host(address), 0) + n
    return {a: max(1, cores[a] // slots[host(a)]) for a in nthreads}


def _describe(block) -> tuple[int, int, np.ndarray]:  # noqa: ANN001
    return block.lo, block.hi, block.row_counts()
