"""The step every conjugate-gradient row kernel shares, once its own product w = A p is made."""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def cg_update(sol, res, p, w, rs, n):
    """One CG step on the first n entries, given w = A p and rs = res . res: moves sol along p, updates
    res and p, and returns the new res . res, or -1.0 where p . A p <= 0 (stop: nothing was changed).
    Sums read only and stores go in loops of their own (STABLE_SUMS, kernels/als.py)."""
    pw = np.float32(0.0)
    for c in range(n):
        pw += p[c] * w[c]
    if pw <= 0.0:
        return np.float32(-1.0)
    alpha = rs / pw
    for c in range(n):
        sol[c] += alpha * p[c]
        res[c] -= alpha * w[c]
    rs_new = np.float32(0.0)
    for c in range(n):
        rs_new += res[c] * res[c]
    beta = rs_new / rs
    for c in range(n):
        p[c] = res[c] + beta * p[c]
    return rs_new
