"""Explicit ALS's conjugate-gradient row kernel for rank up to 15: CG on the row's Gram matrix, formed in registers.

``kernels.als_cg.solve_in_block_cg`` calls ``cg_rows_gram`` when the matrices have at most ``GRAM_COLS``
columns. Same system, same steps from the same start as ``kernels.als_cg._cg_rows``, but the
row's Gram matrix G = F^T F (16 x 16, zero beyond the row's columns) and b = F^T t are formed in one
pass over the ratings (``lane_gram.row_gram``), after which each CG step costs a 16 x 16 product
whatever the row's length; the squared error is t.t - 2 x.b + x.G x. Kernel only, one thread, on
jobs/bench_kernel.py's block at rank 10 (5.2 M ratings, 40 k rows), timed in one process against the
kernel of the time (the gathered rows transposed) in alternating rounds: 9.8-12.8 against 18-30 ns per
rating; rank 15 7-8.5 against 21-25 (and 17 for ``_cg_rows``); rank 5 5.6 against 13. At rank 20 a
32-lane version spilled registers (41 against 29 ns); ``_cg_rows`` takes rank 16 and up.
"""

import numpy as np
from numba import njit

from recsys_dist.kernels.cg import cg_update
from recsys_dist.kernels.lane_gram import GRAM_AHEAD, LANES, gram_times, row_gram
from recsys_dist.kernels.prefetch import prefetch_row

GRAM_COLS = LANES  # columns (rank + 1) the Gram kernel takes: one vector per Gram row
N_VECS = 7  # sol, res, p, w, the penalty, b and G x


def gram_scratch() -> tuple[np.ndarray, np.ndarray]:
    """One thread's buffers for ``cg_rows_gram``: the Gram rows [16 * 16] and the vectors [N_VECS, 16], zeroed
    (lanes beyond a row's columns must stay zero) and 64-byte aligned, so no vector load or store splits
    a cache line."""
    raw = np.zeros(LANES * LANES + N_VECS * LANES + LANES, np.float32)
    at = (-raw.ctypes.data % 64) // 4
    return raw[at:at + LANES * LANES], raw[at + LANES * LANES:at + LANES * (LANES + N_VECS)].reshape(N_VECS, LANES)


@njit(cache=True, nogil=True, fastmath=True)
def cg_rows_gram(lo, hi, indptr, indices, values, src, prev, mu, reg, bias_reg, weighted, steps, out, row_sse,
                 gram, vecs):
    """``kernels.als_cg._cg_rows`` for rows of at most GRAM_COLS columns; gram and vecs from ``gram_scratch``.
    STABLE_SUMS: the loops below either sum or store, and the intrinsics sum in a fixed order."""
    n_cols = src.shape[1]
    k = n_cols - 1
    sol, res, p, w, lam_v, b, gx = vecs[0], vecs[1], vecs[2], vecs[3], vecs[4], vecs[5], vecs[6]
    last = indptr[hi]  # prefetch within this range's ratings (the next range may run on another thread)
    for q in range(indptr[lo], min(indptr[lo] + GRAM_AHEAD, last)):
        prefetch_row(src, indices[q], n_cols)
    for r in range(lo, hi):
        start, end = indptr[r], indptr[r + 1]
        n = end - start
        if n == 0:
            out[r, :] = 0.0
            row_sse[r] = 0.0
            continue
        tt = _row_gram(gram, b, src, indices, values, start, end, last, mu, n_cols)
        scale = float(n) if weighted else 1.0
        lam = np.float32(reg * scale)
        lam_b = np.float32(bias_reg * scale)
        for c in range(n_cols):
            sol[c] = prev[r, c]
            lam_v[c] = lam if c < k else lam_b
        _gram_times(gram, sol, w, n_cols)
        for c in range(LANES):  # res = b - (G + lam) x0; zero beyond the row's columns, as every vector
            res[c] = b[c] - w[c] - lam_v[c] * sol[c]
            p[c] = res[c]
        rs = np.float32(0.0)
        for c in range(LANES):
            rs += res[c] * res[c]
        for _ in range(steps):
            if rs <= 1e-20:
                break
            _gram_times(gram, p, w, n_cols)
            for c in range(LANES):
                w[c] += lam_v[c] * p[c]
            rs = cg_update(sol, res, p, w, rs, LANES)
            if rs < 0.0:
                break
        _gram_times(gram, sol, gx, n_cols)
        xb = 0.0
        xgx = 0.0
        for c in range(n_cols):
            xb += float(sol[c]) * float(b[c])
            xgx += float(sol[c]) * float(gx[c])
        row_sse[r] = max(tt - 2.0 * xb + xgx, 0.0)  # sum_q (t_q - f_q.x)^2, in float64 from the float32 sums
        for c in range(n_cols):
            out[r, c] = sol[c]


# The intrinsics need the column count as a compile-time constant: one branch per width, taken the same
# way for every row of a call.
@njit(cache=True, nogil=True, inline='always')
def _row_gram(gram, b, src, indices, values, start, end, last, mu, n_cols):
    if n_cols == 2:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 2)
    elif n_cols == 3:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 3)
    elif n_cols == 4:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 4)
    elif n_cols == 5:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 5)
    elif n_cols == 6:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 6)
    elif n_cols == 7:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 7)
    elif n_cols == 8:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 8)
    elif n_cols == 9:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 9)
    elif n_cols == 10:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 10)
    elif n_cols == 11:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 11)
    elif n_cols == 12:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 12)
    elif n_cols == 13:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 13)
    elif n_cols == 14:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 14)
    elif n_cols == 15:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 15)
    elif n_cols == 16:
        return row_gram(gram, b, src, indices, values, start, end, last, mu, 16)
    return 0.0


@njit(cache=True, nogil=True, inline='always')
def _gram_times(gram, x, y, n_cols):
    if n_cols == 2:
        gram_times(gram, x, y, 2)
    elif n_cols == 3:
        gram_times(gram, x, y, 3)
    elif n_cols == 4:
        gram_times(gram, x, y, 4)
    elif n_cols == 5:
        gram_times(gram, x, y, 5)
    elif n_cols == 6:
        gram_times(gram, x, y, 6)
    elif n_cols == 7:
        gram_times(gram, x, y, 7)
    elif n_cols == 8:
        gram_times(gram, x, y, 8)
    elif n_cols == 9:
        gram_times(gram, x, y, 9)
    elif n_cols == 10:
        gram_times(gram, x, y, 10)
    elif n_cols == 11:
        gram_times(gram, x, y, 11)
    elif n_cols == 12:
        gram_times(gram, x, y, 12)
    elif n_cols == 13:
        gram_times(gram, x, y, 13)
    elif n_cols == 14:
        gram_times(gram, x, y, 14)
    elif n_cols == 15:
        gram_times(gram, x, y, 15)
    elif n_cols == 16:
        gram_times(gram, x, y, 16)
