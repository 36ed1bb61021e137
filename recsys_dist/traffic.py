"""The traffic model of a half-step: bytes the workers must receive to see the fixed side's rows.

A half-step solves the dst blocks against the src factor rows. Where the blocks of both sides are spread
over W workers (block b on worker b mod W, as the engines spread them), a worker must receive every src row
its dst blocks read that another worker holds. Two ways to send them:

- **broadcast**: every worker receives every src block it does not hold, whether its dst blocks read the
  rows or not: (n_src - own rows) x (k+1) x 4 bytes per worker;
- **routed** (Spark's OutBlock/InBlock): each worker receives only the remote src rows that at least one of
  its dst blocks reads, once per worker (not once per dst block).

Routed never sends more, but it needs the routing tables (the src rows each worker reads, fixed at load
time) and a send task per src block per worker. It pays off when a worker's dst blocks read a small share
of the src rows: many workers and short rows (P(a user with d ratings touches a worker's items) =
1 - (1 - 1/W)^d); with few workers and long rows every worker reads nearly every row and broadcast's
simpler, larger messages win. ``half_step_traffic`` gives both figures from the blocks themselves.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

BYTES_PER_VALUE = 4  # float32 factor rows of k + 1 values


def owners(bounds: Sequence[tuple[int, int]], n_workers: int) -> np.ndarray:
    """The worker holding each row of a side whose blocks are ``bounds`` (block b on worker b mod W)."""
    owner = np.empty(bounds[-1][1] if bounds else 0, np.int32)
    for b, (lo, hi) in enumerate(bounds):
        owner[lo:hi] = b % n_workers
    return owner


def half_step_traffic(dst_reads: Sequence[np.ndarray], src_bounds: Sequence[tuple[int, int]], n_workers: int,
                      rank: int) -> dict[str, float]:
    """Bytes one half-step moves, broadcast and routed: totals over the workers and the largest worker's share.

    ``dst_reads[j]``: the src rows dst block j reads (its ratings' columns; repeats allowed); ``src_bounds``:
    the src side's blocks. Both sides' blocks are placed round-robin over ``n_workers``."""
    width = (rank + 1) * BYTES_PER_VALUE
    owner = owners(src_bounds, n_workers)
    broadcast, routed = np.zeros(n_workers), np.zeros(n_workers)
    for w in range(n_workers):
        remote = owner != w
        broadcast[w] = remote.sum() * width
        needed = np.zeros(len(owner), bool)
        for j in range(w, len(dst_reads), n_workers):
            needed[dst_reads[j]] = True
        routed[w] = (needed & remote).sum() * width
    return {"broadcast": float(broadcast.sum()), "routed": float(routed.sum()),
            "broadcast_per_worker": float(broadcast.max()), "routed_per_worker": float(routed.max())}
