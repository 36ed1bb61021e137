"""Explicit ALS's conjugate-gradient half-step over one block of destination rows (``model.solver = "cg"``).

The system is kernels/als.py's (its docstring); ``solve_in_block_cg`` takes a few conjugate-gradient
steps from the rows' current values instead of solving it exactly. STABLE_SUMS (kernels/als.py) holds
here too.
"""

import numpy as np
from numba import njit

from recsys_dist.kernels.als_gram import GRAM_COLS, cg_rows_gram, gram_scratch
from recsys_dist.kernels.cg import cg_update
from recsys_dist.kernels.lane_rows import ROWS_AHEAD, apply_rows, gather_rows, rows_sse
from recsys_dist.kernels.lanes import LANES, set_value, src_value
from recsys_dist.kernels.prefetch import prefetch_row
from recsys_dist.kernels.row_threads import run_rows


def solve_in_block_cg(indptr, indices, values, src, prev, mu, reg, bias_reg, weighted, steps, out, row_sse):
    """Like ``solve_in_block`` but with ``steps`` conjugate-gradient steps warm-started from ``prev``.

    prev float32[n_rows, K] holds the rows' current solution. Each step lowers the row's objective,
    so the ALS objective still never increases. Returns -1. Two kernels, by K:

    - K <= GRAM_COLS (rank up to 15): ``als_gram.cg_rows_gram`` forms the row's K x K Gram matrix in
      vector registers in one pass over the ratings (n K^2 flops, at 16 lanes), then runs CG on it.
    - wider: ``_cg_rows`` below never forms the normal equations: each step applies them through two
      passes over the gathered ratings (4 n K flops), so a row costs about (6 + 4 steps) n K flops
      instead of n K^2 + K^3/3. The src rows are prefetched ROWS_AHEAD ratings ahead across row
      ends; each src row is read from memory once (the gather pass also forms the starting residual
      b - A x0, and keeps each rating's target r - mu - b_j, so the squared error needs no second
      gather); the CG steps and the error run on the gathered float32 copy, which stays in L1/L2, each
      pass with its vectors and sums in registers (kernels/lane_rows.py).
    """
    longest = max(int(np.diff(indptr).max()) if len(indptr) > 1 else 0, 1)
    n_cols = src.shape[1]
    # the intrinsics read the arrays' memory directly: contiguous only (no copy where they already are)
    args = (indptr, np.ascontiguousarray(indices), np.ascontiguousarray(values), np.ascontiguousarray(src), prev, mu,
            reg, bias_reg, weighted, steps, out, row_sse)
    # one gather buffer per kernel thread, made once per call: allocating per row or range costs page
    # faults on every large row, badly so in Dask workers (their allocator maps big blocks afresh)
    if 2 <= n_cols <= GRAM_COLS:
        run_rows(cg_rows_gram, indptr, args, gram_scratch)
    else:
        # the gathered rows keep src's dtype: float16 bits from a float16 copy (lossless, and half the
        # cache a long row's buffer takes: item rows of 10^4-10^5 ratings outgrow L2 at rank 64)
        run_rows(_cg_rows, indptr, args, lambda: (np.empty((longest, n_cols - 1), src.dtype),
                                                  np.empty(longest, np.float32), np.empty((4, n_cols), np.float32)))
    return -1


@njit(cache=True, nogil=True, fastmath=True)
def _cg_rows(lo, hi, indptr, indices, values, src, prev, mu, reg, bias_reg, weighted, steps, out, row_sse, x, t,
             vecs):
    """Rows lo..hi-1 of ``solve_in_block_cg``: x [longest, k], t [longest] and vecs [4, K] are this thread's
    scratch (STABLE_SUMS: no loop both sums and stores into another array)."""
    n_cols = src.shape[1]
    k = n_cols - 1
    sol, res, p, w = vecs[0], vecs[1], vecs[2], vecs[3]
    last = indptr[hi]  # prefetch within this range's ratings (the next range may run on another thread)
    for q in range(indptr[lo], min(indptr[lo] + ROWS_AHEAD, last)):
        prefetch_row(src, indices[q], n_cols)
    for r in range(lo, hi):
        start, end = indptr[r], indptr[r + 1]
        n = end - start
        if n == 0:
            out[r, :] = 0.0
            row_sse[r] = 0.0
            continue
        for c in range(n_cols):
            sol[c] = prev[r, c]
        # one pass over the row's ratings: gather y_q, keep t_q, res = b - F^T F x0 = sum_q (t_q - f_q.x0) f_q
        _gather(x, t, res, src, indices, values, start, end, last, mu, sol)
        scale = float(n) if weighted else 1.0
        lam = np.float32(reg * scale)
        lam_b = np.float32(bias_reg * scale)
        for c in range(n_cols):
            res[c] -= (lam if c < k else lam_b) * sol[c]
            p[c] = res[c]
        rs = np.float32(0.0)
        for c in range(n_cols):
            rs += res[c] * res[c]
        for _ in range(steps):
            if rs <= 1e-20:
                break
            _apply(x, n, lam, lam_b, p, w)
            rs = cg_update(sol, res, p, w, rs, n_cols)
            if rs < 0.0:
                break
        row_sse[r] = _sse(x, t, n, sol)
        for c in range(n_cols):
            out[r, c] = sol[c]


# The lane_rows intrinsics need the vector count as a compile-time constant: one branch per count, taken the
# same way for every row of a call; rows wider than lane_rows.MAX_VECTORS vectors (rank 256) run Numba loops.
@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _gather(x, t, res, src, indices, values, start, end, last, mu, sol):
    k = src.shape[1] - 1
    n_vec = (k + LANES - 1) // LANES
    if n_vec == 1:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 1)
    elif n_vec == 2:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 2)
    elif n_vec == 3:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 3)
    elif n_vec == 4:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 4)
    elif n_vec == 5:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 5)
    elif n_vec == 6:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 6)
    elif n_vec == 7:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 7)
    elif n_vec == 8:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 8)
    elif n_vec == 9:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 9)
    elif n_vec == 10:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 10)
    elif n_vec == 11:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 11)
    elif n_vec == 12:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 12)
    elif n_vec == 13:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 13)
    elif n_vec == 14:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 14)
    elif n_vec == 15:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 15)
    elif n_vec == 16:
        gather_rows(x, t, res, src, indices, values, start, end, last, mu, sol, 16)
    else:
        for c in range(k + 1):
            res[c] = 0.0
        for pos in range(start, end):
            if pos + ROWS_AHEAD < last:
                prefetch_row(src, indices[pos + ROWS_AHEAD], k + 1)
            j = indices[pos]
            q = pos - start
            tq = np.float32(values[pos] - mu - src_value(src, j, k))
            z = sol[k]
            for c in range(k):  # loads only (STABLE_SUMS); the row is in L1 for the next loop
                z += src_value(src, j, c) * sol[c]
            t[q] = tq
            s = tq - z
            for c in range(k):
                y = src_value(src, j, c)
                set_value(x, q, c, y)
                res[c] += s * y
            res[k] += s


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _apply(x, n, lam, lam_b, p, w):
    k = x.shape[1]
    n_vec = (k + LANES - 1) // LANES
    if n_vec == 1:
        apply_rows(x, n, p, w, lam, lam_b, 1)
    elif n_vec == 2:
        apply_rows(x, n, p, w, lam, lam_b, 2)
    elif n_vec == 3:
        apply_rows(x, n, p, w, lam, lam_b, 3)
    elif n_vec == 4:
        apply_rows(x, n, p, w, lam, lam_b, 4)
    elif n_vec == 5:
        apply_rows(x, n, p, w, lam, lam_b, 5)
    elif n_vec == 6:
        apply_rows(x, n, p, w, lam, lam_b, 6)
    elif n_vec == 7:
        apply_rows(x, n, p, w, lam, lam_b, 7)
    elif n_vec == 8:
        apply_rows(x, n, p, w, lam, lam_b, 8)
    elif n_vec == 9:
        apply_rows(x, n, p, w, lam, lam_b, 9)
    elif n_vec == 10:
        apply_rows(x, n, p, w, lam, lam_b, 10)
    elif n_vec == 11:
        apply_rows(x, n, p, w, lam, lam_b, 11)
    elif n_vec == 12:
        apply_rows(x, n, p, w, lam, lam_b, 12)
    elif n_vec == 13:
        apply_rows(x, n, p, w, lam, lam_b, 13)
    elif n_vec == 14:
        apply_rows(x, n, p, w, lam, lam_b, 14)
    elif n_vec == 15:
        apply_rows(x, n, p, w, lam, lam_b, 15)
    elif n_vec == 16:
        apply_rows(x, n, p, w, lam, lam_b, 16)
    else:
        _apply32(x, n, k, lam, lam_b, p, w)


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _sse(x, t, n, sol):
    k = x.shape[1]
    n_vec = (k + LANES - 1) // LANES
    if n_vec == 1:
        return rows_sse(x, t, n, sol, 1)
    elif n_vec == 2:
        return rows_sse(x, t, n, sol, 2)
    elif n_vec == 3:
        return rows_sse(x, t, n, sol, 3)
    elif n_vec == 4:
        return rows_sse(x, t, n, sol, 4)
    elif n_vec == 5:
        return rows_sse(x, t, n, sol, 5)
    elif n_vec == 6:
        return rows_sse(x, t, n, sol, 6)
    elif n_vec == 7:
        return rows_sse(x, t, n, sol, 7)
    elif n_vec == 8:
        return rows_sse(x, t, n, sol, 8)
    elif n_vec == 9:
        return rows_sse(x, t, n, sol, 9)
    elif n_vec == 10:
        return rows_sse(x, t, n, sol, 10)
    elif n_vec == 11:
        return rows_sse(x, t, n, sol, 11)
    elif n_vec == 12:
        return rows_sse(x, t, n, sol, 12)
    elif n_vec == 13:
        return rows_sse(x, t, n, sol, 13)
    elif n_vec == 14:
        return rows_sse(x, t, n, sol, 14)
    elif n_vec == 15:
        return rows_sse(x, t, n, sol, 15)
    elif n_vec == 16:
        return rows_sse(x, t, n, sol, 16)
    sse = 0.0
    for q in range(n):
        pred = sol[k]
        for c in range(k):
            pred += sol[c] * src_value(x, q, c)
        e = float(t[q]) - float(pred)
        sse += e * e
    return sse


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _apply32(x, n, k, lam, lam_b, v, w):
    """w = (sum_q f_q f_q^T + diag(lam, ..., lam, lam_b)) v with f_q = [x[q], 1], all float32 (x: float32 or
    float16 bits): four gathered rows at a time (independent dot products, one pass over w)."""
    for c in range(k):
        w[c] = lam * v[c]
    w[k] = lam_b * v[k]
    q = 0
    while q + 4 <= n:
        z0 = v[k]
        z1 = v[k]
        z2 = v[k]
        z3 = v[k]
        for c in range(k):
            vc = v[c]
            z0 += src_value(x, q, c) * vc
            z1 += src_value(x, q + 1, c) * vc
            z2 += src_value(x, q + 2, c) * vc
            z3 += src_value(x, q + 3, c) * vc
        for c in range(k):
            w[c] += (z0 * src_value(x, q, c) + z1 * src_value(x, q + 1, c) + z2 * src_value(x, q + 2, c)
                     + z3 * src_value(x, q + 3, c))
        w[k] += z0 + z1 + z2 + z3
        q += 4
    while q < n:
        z = v[k]
        for c in range(k):
            z += src_value(x, q, c) * v[c]
        for c in range(k):
            w[c] += z * src_value(x, q, c)
        w[k] += z
        q += 1
