"""Running a block's row kernel on several threads, without a Numba ``parallel=True`` wrapper.

The ALS half-step kernels are plain cached ``nogil`` functions over a range of rows (``rows_fn(lo, hi,
*args, *scratch)``). A ``prange`` wrapper around them could not be cached safely (loaded from Numba's
cache it rounded differently from a fresh compile, numba#10617; the implicit Cholesky path, BPMF's
draws and genre ALS's solve are still cached ``prange`` kernels), so every process compiled it afresh:
about 4 s per kernel per process (every job, every pool process, every Dask worker). Here the caller's
thread and ``threads - 1`` helpers instead take contiguous ranges of rows, of about equal rating counts,
from a shared counter, each with its own scratch buffers. A row's result depends only on its inputs,
never on which thread solved it, so any thread count gives the same bits.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numba
import numpy as np

_local = threading.local()


def set_threads(n: int) -> None:
    """Threads for this thread's kernel calls; 0 keeps the current setting (at first, every core Numba sees).
    Also sets Numba's own per-thread count, which the ``prange`` kernels (top-K, predictions) use."""
    if n > 0:
        n = min(n, numba.config.NUMBA_NUM_THREADS)
        _local.threads = n
        numba.set_num_threads(n)


def get_threads() -> int:
    return getattr(_local, "threads", numba.config.NUMBA_NUM_THREADS)


RANGES_PER_THREAD = 8  # ranges taken from the counter: enough that one heavy range does not leave a core idle


def run_rows(rows_fn: Callable[..., Any], indptr: np.ndarray, args: tuple, scratch: Callable[[], tuple]) -> None:
    """``rows_fn(lo, hi, *args, *scratch())`` over all rows of ``indptr`` (CSR offsets, n_rows + 1), on
    ``get_threads()`` threads, each with its own ``scratch()``; the first exception raised is re-raised."""
    n_rows = len(indptr) - 1
    threads = min(get_threads(), max(n_rows // 64, 1))
    if threads <= 1:
        rows_fn(0, n_rows, *args, *scratch())
        return
    # range ends at equal shares of the ratings (plus one per row, so rows without ratings count too)
    cost = indptr.astype(np.int64) + np.arange(n_rows + 1)
    marks = np.linspace(0, cost[-1], threads * RANGES_PER_THREAD + 1)[1:-1]
    ends = np.unique(np.concatenate([[0], np.searchsorted(cost, marks), [n_rows]]))
    ranges = list(zip(ends[:-1].tolist(), ends[1:].tolist()))
    lock, taken, errors = threading.Lock(), [0], []

    def work() -> None:
        buffers = scratch()
        while not errors:
            with lock:
                i = taken[0]
                taken[0] += 1
            if i >= len(ranges):
                return
            try:
                rows_fn(ranges[i][0], ranges[i][1], *args, *buffers)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                errors.append(exc)

    helpers = [threading.Thread(target=work, daemon=True) for _ in range(threads - 1)]
    for t in helpers:
        t.start()
    work()
    for t in helpers:
        t.join()
    if errors:
        raise errors[0]
