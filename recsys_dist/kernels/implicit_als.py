"""Numba kernels of one implicit-feedback ALS half-step (Hu, Koren & Volinsky 2008) over one block.

A dst row d has interactions j (its ratings at or above ``threshold``) with preference p = 1
and confidence c_dj; every other src row counts with p = 0 and c = 1. With G = Y^T Y over
*all* src rows (first k columns; the last column of every matrix stays 0 for this model),

    (G + sum_j (c_dj - 1) y_j y_j^T + lam I) x_d = sum_j c_dj y_j

where lam = reg * n_d (weighted) or reg. The confidence is c = 1 + alpha * s (Spark, LensKit)
or c = alpha * s (implicit), with s the rating or 1 (``binary``). The row's share of the
objective sum_all c (p - x.y)^2 is, again through G,

    x^T G x + sum_j [c_dj (1 - x.y_j)^2 - (x.y_j)^2]

so each row costs O(n_d k + k^2) work and the unobserved pairs are never touched.
``solve_implicit_block_cg`` takes a few conjugate-gradient steps from the current rows (the
default: implicit's and Spark's practice); ``solve_implicit_block`` forms the system and solves
it by Cholesky. Both write the row objective (without regularization) into ``row_loss``.
"""

import numpy as np
from numba import config, get_thread_id, njit, prange

from recsys_dist.kernels.als import GROUP, _cholesky_solve
from recsys_dist.kernels.cg import cg_update
from recsys_dist.kernels.prefetch import prefetch
from recsys_dist.kernels.row_threads import run_rows


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def confidence(r, alpha, scaled, binary):
    """c = alpha * s (scaled) or 1 + alpha * s, with s = 1 (binary) or the rating r."""
    s = 1.0 if binary else r
    return alpha * s if scaled else 1.0 + alpha * s


@njit(cache=True, nogil=True, parallel=True)
def count_interactions(indptr, values, threshold, out):
    """out int64[n_rows]: ratings at or above ``threshold`` per CSR row."""
    for r in prange(indptr.shape[0] - 1):
        n = 0
        for p in range(indptr[r], indptr[r + 1]):
            if values[p] >= threshold:
                n += 1
        out[r] = n


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _gather(indptr, indices, values, src, threshold, alpha, scaled, binary, r, x, w):
    """Gather row r's interactions: x[q] = y_j, w[q] = c_dj; returns their number."""
    k = src.shape[1] - 1
    n = 0
    for p in range(indptr[r], indptr[r + 1]):
        if values[p] < threshold:
            continue
        j = indices[p]
        for c in range(k):
            x[n, c] = src[j, c]
        w[n] = confidence(values[p], alpha, scaled, binary)
        n += 1
    return n


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _row_loss(gram, x, w, n, k, sol):
    """x^T G x + sum_q [w_q (1 - s_q)^2 - s_q^2] with s_q = x_q . sol."""
    loss = 0.0
    for c in range(k):
        t = 0.0
        for e in range(k):
            t += gram[c, e] * sol[e]
        loss += sol[c] * t
    for q in range(n):
        s = 0.0
        for c in range(k):
            s += x[q, c] * sol[c]
        loss += w[q] * (1.0 - s) * (1.0 - s) - s * s
    return loss


def solve_implicit_block_cg(indptr, indices, values, src, prev, gram, threshold, alpha, scaled, binary, reg,
                            weighted, steps, out, row_loss):
    """``steps`` conjugate-gradient steps per row, warm-started from ``prev`` float32[n_rows, K].

    indptr int64[n_rows+1], indices int32 (global src rows), values float32 (ratings), src
    float32[n_src, K] C order, gram float64[K-1, K-1] = G; writes out float32[n_rows, K] (last
    column 0) and row_loss float64[n_rows]. Each step applies the system through two passes over
    the row's gathered interactions (4 n k flops) and one k x k product, and lowers the row's
    objective, so the ALS objective never increases.

    Performance notes (ml-25m shape, rank 64: see README "Measured"):
    - the gather is the dominant cost, a cache miss per rating at a random src row; the kernel
      prefetches the rows PREFETCH_AHEAD ratings ahead, across row ends, so the next row's first
      rows arrive while the current row's CG steps run;
    - each src row is read from memory once: the gather pass also forms b = sum_q c_q y_q and the
      starting residual b - A x0 (its dot product with x0 is taken while the row is in registers),
      and all CG steps then run on the gathered copy, which stays in L1/L2;
    - the vectors, G and the gathered rows are float32 (16 lanes of AVX-512; implicit's CG is
      float32 too), G v is formed as axpys over G's rows (G is symmetric) so it needs no
      horizontal sums, and the row objective comes from the CG residual r = b - A x
      (f = -x.b - x.r - lam |x|^2 + sum_j c_dj) instead of another pass over the interactions.
    """
    longest = max(int(np.diff(indptr).max()) if len(indptr) > 1 else 0, 1)
    k = src.shape[1] - 1
    gram32 = np.asarray(gram, np.float32)
    gram32 = np.ascontiguousarray((gram32 + gram32.T) * np.float32(0.5))  # exactly symmetric: G v by rows
    # one gather buffer per kernel thread, made once per call (see kernels/als.py)
    run_rows(_cg_rows, indptr, (indptr, indices, values, src, prev, gram32, threshold, alpha, scaled, binary, reg,
                                weighted, steps, out, row_loss),
             lambda: (np.empty((longest, k), np.float32), np.empty(longest, np.float32), np.empty((5, k), np.float32)))


PREFETCH_AHEAD = 16  # ratings: far enough to hide a memory access behind the work on 16 gathered rows


@njit(cache=True, nogil=True, inline="always")
def _prefetch_row(src, j, k):
    """Prefetch the cache lines of src[j, :k] (a line holds 16 float32, so one address per 16 and the last)."""
    for c in range(0, k, 16):
        prefetch(src, j, c)
    prefetch(src, j, k - 1)


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _gram_apply(gram, k, lam, v, out):
    """out = (G + lam I) v with G symmetric: axpys over G's rows, four at a time (no horizontal sums)."""
    for c in range(k):
        out[c] = lam * v[c]
    e = 0
    while e + 4 <= k:
        v0 = v[e]
        v1 = v[e + 1]
        v2 = v[e + 2]
        v3 = v[e + 3]
        for c in range(k):
            out[c] += gram[e, c] * v0 + gram[e + 1, c] * v1 + gram[e + 2, c] * v2 + gram[e + 3, c] * v3
        e += 4
    while e < k:
        ve = v[e]
        for c in range(k):
            out[c] += gram[e, c] * ve
        e += 1


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _apply32(gram, x, w, n, k, lam, v, out):
    """out = (G + sum_q (w_q - 1) x_q x_q^T + lam I) v, all float32."""
    _gram_apply(gram, k, lam, v, out)
    q = 0
    while q + 4 <= n:  # four interactions at a time: independent dot products, one pass over out
        z0 = np.float32(0.0)
        z1 = np.float32(0.0)
        z2 = np.float32(0.0)
        z3 = np.float32(0.0)
        for c in range(k):
            vc = v[c]
            z0 += x[q, c] * vc
            z1 += x[q + 1, c] * vc
            z2 += x[q + 2, c] * vc
            z3 += x[q + 3, c] * vc
        z0 *= w[q] - np.float32(1.0)
        z1 *= w[q + 1] - np.float32(1.0)
        z2 *= w[q + 2] - np.float32(1.0)
        z3 *= w[q + 3] - np.float32(1.0)
        for c in range(k):
            out[c] += z0 * x[q, c] + z1 * x[q + 1, c] + z2 * x[q + 2, c] + z3 * x[q + 3, c]
        q += 4
    while q < n:
        z = np.float32(0.0)
        for c in range(k):
            z += x[q, c] * v[c]
        z *= w[q] - np.float32(1.0)
        for c in range(k):
            out[c] += z * x[q, c]
        q += 1


@njit(cache=True, nogil=True, fastmath=True)
def _cg_rows(lo, hi, indptr, indices, values, src, prev, gram, threshold, alpha, scaled, binary, reg, weighted, steps,
             out, row_loss, x, w, vecs):
    """Rows lo..hi-1 of ``solve_implicit_block_cg``, a plain cached function run by ``run_rows``
    (kernels/row_threads.py: a ``prange`` wrapper could not be cached); x [longest, k], w [longest] and
    vecs [5, k] are this thread's scratch. No loop both sums (a fastmath reduction) and stores into
    another array: see STABLE_SUMS in kernels/als.py."""
    k = src.shape[1] - 1
    sol, res, p, ap, b = vecs[0], vecs[1], vecs[2], vecs[3], vecs[4]
    last = indptr[hi]  # prefetch within this range's ratings (the next range may run on another thread)
    for q in range(indptr[lo], min(indptr[lo] + PREFETCH_AHEAD, last)):
        _prefetch_row(src, indices[q], k)
    for r in range(lo, hi):
        for c in range(k):
            sol[c] = prev[r, c]
            b[c] = 0.0
            res[c] = 0.0
        # one pass over the row's interactions: gather y_q, b = sum c_q y_q, res = b - X^T (C - I) X x0
        n = 0
        total = 0.0
        for pos in range(indptr[r], indptr[r + 1]):
            if pos + PREFETCH_AHEAD < last:
                _prefetch_row(src, indices[pos + PREFETCH_AHEAD], k)
            if values[pos] < threshold:
                continue
            j = indices[pos]
            wq = np.float32(confidence(values[pos], alpha, scaled, binary))
            z = np.float32(0.0)
            for c in range(k):  # loads only (STABLE_SUMS); the row is in L1 for the next loop
                z += src[j, c] * sol[c]
            s = wq - (wq - np.float32(1.0)) * z
            for c in range(k):
                y = src[j, c]
                x[n, c] = y
                b[c] += wq * y
                res[c] += s * y
            w[n] = wq
            total += wq
            n += 1
        out[r, k] = 0.0
        if n == 0:
            out[r, :k] = 0.0
            row_loss[r] = 0.0
            continue
        lam = np.float32(reg * n if weighted else reg)
        _gram_apply(gram, k, lam, sol, ap)
        for c in range(k):
            res[c] -= ap[c]
            p[c] = res[c]
        rs = np.float32(0.0)
        for c in range(k):
            rs += res[c] * res[c]
        for _ in range(steps):
            if rs <= 1e-20:
                break
            _apply32(gram, x, w, n, k, lam, p, ap)
            rs = cg_update(sol, res, p, ap, rs, k)
            if rs < 0.0:
                break
        loss = total
        for c in range(k):
            loss -= float(sol[c]) * (float(b[c]) + float(res[c])) + lam * float(sol[c]) * float(sol[c])
        row_loss[r] = loss
        for c in range(k):
            out[r, c] = sol[c]


def solve_implicit_block(indptr, indices, values, src, gram, threshold, alpha, scaled, binary, reg, weighted,
                         out, row_loss):
    """Exact solves of every row (Cholesky of the k x k system in float64). Same arrays as the CG
    kernel without ``prev``. Returns -1, else the first row whose system is not positive definite."""
    longest = int(np.diff(indptr).max()) if len(indptr) > 1 else 0
    k = src.shape[1] - 1
    gather = np.empty((config.NUMBA_NUM_THREADS, max(longest, 1), k), np.float32)
    weights = np.empty((config.NUMBA_NUM_THREADS, max(longest, 1)), np.float64)
    failed = np.zeros(indptr.shape[0] - 1, np.bool_)
    _solve_exact(indptr, indices, values, src, gram, threshold, alpha, scaled, binary, reg, weighted, out, row_loss,
                 gather, weights, failed)
    bad = np.flatnonzero(failed)
    return int(bad[0]) if len(bad) else -1


@njit(cache=True, nogil=True, parallel=True, fastmath=True)
def _solve_exact(indptr, indices, values, src, gram, threshold, alpha, scaled, binary, reg, weighted, out, row_loss,
                 gather, weights, failed):
    n_rows = indptr.shape[0] - 1
    k = src.shape[1] - 1
    n_groups = (n_rows + GROUP - 1) // GROUP
    for grp in prange(n_groups):
        x = gather[get_thread_id()]
        w = weights[get_thread_id()]
        a = np.empty((k, k))
        b = np.empty(k)
        for r in range(grp * GROUP, min((grp + 1) * GROUP, n_rows)):
            n = _gather(indptr, indices, values, src, threshold, alpha, scaled, binary, r, x, w)
            out[r, k] = 0.0
            if n == 0:
                out[r, :k] = 0.0
                row_loss[r] = 0.0
                continue
            lam = reg * n if weighted else reg
            for c in range(k):
                for e in range(c + 1):
                    a[c, e] = gram[c, e]
                a[c, c] += lam
                b[c] = 0.0
            for q in range(n):
                wq = w[q]
                for c in range(k):
                    t = (wq - 1.0) * x[q, c]
                    b[c] += wq * x[q, c]
                    for e in range(c + 1):
                        a[c, e] += t * x[q, e]
            if not _cholesky_solve(a, b, k):
                failed[r] = True
                continue
            row_loss[r] = _row_loss(gram, x, w, n, k, b)
            for c in range(k):
                out[r, c] = b[c]
