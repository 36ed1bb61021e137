"""Numba kernel of one ALS half-step over one block of destination rows.

Every side's matrix carries its bias in the last column: ``src[j] = [y_j, b_j]`` with
``K = k + 1`` columns. For a dst row d with ratings r_dj the unknowns are x = [x_d, b_d],
the features are f_j = [y_j, 1] and the targets t_dj = r_dj - mu - b_j, so

    (sum_j f_j f_j^T + diag(lam, ..., lam, lam_b)) x = sum_j t_dj f_j

with lam = reg * n_d and lam_b = bias_reg * n_d under weighted-lambda regularization
(Spark MLlib's default), or reg and bias_reg when ``weighted`` is false. The Gram matrix
is accumulated in float64 and solved by Cholesky; rows without ratings get zeros.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def _cholesky_solve(a, b, n):
    """Solve a x = b in place (b <- x) for SPD ``a`` given in its lower triangle. False if not SPD."""
    for j in range(n):
        s = a[j, j]
        for p in range(j):
            s -= a[j, p] * a[j, p]
        if s <= 0.0:
            return False
        d = np.sqrt(s)
        a[j, j] = d
        for i in range(j + 1, n):
            s = a[i, j]
            for p in range(j):
                s -= a[i, p] * a[j, p]
            a[i, j] = s / d
    for i in range(n):
        s = b[i]
        for p in range(i):
            s -= a[i, p] * b[p]
        b[i] = s / a[i, i]
    for i in range(n - 1, -1, -1):
        s = b[i]
        for p in range(i + 1, n):
            s -= a[p, i] * b[p]
        b[i] = s / a[i, i]
    return True


@njit(cache=True, nogil=True, parallel=True)
def solve_in_block(indptr, indices, values, src, mu, reg, bias_reg, weighted, out, row_sse):
    """Solve every dst row of one block.

    indptr int64[n_rows+1], indices int32[nnz] (global src rows, ascending within a row),
    values float32[nnz], src float32[n_src, K] C-order; writes out float32[n_rows, K] and
    row_sse float64[n_rows] (squared error of the row's ratings with the new solution).
    Returns -1 on success, else the first row whose system is not positive definite.
    """
    n_rows = indptr.shape[0] - 1
    n_cols = src.shape[1]
    k = n_cols - 1
    failed = np.full(n_rows, False)
    for r in prange(n_rows):
        start, end = indptr[r], indptr[r + 1]
        n = end - start
        if n == 0:
            out[r, :] = 0.0
            row_sse[r] = 0.0
            continue
        a = np.zeros((n_cols, n_cols))
        b = np.zeros(n_cols)
        f = np.empty(n_cols)
        f[k] = 1.0
        for p in range(start, end):
            j = indices[p]
            for c in range(k):
                f[c] = src[j, c]
            t = values[p] - mu - src[j, k]
            for c in range(n_cols):
                fc = f[c]
                b[c] += t * fc
                for e in range(c + 1):
                    a[c, e] += fc * f[e]
        scale = float(n) if weighted else 1.0
        for c in range(k):
            a[c, c] += reg * scale
        a[k, k] += bias_reg * scale
        if not _cholesky_solve(a, b, n_cols):
            failed[r] = True
            continue
        sse = 0.0
        for p in range(start, end):
            j = indices[p]
            pred = mu + src[j, k] + b[k]
            for c in range(k):
                pred += b[c] * src[j, c]
            e = values[p] - pred
            sse += e * e
        row_sse[r] = sse
        for c in range(n_cols):
            out[r, c] = b[c]
    for r in range(n_rows):
        if failed[r]:
            return r
    return -1


@njit(cache=True, nogil=True, parallel=True)
def predict_pairs(dst_idx, src_idx, dst, src, mu, out):
    """out[p] = mu + b_dst + b_src + x_dst . y_src for each pair; index -1 means unknown (zeros)."""
    k = dst.shape[1] - 1
    for p in prange(dst_idx.shape[0]):
        u, i = dst_idx[p], src_idx[p]
        pred = mu
        if u >= 0:
            pred += dst[u, k]
        if i >= 0:
            pred += src[i, k]
        if u >= 0 and i >= 0:
            for c in range(k):
                pred += dst[u, c] * src[i, c]
        out[p] = pred


def set_threads(n):
    """Threads for this thread's kernel calls (numba's per-thread setting); 0 keeps the default."""
    import numba

    if n > 0:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
