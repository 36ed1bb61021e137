"""Numba kernel of genre-augmented ALS: an explicit-ALS row solve whose regularisation pulls the row
towards a prior mean (its genres' embedding) instead of towards zero."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from recsys_dist.kernels.als import _cholesky_solve, row_sse_of


@njit(cache=True, nogil=True, parallel=True, fastmath=True)
def solve_toward_prior(indptr, indices, values, src, prior, mu, reg, bias_reg, weighted, out, row_sse):
    """Per dst row r with ratings v_j of src rows y_j (bias column last), minimise

        sum_j (v_j - mu - y_j[k] - b - x . y_j[:k])^2 + s (reg |x - m[:k]|^2 + bias_reg (b - m[k])^2)

    with m = prior[r] and s = the row's rating count (weighted) or 1: the system of explicit ALS plus
    s * reg * m on the right. A row without ratings gets its prior. Writes out float32[n, k+1] and
    row_sse float64[n]; returns -1, or the first row whose system is not positive definite."""
    n_rows = indptr.shape[0] - 1
    n_cols = src.shape[1]
    k = n_cols - 1
    failed = np.full(n_rows, False)
    for r in prange(n_rows):
        start, end = indptr[r], indptr[r + 1]
        n = end - start
        if n == 0:
            for c in range(n_cols):
                out[r, c] = prior[r, c]
            row_sse[r] = 0.0
            continue
        a = np.zeros((n_cols, n_cols))
        b = np.zeros(n_cols)
        for p in range(start, end):
            j = indices[p]
            t = values[p] - mu - src[j, k]
            for c in range(k):
                yc = src[j, c]
                b[c] += t * yc
                for e in range(c + 1):
                    a[c, e] += yc * src[j, e]
                a[k, c] += yc
            b[k] += t
        scale = float(n) if weighted else 1.0
        for c in range(k):
            a[c, c] += reg * scale
            b[c] += reg * scale * prior[r, c]
        a[k, k] = float(n) + bias_reg * scale
        b[k] += bias_reg * scale * prior[r, k]
        if not _cholesky_solve(a, b, n_cols):
            failed[r] = True
            continue
        row_sse[r] = row_sse_of(indices, values, src, mu, b, start, end)
        for c in range(n_cols):
            out[r, c] = b[c]
    for r in range(n_rows):
        if failed[r]:
            return r
    return -1
