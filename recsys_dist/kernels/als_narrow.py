"""Explicit ALS's conjugate-gradient row kernel for narrow factor rows (rank up to 20).

``kernels.als.solve_in_block_cg`` calls ``cg_rows_narrow`` instead of ``_cg_rows`` when the matrices
have more than ``als_gram.GRAM_COLS`` (rank 16 and up) and at most ``NARROW_COLS`` columns: same system,
same steps, but the row's gathered features are the columns of a transposed buffer, so every loop runs
over the row's ratings. (Up to rank 15, ``als_gram.cg_rows_gram`` forms each row's Gram matrix instead.)
"""

import numpy as np
from numba import njit

from recsys_dist.kernels.cg import cg_update
from recsys_dist.kernels.prefetch import prefetch_row

# Up to this many columns (rank 20) CG runs on the gathered rows transposed, ``cg_rows_narrow``: a row of
# 11 floats is too short for the vectoriser, so the dot products of ``_cg_rows`` ran nearly scalar, while
# over a column of the row's ratings every loop is long and unit-stride. Kernel only, one thread
# (jobs/bench_kernel.py): rank 10 21.5 -> 16.1-17.4 ns per rating (a CG step 3.6 -> 1.8 ns), rank 20
# 26.4 -> 24.4; at rank 32 the row layout is faster (30.0 against 42.0).
NARROW_COLS = 21
NARROW_AHEAD = 32  # ratings ahead for narrow rows (1-2 cache lines each): 32 measured best of 8-64 at rank 10 and 20


@njit(cache=True, nogil=True, fastmath=True)
def cg_rows_narrow(lo, hi, indptr, indices, values, src, prev, mu, reg, bias_reg, weighted, steps, out, row_sse,
                    xt, t, z, vecs):
    """``kernels.als._cg_rows`` for narrow rows: the row's gathered features f_q = [y_q, 1] are the columns of xt
    [K, longest], so each product F v (one value per rating, in z) and F^T z (one per column) is a loop
    over the ratings. t [longest] keeps the targets, vecs [5, K] holds the CG vectors and the penalty.
    The sums run in the same order whatever the block, thread or buffers (STABLE_SUMS, kernels/als.py)."""
    n_cols = src.shape[1]
    k = n_cols - 1
    sol, res, p, w, lam_v = vecs[0], vecs[1], vecs[2], vecs[3], vecs[4]
    last = indptr[hi]
    xt[k, :] = 1.0  # every f_q's last feature, written once
    for q in range(indptr[lo], min(indptr[lo] + NARROW_AHEAD, last)):
        prefetch_row(src, indices[q], n_cols)
    for r in range(lo, hi):
        start, end = indptr[r], indptr[r + 1]
        n = end - start
        if n == 0:
            out[r, :] = 0.0
            row_sse[r] = 0.0
            continue
        for pos in range(start, end):  # the one pass over src: gather y_q into column q, keep t_q
            if pos + NARROW_AHEAD < last:
                prefetch_row(src, indices[pos + NARROW_AHEAD], n_cols)
            j = indices[pos]
            q = pos - start
            for c in range(k):
                xt[c, q] = src[j, c]
            t[q] = np.float32(values[pos] - mu - src[j, k])
        scale = float(n) if weighted else 1.0
        lam = np.float32(reg * scale)
        lam_b = np.float32(bias_reg * scale)
        for c in range(n_cols):
            sol[c] = prev[r, c]
            lam_v[c] = lam if c < k else lam_b
        _residuals(xt, t, sol, n, z)  # z = t - F x0
        for c in range(n_cols):  # res = b - A x0 = F^T z - lam x0
            acc = np.float32(0.0)
            for q in range(n):
                acc += z[q] * xt[c, q]
            res[c] = acc - lam_v[c] * sol[c]
            p[c] = res[c]
        rs = np.float32(0.0)
        for c in range(n_cols):
            rs += res[c] * res[c]
        for _ in range(steps):
            if rs <= 1e-20:
                break
            for q in range(n):  # z = F p
                z[q] = 0.0
            for c in range(n_cols):
                pc = p[c]
                for q in range(n):
                    z[q] += xt[c, q] * pc
            for c in range(n_cols):  # w = A p = F^T z + lam p
                acc = np.float32(0.0)
                for q in range(n):
                    acc += z[q] * xt[c, q]
                w[c] = acc + lam_v[c] * p[c]
            rs = cg_update(sol, res, p, w, rs, n_cols)
            if rs < 0.0:
                break
        _residuals(xt, t, sol, n, z)
        sse = 0.0
        for q in range(n):
            e = float(z[q])
            sse += e * e
        row_sse[r] = sse
        for c in range(n_cols):
            out[r, c] = sol[c]


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _residuals(xt, t, x, n, z):
    """z[q] = t[q] - f_q . x for the n gathered columns of xt, column by column (stores only)."""
    for q in range(n):
        z[q] = t[q]
    for c in range(xt.shape[0]):
        xc = x[c]
        for q in range(n):
            z[q] -= xt[c, q] * xc
