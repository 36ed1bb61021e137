"""Numba kernels of the small moment matrices block tasks reduce (Y^T Y, F^T S X).

Written out rather than left to BLAS because OpenBLAS's result depends on how many threads it
splits a product over (one or two here: a Dask worker's tasks share its threads, a pool process
has its own), and the engines must give the same bits. One thread, a fixed order of rows, float64
accumulation: as fast as the BLAS call at these shapes (k x k from n >> k rows), conversion included.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def gram(rows, k):
    """float64 [k, k]: sum over rows r of r[:k] r[:k]^T (rows of any float dtype, row order fixed)."""
    out = np.zeros((k, k))
    row = np.empty(k)
    for i in range(rows.shape[0]):
        for a in range(k):
            row[a] = rows[i, a]
        for a in range(k):
            ra = row[a]
            for b in range(a, k):
                out[a, b] += ra * row[b]
    for a in range(k):
        for b in range(a):
            out[a, b] = out[b, a]
    return out


@njit(cache=True, nogil=True)
def weighted_cross(features, weights, rows):
    """float64 [g, w]: F^T diag(weights) X for features F [n, g] and rows X [n, w], row order fixed
    (features are mostly zeros, as one-hot genres and demographics are: those products are skipped)."""
    n, g = features.shape
    w = rows.shape[1]
    out = np.zeros((g, w))
    for i in range(n):
        for p in range(g):
            fp = features[i, p] * weights[i]
            if fp != 0.0:
                for q in range(w):
                    out[p, q] += fp * rows[i, q]
    return out
