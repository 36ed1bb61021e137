"""Numba kernels of one ALS half-step over one block of destination rows.

Every side's matrix carries its bias in the last column: ``src[j] = [y_j, b_j]`` with
``K = k + 1`` columns. For a dst row d with ratings r_dj the unknowns are x = [x_d, b_d],
the features are f_j = [y_j, 1] and the targets t_dj = r_dj - mu - b_j, so

    (sum_j f_j f_j^T + diag(lam, ..., lam, lam_b)) x = sum_j t_dj f_j

with lam = reg * n_d and lam_b = bias_reg * n_d under weighted-lambda regularization
(Spark MLlib's default), or reg and bias_reg when ``weighted`` is false. ``solve_in_block``
solves it exactly by Cholesky in float64; ``als_cg.solve_in_block_cg`` takes a few conjugate-gradient
steps from the current rows (up to rank 15 on each row's Gram matrix, wider without forming it). Rows
without ratings get zeros.

Performance note: the Gram matrix is nnz * k^2 work and dominates. It is formed in float32
tiles over chunks of gathered rows (see ``_gram_chunk``) and flushed into float64, which
runs about 2x faster than accumulating each rating's outer product in float64. Kernels use
fastmath (reassociation), so results match the float64 reference to ~1e-6 relative; every
engine runs this same code in the same order, so engines still agree bit for bit.
"""

import numpy as np
from numba import njit, prange

from recsys_dist.kernels.prefetch import prefetch_row
from recsys_dist.kernels.row_threads import run_rows


# STABLE_SUMS, the rule every fastmath kernel here keeps for the engines' bit-for-bit agreement: a loop
# that sums (a reduction, which fastmath lets LLVM vectorise in another order) stores into no other
# array. LLVM cannot prove two arrays apart, so it guards such a loop with a run-time check of their
# addresses and falls back to a scalar loop that sums in source order: the bits then depend on where
# malloc happened to put the buffers (seen: 1 ulp in one row of one run in twenty, then a different
# model). Sums read; stores go in a loop of their own, whose lanes compute the same either way.
PREFETCH_AHEAD = 8  # ratings ahead (each 5 cache lines at rank 64): 4-8 measured best, 16-32 slower
CHUNK = 64  # ratings gathered at a time: [CHUNK, k] float32 stays in L1 next to the k x k tile
GROUP = 64  # rows per prange task of the parallel kernels that remain (implicit Cholesky, BPMF): scratch is
#             allocated once per group (allocation per row is slow, and very slow in Dask workers, whose
#             allocator returns freed memory to the OS eagerly)


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _cholesky_solve(a, b, n):
    """Solve a x = b in place (b <- x) for SPD ``a`` given in its lower triangle. False if not SPD.

    Cholesky-Crout by rows: each entry is a dot product of two contiguous row prefixes.
    """
    for j in range(n):
        s = a[j, j]
        for p in range(j):
            s -= a[j, p] * a[j, p]
        if s <= 0.0:
            return False
        d = np.sqrt(s)
        a[j, j] = d
        inv = 1.0 / d
        for i in range(j + 1, n):
            s = a[i, j]
            for p in range(j):
                s -= a[i, p] * a[j, p]
            a[i, j] = s * inv
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


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def row_sse_of(indices, values, src, mu, x, start, end):
    """Squared error of one dst row's ratings values[start:end] (of src rows indices[start:end]) with the
    row's solution x = [factors, bias] against src rows [factors, bias]: the stat every explicit solve returns."""
    k = src.shape[1] - 1
    sse = 0.0
    for p in range(start, end):
        j = indices[p]
        pred = mu + src[j, k] + x[k]
        for c in range(k):
            pred += x[c] * src[j, c]
        e = values[p] - pred
        sse += e * e
    return sse


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _gram_chunk(x, m, k, g):
    """g[c, :hi] += sum_q x[q, c] * x[q, :hi] over the m gathered rows of x [CHUNK, k].

    Only lower tiles are formed: hi is c+1 rounded up to a multiple of 16 (a full AVX-512
    vector of float32). Two rows c, c+1 and eight ratings at a time: each loaded vector of
    x feeds 16 multiply-adds, so the loop is bound by arithmetic, not by loads and stores.
    """
    q = 0
    while q + 8 <= m:
        c = 0
        while c + 2 <= k:
            hi = min(k, ((c + 1) // 16 + 1) * 16)
            a0 = x[q, c]; a1 = x[q + 1, c]; a2 = x[q + 2, c]; a3 = x[q + 3, c]  # noqa: E702
            a4 = x[q + 4, c]; a5 = x[q + 5, c]; a6 = x[q + 6, c]; a7 = x[q + 7, c]  # noqa: E702
            b0 = x[q, c + 1]; b1 = x[q + 1, c + 1]; b2 = x[q + 2, c + 1]; b3 = x[q + 3, c + 1]  # noqa: E702
            b4 = x[q + 4, c + 1]; b5 = x[q + 5, c + 1]; b6 = x[q + 6, c + 1]; b7 = x[q + 7, c + 1]  # noqa: E702
            for e in range(hi):
                v0 = x[q, e]; v1 = x[q + 1, e]; v2 = x[q + 2, e]; v3 = x[q + 3, e]  # noqa: E702
                v4 = x[q + 4, e]; v5 = x[q + 5, e]; v6 = x[q + 6, e]; v7 = x[q + 7, e]  # noqa: E702
                g[c, e] += a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3 + a4 * v4 + a5 * v5 + a6 * v6 + a7 * v7
                g[c + 1, e] += b0 * v0 + b1 * v1 + b2 * v2 + b3 * v3 + b4 * v4 + b5 * v5 + b6 * v6 + b7 * v7
            c += 2
        while c < k:
            hi = min(k, (c // 16 + 1) * 16)
            for e in range(hi):
                s = 0.0
                for i in range(8):
                    s += x[q + i, c] * x[q + i, e]
                g[c, e] += s
            c += 1
        q += 8
    while q < m:
        for c in range(k):
            hi = min(k, (c // 16 + 1) * 16)
            xc = x[q, c]
            for e in range(hi):
                g[c, e] += xc * x[q, e]
        q += 1


def solve_in_block(indptr, indices, values, src, mu, reg, bias_reg, weighted, out, row_sse):
    """Solve every dst row of one block.

    indptr int64[n_rows+1], indices int32[nnz] (global src rows, ascending within a row),
    values float32[nnz], src float32[n_src, K] C-order; writes out float32[n_rows, K] and
    row_sse float64[n_rows] (squared error of the row's ratings with the new solution).
    Returns -1 on success, else the first row whose system is not positive definite.

    Per row, ratings are taken CHUNK at a time: the src factor rows are gathered (prefetched
    PREFETCH_AHEAD ratings ahead) into this thread's float32 buffer, their k x k Gram tile is
    formed in float32 (at most CHUNK terms, so rounding stays at float32 epsilon) and added into
    the float64 system, whose bias row and column are sums of the gathered rows and the rating
    count. The buffer holds the whole row, so the squared error is taken from it, not gathered again.
    """
    longest = max(int(np.diff(indptr).max()) if len(indptr) > 1 else 0, 1)
    failed = np.zeros(indptr.shape[0] - 1, np.bool_)
    run_rows(_cholesky_rows, indptr, (indptr, indices, values, src, mu, reg, bias_reg, weighted, out, row_sse, failed),
             lambda: (np.empty((longest, src.shape[1] - 1), np.float32), np.empty(longest, np.float64)))
    bad = np.flatnonzero(failed)
    return int(bad[0]) if len(bad) else -1


@njit(cache=True, nogil=True, fastmath=True)
def _cholesky_rows(lo, hi, indptr, indices, values, src, mu, reg, bias_reg, weighted, out, row_sse, failed, x, t64):
    """Rows lo..hi-1 of ``solve_in_block`` (x [longest, k] and t64 [longest] are this thread's gather buffers);
    scratch allocated once per range of rows, not per row."""
    k = src.shape[1] - 1
    n_cols = k + 1
    t = np.empty(CHUNK, np.float32)
    g = np.empty((k, k), np.float32)
    a = np.empty((n_cols, n_cols))
    b = np.empty(n_cols)
    bx = np.empty(k)
    sx = np.empty(k)
    last = indptr[hi]
    for q in range(indptr[lo], min(indptr[lo] + PREFETCH_AHEAD, last)):
        prefetch_row(src, indices[q], n_cols)
    for r in range(lo, hi):
        start, end = indptr[r], indptr[r + 1]
        n = end - start
        if n == 0:
            out[r, :] = 0.0
            row_sse[r] = 0.0
            continue
        a[:, :] = 0.0
        b[:] = 0.0
        bx[:] = 0.0
        sx[:] = 0.0
        for c0 in range(start, end, CHUNK):
            m = min(CHUNK, end - c0)
            xc = x[c0 - start:]
            for q in range(m):
                pos = c0 + q
                if pos + PREFETCH_AHEAD < last:
                    prefetch_row(src, indices[pos + PREFETCH_AHEAD], n_cols)
                j = indices[pos]
                for c in range(k):
                    xc[q, c] = src[j, c]
                tq = values[pos] - mu - src[j, k]
                t64[pos - start] = tq
                t[q] = tq
            g[:, :] = 0.0
            _gram_chunk(xc, m, k, g)
            for c in range(k):
                for e in range(c + 1):
                    a[c, e] += g[c, e]
            for q in range(m):
                tq = t[q]
                b[k] += tq
                for c in range(k):
                    bx[c] += tq * xc[q, c]
                    sx[c] += xc[q, c]
        for c in range(k):
            b[c] = bx[c]
            a[k, c] = sx[c]
        scale = float(n) if weighted else 1.0
        for c in range(k):
            a[c, c] += reg * scale
        a[k, k] = float(n) + bias_reg * scale
        if not _cholesky_solve(a, b, n_cols):
            failed[r] = True
            continue
        sse = 0.0
        for q in range(n):
            e = t64[q] - b[k]
            for c in range(k):
                e -= b[c] * x[q, c]
            sse += e * e
        row_sse[r] = sse
        for c in range(n_cols):
            out[r, c] = b[c]


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
