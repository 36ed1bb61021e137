"""Numba kernels of one ALS half-step over one block of destination rows.

Every side's matrix carries its bias in the last column: ``src[j] = [y_j, b_j]`` with
``K = k + 1`` columns. For a dst row d with ratings r_dj the unknowns are x = [x_d, b_d],
the features are f_j = [y_j, 1] and the targets t_dj = r_dj - mu - b_j, so

    (sum_j f_j f_j^T + diag(lam, ..., lam, lam_b)) x = sum_j t_dj f_j

with lam = reg * n_d and lam_b = bias_reg * n_d under weighted-lambda regularization
(Spark MLlib's default), or reg and bias_reg when ``weighted`` is false. ``solve_in_block``
solves it exactly by Cholesky in float64; ``solve_in_block_cg`` takes a few conjugate-gradient
steps from the current rows without forming the matrix. Rows without ratings get zeros.

Performance note: the Gram matrix is nnz * k^2 work and dominates. It is formed in float32
tiles over chunks of gathered rows (see ``_gram_chunk``) and flushed into float64, which
runs about 2x faster than accumulating each rating's outer product in float64. Kernels use
fastmath (reassociation), so results match the float64 reference to ~1e-6 relative; every
engine runs this same code in the same order, so engines still agree bit for bit.
"""

import numpy as np
from numba import njit, prange

from recsys_dist.kernels.row_threads import run_rows

from recsys_dist.kernels.als_gram import GRAM_COLS, cg_rows_gram, gram_scratch
from recsys_dist.kernels.cg import cg_update
from recsys_dist.kernels.lane_rows import ROWS_AHEAD, apply_rows, gather_rows, rows_sse
from recsys_dist.kernels.lanes import LANES
from recsys_dist.kernels.prefetch import prefetch_row


# STABLE_SUMS, the rule every fastmath kernel here keeps for the engines' bit-for-bit agreement: a loop
# that sums (a reduction, which fastmath lets LLVM vectorise in another order) stores into no other
# array. LLVM cannot prove two arrays apart, so it guards such a loop with a run-time check of their
# addresses and falls back to a scalar loop that sums in source order: the bits then depend on where
# malloc happened to put the buffers (seen: 1 ulp in one row of one run in twenty, then a different
# model). Sums read; stores go in a loop of their own, whose lanes compute the same either way.
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


def solve_in_block_cg(indptr, indices, values, src, prev, mu, reg, bias_reg, weighted, steps, out, row_sse):
    """Like ``solve_in_block`` but with ``steps`` conjugate-gradient steps warm-started from ``prev``.

    prev float32[n_rows, K] holds the rows' current solution. Each step lowers the row's objective,
    so the ALS objective still never increases. Returns -1. Two kernels, by K:

    - K <= GRAM_COLS (rank up to 15): ``als_gram.cg_rows_gram`` forms the row's K x K Gram matrix in
      vector registers in one pass over the ratings (n K^2 flops, at 16 lanes), then runs CG on it.
    - wider: ``_cg_rows`` below never forms the normal equations: each step applies them through two
      passes over the gathered ratings (4 n K flops), so a row costs about (6 + 4 steps) n K flops
      instead of n K^2 + K^3/3. The src rows are prefetched PREFETCH_AHEAD ratings ahead across row
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
        run_rows(_cg_rows, indptr, args, lambda: (np.empty((longest, n_cols - 1), np.float32),
                                                  np.empty(longest, np.float32), np.empty((4, n_cols), np.float32)))
    return -1


PREFETCH_AHEAD = ROWS_AHEAD  # ratings ahead (each 5 cache lines at rank 64), as lane_rows.gather_rows prefetches


@njit(cache=True, nogil=True, fastmath=True)
def _cg_rows(lo, hi, indptr, indices, values, src, prev, mu, reg, bias_reg, weighted, steps, out, row_sse, x, t,
             vecs):
    """Rows lo..hi-1 of ``solve_in_block_cg``: x [longest, k], t [longest] and vecs [4, K] are this thread's
    scratch (STABLE_SUMS: no loop both sums and stores into another array)."""
    n_cols = src.shape[1]
    k = n_cols - 1
    sol, res, p, w = vecs[0], vecs[1], vecs[2], vecs[3]
    last = indptr[hi]  # prefetch within this range's ratings (the next range may run on another thread)
    for q in range(indptr[lo], min(indptr[lo] + PREFETCH_AHEAD, last)):
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
            if pos + PREFETCH_AHEAD < last:
                prefetch_row(src, indices[pos + PREFETCH_AHEAD], k + 1)
            j = indices[pos]
            q = pos - start
            tq = np.float32(values[pos] - mu - src[j, k])
            z = sol[k]
            for c in range(k):  # loads only (STABLE_SUMS); the row is in L1 for the next loop
                z += src[j, c] * sol[c]
            t[q] = tq
            s = tq - z
            for c in range(k):
                y = src[j, c]
                x[q, c] = y
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
            pred += sol[c] * x[q, c]
        e = float(t[q]) - float(pred)
        sse += e * e
    return sse


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _apply32(x, n, k, lam, lam_b, v, w):
    """w = (sum_q f_q f_q^T + diag(lam, ..., lam, lam_b)) v with f_q = [x[q], 1], all float32: four
    gathered rows at a time (independent dot products, one pass over w)."""
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
            z0 += x[q, c] * vc
            z1 += x[q + 1, c] * vc
            z2 += x[q + 2, c] * vc
            z3 += x[q + 3, c] * vc
        for c in range(k):
            w[c] += z0 * x[q, c] + z1 * x[q + 1, c] + z2 * x[q + 2, c] + z3 * x[q + 3, c]
        w[k] += z0 + z1 + z2 + z3
        q += 4
    while q < n:
        z = v[k]
        for c in range(k):
            z += x[q, c] * v[c]
        for c in range(k):
            w[c] += z * x[q, c]
        w[k] += z
        q += 1
