"""Module-level loader and tasks for the executor contract (importable by worker processes)."""

import numpy as np

from recsys_dist.blocking import build_in_block
from recsys_dist.errors import FitError


def toy_block(block_id, lo, hi):
    dst = np.repeat(np.arange(lo, hi), 2)
    src = np.tile([0, 1], hi - lo)
    return build_in_block(block_id, lo, hi, dst, src, np.ones(len(dst), np.float32) * block_id)


def spread_block(block_id, lo, hi, n_src):
    """Dst row r reads src rows r and r + 1 (mod ``n_src``), value 1: a worker's blocks read some src rows,
    not all, so a routed half-step's matrix differs from the broadcast one."""
    dst = np.repeat(np.arange(lo, hi), 2)
    src = (dst + np.tile([0, 1], hi - lo)) % n_src
    return build_in_block(block_id, lo, hi, dst, src, np.ones(len(dst), np.float32))


def slow_toy_block(block_id, lo, hi, seconds):
    """``toy_block`` after ``seconds``: a slow loader keeps its worker busy while the others could take more."""
    import time

    time.sleep(seconds)
    return toy_block(block_id, lo, hi)


def sum_task(block, src, prev, scale):
    """Each dst row gets scale * (its values' sum + the column sums of the src rows its block reads) (+ its
    previous value when warm-started); stats: block id and nnz. (A half-step task reads src only at its
    block's indices: a routed engine sends it only those rows.)"""
    rows = np.zeros((block.hi - block.lo, src.shape[1]), np.float32)
    sums = np.add.reduceat(block.values, block.indptr[:-1]) if block.nnz else 0
    rows[:] = scale * (np.asarray(sums)[:, None] + src[np.unique(block.indices)].sum(axis=0)[None, :])
    if prev is not None:
        rows += prev
    return rows, np.array([block.block_id, block.nnz], np.float64)


def failing_task(block, src, prev, scale):
    raise FitError(f"block {block.block_id} failed on purpose")


def describe_task(block, src, own, offset):
    """A read-only task: the block's range, its values' sum, src's sum and its own rows (+ offset)."""
    return block.lo, block.hi, float(block.values.sum()), float(src.sum()), None if own is None else own + offset


def own_rows_task(block, src, own, offset):
    """A reduction-style task without a broadcast: src must be None; returns its own rows' sum + offset."""
    assert src is None
    return float(own.sum()) + offset


def stratum_task(block, own, other, stratum, scale):
    """A stratified update: own rows += scale; the other rows of ``stratum`` (its index) get the block id."""
    idx = np.array([stratum], np.int64)
    rows = np.full((1, other.shape[1]), block.block_id, np.float32)
    return own + scale, idx, rows, np.array([block.block_id, float(other[stratum].sum())], np.float64)


def killed_task(block, src, prev, scale):
    """The worker process is killed mid-task (as the OOM killer or `kill -9` would)."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def ramp_rows(lo, hi, n_cols):
    """Sharded-matrix init: row r is r + 0.5 in every column (rows from their index alone)."""
    return np.repeat(np.arange(lo, hi, dtype=np.float32)[:, None] + 0.5, n_cols, axis=1)


def third_rows(lo, hi, n_cols):
    """Sharded-matrix init: row r is (r + 1) / 3 in every column (not a float16 value: rounding shows)."""
    return np.repeat((np.arange(lo, hi, dtype=np.float32)[:, None] + 1) / 3, n_cols, axis=1)


def rounded_third_rows(lo, hi, n_cols):
    """``third_rows`` rounded to float16 and back."""
    return third_rows(lo, hi, n_cols).astype(np.float16).astype(np.float32)


def any_src_sum_task(block, src, prev, scale):
    """``sum_task`` over src given as float32 or as float16 bits (solve's half_src); stats end with the bytes
    per value the task was given."""
    itemsize = src.dtype.itemsize
    if src.dtype == np.uint16:
        src = src.view(np.float16).astype(np.float32)
    rows, stats = sum_task(block, src, prev, scale)
    return rows, np.append(stats, itemsize)
