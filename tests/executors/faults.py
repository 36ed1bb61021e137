"""Module-level tasks that fail in known ways, counting their attempts in files (worker processes share
no memory with the test, but they share its filesystem)."""

import os
import signal
import uuid

from tests.executors.toy import sum_task


def attempts(folder, block_id):
    """How many times a task of ``block_id`` started, as recorded under ``folder``."""
    return sum(1 for name in os.listdir(folder) if name.startswith(f"{block_id}-"))


def _record(folder, block_id):
    open(os.path.join(folder, f"{block_id}-{uuid.uuid4().hex}"), "w").close()


def raising_task(block, src, prev, folder, bad_block):
    """Block ``bad_block`` raises a ValueError every time (a deterministic error); the others sum."""
    _record(folder, block.block_id)
    if block.block_id == bad_block:
        raise ValueError(f"bad input in block {block.block_id}")
    return sum_task(block, src, prev, 1.0)


def killed_once_task(block, src, prev, folder, victim):
    """Block ``victim``'s first attempt kills its worker process (as the OOM killer or `kill -9` would);
    every other attempt sums, so a survived loss gives the undisturbed result."""
    _record(folder, block.block_id)
    if block.block_id == victim and attempts(folder, victim) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return sum_task(block, src, prev, 1.0)


def parallel_kernels_task(block, src, own, repeats):
    """Run a parallel (prange) kernel on two threads ``repeats`` times: several such tasks on one worker
    enter Numba's threading layer at the same moment."""
    import numpy as np

    from recsys_dist.kernels.als import predict_pairs
    from recsys_dist.kernels.row_threads import set_threads

    set_threads(2)
    n = 1_000_000
    idx = np.zeros(n, np.int64)
    factors = np.ones((1, 5), np.float32)
    out = np.empty(n, np.float64)
    for _ in range(repeats):
        predict_pairs(idx, idx, factors, factors, 0.5, out)
    return float(out[0])


def waits_once_task(block, src, prev, folder, victim):
    """Block ``victim``'s first attempt says so (file ``ready``) and waits for the file ``go``; then all sum."""
    import time

    _record(folder, block.block_id)
    if block.block_id == victim and attempts(folder, victim) == 1:
        open(os.path.join(folder, "ready"), "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(folder, "go")) and time.monotonic() < deadline:
            time.sleep(0.05)
    return sum_task(block, src, prev, 1.0)
