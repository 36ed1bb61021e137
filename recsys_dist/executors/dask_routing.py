"""Routed sending for the Dask engine's half-steps (Spark ALS's OutBlock/InBlock): each group of dst blocks
(the blocks one worker holds) receives from each src block only the rows its ratings read, not the whole
matrix a broadcast sends.

Built once per (dst side, src side), at the first half-step that needs it:

- per group, the sorted src rows its blocks read, cut by the src blocks (``needed_rows``: one array of
  block-local row numbers per src block);
- per dst block, a copy whose ratings index those rows' positions in the group's compact matrix
  (``localize``), so the kernels run unchanged on a matrix of only the rows read.

Each half-step then runs, per group and remote src block, ``take_rows`` where the src rows live (the "send"),
and per group ``assemble`` of what was sent (and of its own worker's src blocks) into the compact matrix, on
the group's worker. The kernels
read the same row values in the same order as from the broadcast matrix, so both modes give the same model.
The tables are tasks like any other: a worker lost takes them with it and Dask rebuilds them from the blocks.

``choose`` is the cost model: bytes the busiest worker receives per half-step (remote rows x (k + 1) x 4),
broadcast against routed; routed is chosen when it receives at most ``ROUTED_SHARE`` of broadcast's bytes
(below that its extra tasks -- groups x src blocks per half-step -- cost less than the bytes saved).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from recsys_dist.executors.dask_tasks import rows_of

ROUTED_SHARE = 0.75
MODES = ("auto", "broadcast", "routed")


def needed_rows(edges: np.ndarray, *blocks: Any) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """(the sorted global src rows ``blocks`` read, one array of block-local row numbers per src block whose
    rows start at ``edges[b]`` (the last edge is the src row count))."""
    rows = np.unique(np.concatenate([np.asarray(block.indices, np.int64) for block in blocks])) if blocks else \
        np.zeros(0, np.int64)
    cuts = np.searchsorted(rows, edges)
    return rows, tuple((rows[cuts[b]:cuts[b + 1]] - edges[b]).astype(np.int64) for b in range(len(edges) - 1))


def pick(needed: tuple[np.ndarray, tuple[np.ndarray, ...]], src_block: int) -> np.ndarray:
    return needed[1][src_block]


def counts(needed: tuple[np.ndarray, tuple[np.ndarray, ...]]) -> list[int]:
    return [len(local) for local in needed[1]]


def localize(block: Any, needed: tuple[np.ndarray, tuple[np.ndarray, ...]]) -> Any:
    """``block`` with each rating's src index replaced by that row's position in the group's compact matrix."""
    return dataclasses.replace(block, indices=np.searchsorted(needed[0], block.indices).astype(np.int32))


def take_rows(part: Any, local: np.ndarray) -> np.ndarray:
    """The rows of one src block that one group reads (the routed "send", run where the rows live)."""
    return rows_of(part)[local]


def assemble(*pieces: Any) -> np.ndarray:
    """A group's compact src matrix from its pieces in src block order: rows a remote block sent (``take_rows``),
    or (rows, local) of a block on the group's own worker, picked here without a send task."""
    return np.concatenate([rows_of(piece[0])[piece[1]] if isinstance(piece, tuple) else piece for piece in pieces])


def choose(mode: str, src_bounds: list[tuple[int, int]], src_group: list[int], reads: dict[int, list[int]],
           width: int) -> tuple[str, dict[str, float]]:
    """The mode to use (``mode`` unless it is ``auto``) and the bytes each mode makes the busiest group receive
    (and all groups together):
    ``src_group[b]`` is the group holding src block b, ``reads[g][b]`` how many of src block b's rows group g reads."""
    broadcast = [sum(hi - lo for b, (lo, hi) in enumerate(src_bounds) if src_group[b] != g) * width for g in reads]
    routed = [sum(n for b, n in enumerate(reads[g]) if src_group[b] != g) * width for g in reads]
    if mode == "auto":
        mode = "routed" if max(routed) <= ROUTED_SHARE * max(broadcast) else "broadcast"
    return mode, {"broadcast_bytes_per_worker": float(max(broadcast)), "routed_bytes_per_worker": float(max(routed)),
                  "broadcast_bytes": float(sum(broadcast)), "routed_bytes": float(sum(routed))}
