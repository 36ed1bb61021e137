"""Numba kernel of one BPMF Gibbs half-step over one block of destination rows.

The layout is ALS's (see kernels/als.py): ``src[j] = [y_j, b_j]``, features f_j = [y_j, 1],
targets t_dj = r_dj - mu - b_j, unknowns x = [x_d, b_d] with K = k + 1 entries. Given the
side's Normal-Wishart draw (prior mean m0, prior precision P, both K-dimensional: the bias is
the last coordinate) and the noise precision beta, row d's conditional posterior is Gaussian:

    precision  A = P + beta * sum_j f_j f_j^T          (the ALS Gram matrix, scaled)
    mean       m = A^{-1} (P m0 + beta * sum_j t_dj f_j)

and the draw is x = m + L^{-T} z with A = L L^T and z a row of standard normals given by the
caller (counter-based, so the draw does not depend on the block or the engine). A row without
ratings is drawn from the prior. The Gram tiles and the Cholesky factorisation are the ALS
kernel's own, so one Gibbs half-step costs one Cholesky ALS half-step plus a triangular solve.
"""

import numpy as np
from numba import njit, prange

from recsys_dist.kernels.als import CHUNK, GROUP, _cholesky_solve, _gram_chunk, row_sse_of


@njit(cache=True, nogil=True, parallel=True, fastmath=True)
def sample_in_block(indptr, indices, values, src, mu, beta, prior_prec, prior_rhs, z, out, row_sse):
    """Draw every dst row of one block from its conditional posterior.

    indptr int64[n_rows+1], indices int32[nnz], values float32[nnz] as in ``solve_in_block``;
    src float32[n_src, K]; prior_prec float64[K, K] (P), prior_rhs float64[K] (P m0);
    z float64[n_rows, K] standard normals. Writes out float32[n_rows, K] and row_sse
    float64[n_rows] (squared error of the row's ratings with the drawn row). Returns -1, or the
    first row whose precision is not positive definite.
    """
    n_rows = indptr.shape[0] - 1
    n_cols = src.shape[1]
    k = n_cols - 1
    failed = np.full(n_rows, False)
    n_groups = (n_rows + GROUP - 1) // GROUP
    for grp in prange(n_groups):
        x = np.empty((CHUNK, k), np.float32)
        g = np.empty((k, k), np.float32)
        a = np.empty((n_cols, n_cols))
        b = np.empty(n_cols)
        w = np.empty(n_cols)
        for r in range(grp * GROUP, min((grp + 1) * GROUP, n_rows)):
            failed[r] = not _sample_row(indptr, indices, values, src, mu, beta, prior_prec, prior_rhs, z, out,
                                        row_sse, r, x, g, a, b, w)
    for r in range(n_rows):
        if failed[r]:
            return r
    return -1


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _sample_row(indptr, indices, values, src, mu, beta, prior_prec, prior_rhs, z, out, row_sse, r, x, g, a, b, w):
    k = src.shape[1] - 1
    n_cols = k + 1
    start, end = indptr[r], indptr[r + 1]
    a[:, :] = 0.0
    b[:] = 0.0
    for c0 in range(start, end, CHUNK):
        m = min(CHUNK, end - c0)
        for q in range(m):
            j = indices[c0 + q]
            for c in range(k):
                x[q, c] = src[j, c]
        g[:, :] = 0.0
        _gram_chunk(x, m, k, g)
        for c in range(k):
            for e in range(c + 1):
                a[c, e] += g[c, e]
        for q in range(m):
            tq = values[c0 + q] - mu - src[indices[c0 + q], k]
            b[k] += tq
            for c in range(k):
                b[c] += tq * x[q, c]
                a[k, c] += x[q, c]
    a[k, k] = float(end - start)
    for c in range(n_cols):
        b[c] = beta * b[c] + prior_rhs[c]
        for e in range(c + 1):
            a[c, e] = beta * a[c, e] + prior_prec[c, e]
    if not _cholesky_solve(a, b, n_cols):  # a now holds L (lower), b the posterior mean
        return False
    for i in range(n_cols - 1, -1, -1):  # w = L^{-T} z: Cov(w) = (L L^T)^{-1} = A^{-1}
        s = z[r, i]
        for p in range(i + 1, n_cols):
            s -= a[p, i] * w[p]
        w[i] = s / a[i, i]
    for c in range(n_cols):
        b[c] += w[c]
    row_sse[r] = row_sse_of(indices, values, src, mu, b, start, end)
    for c in range(n_cols):
        out[r, c] = b[c]
    return True
