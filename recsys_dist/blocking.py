"""Blocks: how the ratings matrix is cut so each half-step is a map over independent tasks.

Each side (users, items) is cut into contiguous index ranges. An ``InBlock`` holds the
ratings of one range of *dst* rows in CSR form, with columns naming *global* src rows,
so solving it needs only the broadcast src matrix. A half-step maps the solver over the
dst side's InBlocks; the other half-step does the same with the roles swapped.

Worked example (Spark's ALS.scala uses the same picture): 7 users x 8 items, ratings at
users {0, 3, 6} x items {1, 4, 7}, 2 user blocks and 2 item blocks of contiguous ranges:

    user blocks: [0, 4) and [4, 7)          item blocks: [0, 4) and [4, 8)

    user InBlock 0 (dst = users 0..3)        item InBlock 1 (dst = items 4..7)
      lo = 0, hi = 4                           lo = 4, hi = 8
      indptr  = [0, 3, 3, 3, 6]                indptr  = [0, 3, 3, 3, 6]
      indices = [1, 4, 7, 1, 4, 7]             indices = [0, 3, 6, 0, 3, 6]
      (user 0 and user 3 rated 1, 4, 7)        (items 4 and 7 were rated by 0, 3, 6)

Row ``d - lo`` of a block lists the src indices rated by dst ``d``, ascending, so every
engine and every block count accumulates each row's normal equations in the same order
and gets bitwise the same solution.

Performance note: the block holds int32 columns and float32 values (8 bytes a rating
per side); the broadcast src matrix is float32 [n_src, k+1]. Building a block sorts its
ratings once; training never re-reads or re-sorts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys_dist.errors import DataError


@dataclass(frozen=True, slots=True)
class InBlock:
    """Ratings of dst rows lo..hi-1 in CSR form over global src indices."""

    block_id: int
    lo: int
    hi: int
    indptr: np.ndarray  # int64[hi - lo + 1]
    indices: np.ndarray  # int32[nnz]
    values: np.ndarray  # float32[nnz]

    def __post_init__(self) -> None:
        n = self.hi - self.lo
        if self.indptr.shape != (n + 1,) or self.indptr[0] != 0 or self.indptr[-1] != len(self.indices):
            raise DataError(f"InBlock {self.block_id}: indptr shape {self.indptr.shape} does not fit rows [{self.lo}, {self.hi})")
        if self.indices.shape != self.values.shape:
            raise DataError(f"InBlock {self.block_id}: {self.indices.shape} indices but {self.values.shape} values")

    @property
    def nnz(self) -> int:
        return len(self.indices)

    def row_counts(self) -> np.ndarray:
        return np.diff(self.indptr)


def block_bounds(n: int, n_blocks: int) -> list[tuple[int, int]]:
    """Contiguous ranges covering 0..n-1, as equal as possible."""
    n_blocks = max(1, min(n_blocks, n))
    edges = np.linspace(0, n, n_blocks + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def build_in_block(block_id: int, lo: int, hi: int, dst: np.ndarray, src: np.ndarray, values: np.ndarray) -> InBlock:
    """CSR block of dst rows lo..hi-1 from COO arrays (any order; all dst in range)."""
    if len(dst) and (dst.min() < lo or dst.max() >= hi):
        raise DataError(f"InBlock {block_id}: dst indices outside [{lo}, {hi})")
    order = _row_order(dst, src)
    counts = np.bincount(dst - lo, minlength=hi - lo) if len(dst) else np.zeros(hi - lo, np.int64)
    indptr = np.zeros(hi - lo + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return InBlock(block_id, lo, hi, indptr, np.ascontiguousarray(src[order], np.int32),
                   np.ascontiguousarray(values[order], np.float32))


def _row_order(dst: np.ndarray, src: np.ndarray) -> np.ndarray | slice:
    """The permutation sorting the ratings by (dst, src), stable: what ``np.lexsort((src, dst))`` gives, cheaper
    for the two orders blocks arrive in. Ratings read from the user-sorted Parquet are in order already; the
    pieces an item block is built from (``split_by_block``) come with src ascending, so a stable sort by dst
    (a radix sort for int32) finishes the job."""
    if len(dst) < 2:
        return slice(None)
    dst_steps, src_steps = np.diff(dst), np.diff(src)
    if (src_steps >= 0).all():
        return slice(None) if (dst_steps == 0).all() else stable_argsort(dst)
    if (dst_steps >= 0).all() and (src_steps[dst_steps == 0] >= 0).all():
        return slice(None)
    return np.lexsort((src, dst))


def stable_argsort(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")``; NumPy radix-sorts 16-bit keys (linear time) but merge-sorts wider
    ones, so a small key range is sorted as uint16 offsets."""
    low = keys.min()
    if int(keys.max()) - int(low) < 1 << 16:
        return np.argsort((keys - low).astype(np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")
