"""Each kernel equals its slow NumPy twin (a dense float64 solve), at rank <= 8 and at production
shapes (rank 64, ranks off the 16-wide tile, rows longer than one 64-rating gather chunk)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_dist.blocking import build_in_block
from recsys_dist.kernels import als, als_cg, implicit_als, reference


def _random_block(seed, n_dst=40, n_src=30, density=0.2):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_dst, n_src)) < density
    mask[::7] = False  # some rows without ratings
    dst, src = np.nonzero(mask)
    values = rng.integers(1, 6, len(dst)).astype(np.float32)
    return build_in_block(0, 0, n_dst, dst, src, values), rng


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), rank=st.sampled_from([0, 1, 3, 8]), weighted=st.booleans(),
       reg=st.floats(0.01, 1.0), bias_reg=st.floats(0.001, 1.0))
def test_kernels_solve_in_block_equals_reference(seed, rank, weighted, reg, bias_reg):
    block, rng = _random_block(seed)
    src = rng.normal(0, 0.5, (30, rank + 1)).astype(np.float32)
    outs = []
    for impl in (als, reference):
        out, sse = np.full((40, rank + 1), np.nan, np.float32), np.full(40, np.nan)
        assert impl.solve_in_block(block.indptr, block.indices, block.values, src, 3.5, reg, bias_reg, weighted,
                                   out, sse) == -1
        outs.append((out, sse))
    np.testing.assert_allclose(outs[0][0], outs[1][0], atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(outs[0][1], outs[1][1], atol=1e-5, rtol=1e-4)  # float32 tiles, fastmath
    assert np.all(outs[0][0][::7] == 0)


def test_kernels_solution_minimises_the_row_objective():
    block, rng = _random_block(3, n_dst=5, n_src=50, density=0.6)
    src = rng.normal(0, 0.5, (50, 5)).astype(np.float32)
    out, sse = np.empty((5, 5), np.float32), np.empty(5)
    als.solve_in_block(block.indptr, block.indices, block.values, src, 3.0, 0.1, 0.05, True, out, sse)
    r = 1
    cols = block.indices[block.indptr[r]:block.indptr[r + 1]]
    y = block.values[block.indptr[r]:block.indptr[r + 1]]
    n = len(cols)

    def objective(x):
        pred = 3.0 + src[cols, 4] + x[4] + src[cols, :4] @ x[:4]
        return np.sum((y - pred) ** 2) + 0.1 * n * np.sum(x[:4] ** 2) + 0.05 * n * x[4] ** 2

    best = objective(out[r].astype(np.float64))
    for _ in range(50):
        assert objective(out[r] + rng.normal(0, 1e-2, 5)) >= best - 1e-9


def test_kernels_predict_pairs_equals_reference_with_unknowns(rng):
    dst, src = rng.normal(size=(20, 6)).astype(np.float32), rng.normal(size=(15, 6)).astype(np.float32)
    u, i = rng.integers(-1, 20, 300), rng.integers(-1, 15, 300)
    a, b = np.empty(300), np.empty(300)
    als.predict_pairs(u, i, dst, src, 3.3, a)
    reference.predict_pairs(u, i, dst, src, 3.3, b)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert a[(u < 0) & (i < 0)] == pytest.approx(3.3)


def _explicit_system(block, src, r, reg, bias_reg, weighted):
    """Row r's (k+1) x (k+1) matrix A of the explicit system, float64 (kernels/als.py's docstring)."""
    k = src.shape[1] - 1
    cols = block.indices[block.indptr[r]:block.indptr[r + 1]]
    feats = np.hstack([src[cols, :k].astype(np.float64), np.ones((len(cols), 1))])
    scale = len(cols) if weighted else 1.0
    return feats.T @ feats + np.diag([reg * scale] * k + [bias_reg * scale])


def _a_norm_errors(block, out, exact, system):
    """Per row, ||out_r - exact_r||_A with A the row's system matrix (what CG minimises)."""
    errors = []
    for r in range(block.hi - block.lo):
        if block.indptr[r + 1] > block.indptr[r]:
            e = out[r].astype(np.float64) - exact[r].astype(np.float64)
            errors.append(np.sqrt(max(e @ system(r) @ e, 0.0)))
    return np.array(errors)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), rank=st.sampled_from([0, 2, 6]), weighted=st.booleans())
def test_kernels_cg_error_in_the_a_norm_decreases_at_every_step(seed, rank, weighted):
    """CG's guarantee: the error's A-norm ||x_t - x*||_A never increases, and reaches ~0 by K steps."""
    block, rng = _random_block(seed)
    src = rng.normal(0, 0.5, (30, rank + 1)).astype(np.float32)
    exact, sse = np.empty((40, rank + 1)), np.empty(40)
    reference.solve_in_block(block.indptr, block.indices, block.values, src, 3.5, 0.3, 0.2, weighted, exact, sse)
    prev = rng.normal(0, 0.5, (40, rank + 1)).astype(np.float32)
    errors = []
    for steps in range(0, rank + 3):
        out, cg_sse = np.empty((40, rank + 1), np.float32), np.empty(40)
        assert als_cg.solve_in_block_cg(block.indptr, block.indices, block.values, src, prev, 3.5, 0.3, 0.2, weighted,
                                     steps, out, cg_sse) == -1
        errors.append(_a_norm_errors(block, out, exact,
                                     lambda r: _explicit_system(block, src, r, 0.3, 0.2, weighted)))
    errors = np.array(errors)  # [steps, rows]
    slack = 1e-6 * errors[0] + 1e-6  # float32 rows
    assert np.all(errors[1:] <= errors[:-1] + slack)
    # K = rank + 1 steps solve exactly in exact arithmetic; the kernel's vectors are float32 (as implicit's CG)
    assert np.all(errors[-1] <= 1e-3 * errors[0] + 1e-5)


def _long_block(seed, n_src=300):
    """Rows of 0, 1, 7, 63, 64, 65, 130 and 257 ratings (one gather chunk is 64), then 60 random ones:
    two parallel groups of 64 rows."""
    rng = np.random.default_rng(seed)
    lengths = [0, 1, 7, 63, 64, 65, 130, 257] + rng.integers(0, 150, 60).tolist()
    dst = np.repeat(np.arange(len(lengths)), lengths)
    src = np.concatenate([np.sort(rng.choice(n_src, n, replace=False)) for n in lengths])
    values = rng.integers(1, 6, len(dst)).astype(np.float32)
    return build_in_block(0, 0, len(lengths), dst, src, values), rng


PRODUCTION_RANKS = [10, 15, 17, 33, 64]  # each CG kernel (Gram to rank 15, transposed to 20, rows); not multiples
#                                         of the 16-wide tile, odd (the paired-row loop), and 64


@pytest.mark.parametrize("rank", PRODUCTION_RANKS)
@pytest.mark.parametrize("weighted", [True, False])
def test_kernels_cholesky_at_production_ranks_and_long_rows_equals_a_dense_solve(rank, weighted):
    block, rng = _long_block(rank)
    n = block.hi - block.lo
    src = rng.normal(0, 0.3, (300, rank + 1)).astype(np.float32)
    got, want = np.empty((n, rank + 1), np.float32), np.empty((n, rank + 1))
    sse, want_sse = np.empty(n), np.empty(n)
    assert als.solve_in_block(block.indptr, block.indices, block.values, src, 3.5, 0.1, 0.05, weighted, got,
                              sse) == -1
    reference.solve_in_block(block.indptr, block.indices, block.values, src, 3.5, 0.1, 0.05, weighted, want, want_sse)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(sse, want_sse, rtol=1e-4)
    assert np.all(got[0] == 0)


@pytest.mark.parametrize("rank", PRODUCTION_RANKS)
def test_kernels_cg_at_production_ranks_and_long_rows_converges_in_the_a_norm(rank):
    block, rng = _long_block(100 + rank)
    n = block.hi - block.lo
    src = rng.normal(0, 0.3, (300, rank + 1)).astype(np.float32)
    exact, sse = np.empty((n, rank + 1)), np.empty(n)
    reference.solve_in_block(block.indptr, block.indices, block.values, src, 3.5, 0.1, 0.05, True, exact, sse)
    prev = rng.normal(0, 0.1, (n, rank + 1)).astype(np.float32)
    errors = []
    for steps in (0, 1, 2, 3, 6, 2 * (rank + 1)):
        out, cg_sse = np.empty((n, rank + 1), np.float32), np.empty(n)
        assert als_cg.solve_in_block_cg(block.indptr, block.indices, block.values, src, prev, 3.5, 0.1, 0.05, True,
                                     steps, out, cg_sse) == -1
        errors.append(_a_norm_errors(block, out, exact, lambda r: _explicit_system(block, src, r, 0.1, 0.05, True)))
    errors = np.array(errors)
    assert np.all(errors[1:] <= errors[:-1] * (1 + 1e-6) + 1e-6)
    assert np.all(errors[-1] <= 1e-3 * errors[0] + 1e-5)
    np.testing.assert_allclose(out, exact, atol=1e-4, rtol=1e-3)
    # each row's squared error is that of the rows the kernel returned, summed in float64
    rows = np.repeat(np.arange(n), np.diff(block.indptr))
    y, x = src[block.indices].astype(np.float64), out[rows].astype(np.float64)
    residual = block.values - 3.5 - y[:, -1] - np.einsum("qc,qc->q", y[:, :-1], x[:, :-1]) - x[:, -1]
    np.testing.assert_allclose(cg_sse, np.bincount(rows, residual ** 2, minlength=n), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rank", [1, 10, 15, 16, 20, 64, 260])  # each kernel and vector count, and the widest
def test_kernels_cg_steps_equal_plain_cg_in_float64(rank):
    """Two steps from the same start land where textbook CG on each row's system lands (rank 260: rows wider
    than the vector kernels take, which run Numba loops). Not three: a row of one rating has a system of
    two distinct eigenvalues, which CG solves in two steps, and a float32 third step on the leftover
    residual moves the bias by up to 5 % at rank 260."""
    block, rng = _long_block(7 + rank)
    n = block.hi - block.lo
    src = rng.normal(0, 0.3, (300, rank + 1)).astype(np.float32)
    prev = rng.normal(0, 0.1, (n, rank + 1)).astype(np.float32)
    out, sse = np.empty((n, rank + 1), np.float32), np.empty(n)
    assert als_cg.solve_in_block_cg(block.indptr, block.indices, block.values, src, prev, 3.5, 0.1, 0.05, True, 2,
                                 out, sse) == -1
    for r in range(n):
        cols = block.indices[block.indptr[r]:block.indptr[r + 1]]
        if len(cols) == 0:
            assert np.all(out[r] == 0) and sse[r] == 0
            continue
        a = _explicit_system(block, src, r, 0.1, 0.05, True)
        target = block.values[block.indptr[r]:block.indptr[r + 1]] - 3.5 - src[cols, -1].astype(np.float64)
        b = np.hstack([src[cols, :-1].astype(np.float64), np.ones((len(cols), 1))]).T @ target
        x = prev[r].astype(np.float64)
        res = b - a @ x
        p = res.copy()
        for _ in range(2):
            ap = a @ p
            alpha = (res @ res) / (p @ ap)
            x, res_new = x + alpha * p, res - alpha * ap
            p, res = res_new + (res_new @ res_new) / (res @ res) * p, res_new
        np.testing.assert_allclose(out[r], x, atol=2e-4, rtol=2e-3, err_msg=f"row {r} ({len(cols)} ratings)")


def _implicit_args(rank, seed):
    block, rng = _long_block(seed)
    src = rng.normal(0, 0.3, (300, rank + 1)).astype(np.float32)
    src[:, -1] = 0.0  # implicit ALS keeps the bias column at 0
    gram = src[:, :-1].astype(np.float64).T @ src[:, :-1].astype(np.float64)
    return block, rng, src, gram


def _implicit_system(block, src, gram, r, threshold, alpha, reg):
    """Row r's k x k matrix of the implicit system (c = 1 + alpha * r, weighted lambda), float64."""
    vals = block.values[block.indptr[r]:block.indptr[r + 1]].astype(np.float64)
    keep = vals >= threshold
    y = src[block.indices[block.indptr[r]:block.indptr[r + 1]][keep], :-1].astype(np.float64)
    return gram + (y.T * (alpha * vals[keep])) @ y + reg * keep.sum() * np.eye(len(gram))


@pytest.mark.parametrize("rank", PRODUCTION_RANKS)
@pytest.mark.parametrize("scaled, binary, threshold", [(False, False, 0.0), (True, False, 3.0), (False, True, 2.0)])
def test_kernels_implicit_cholesky_at_production_ranks_and_long_rows_equals_a_dense_solve(rank, scaled, binary,
                                                                                         threshold):
    block, _, src, gram = _implicit_args(rank, rank)
    n = block.hi - block.lo
    got, want = np.full((n, rank + 1), np.nan, np.float32), np.empty((n, rank + 1))
    loss, want_loss = np.empty(n), np.empty(n)
    assert implicit_als.solve_implicit_block(block.indptr, block.indices, block.values, src, gram, threshold, 0.5,
                                             scaled, binary, 0.1, True, got, loss) == -1
    reference.solve_implicit_block(block.indptr, block.indices, block.values, src, gram, threshold, 0.5, scaled,
                                   binary, 0.1, True, want, want_loss)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-4, atol=1e-6)
    assert np.all(got[0] == 0) and np.all(got[:, -1] == 0)


@pytest.mark.parametrize("rank", PRODUCTION_RANKS)
def test_kernels_implicit_cg_at_production_ranks_and_long_rows_converges_in_the_a_norm(rank):
    block, rng, src, gram = _implicit_args(rank, 200 + rank)
    n = block.hi - block.lo
    exact, loss = np.empty((n, rank + 1)), np.empty(n)
    reference.solve_implicit_block(block.indptr, block.indices, block.values, src, gram, 0.0, 0.5, False, False,
                                   0.1, True, exact, loss)
    prev = rng.normal(0, 0.1, (n, rank + 1)).astype(np.float32)
    errors = []
    for steps in (0, 1, 2, 3, 6, 2 * rank):
        out, cg_loss = np.empty((n, rank + 1), np.float32), np.empty(n)
        implicit_als.solve_implicit_block_cg(block.indptr, block.indices, block.values, src, prev, gram, 0.0, 0.5,
                                             False, False, 0.1, True, steps, out, cg_loss)
        errors.append(_a_norm_errors(block, out[:, :-1], exact[:, :-1],
                                     lambda r: _implicit_system(block, src, gram, r, 0.0, 0.5, 0.1)))
    errors = np.array(errors)
    assert np.all(errors[1:] <= errors[:-1] * (1 + 1e-4) + 1e-5)  # float32 vectors (as implicit's CG)
    assert np.all(errors[-1] <= 1e-2 * errors[0] + 1e-4)
    np.testing.assert_allclose(out[:, :-1], exact[:, :-1], atol=1e-3, rtol=1e-2)


@pytest.mark.parametrize("scaled, binary, threshold", [(True, False, 3.0), (False, True, 2.0), (False, False, 6.0)])
def test_kernels_implicit_cg_skips_ratings_below_the_threshold_like_the_dense_solve(scaled, binary, threshold):
    """The CG gather pass (which also forms b and the first residual) keeps only the interactions;
    run to convergence it gives the dense solve, and rows left without interactions get zeros."""
    rank = 64
    block, rng, src, gram = _implicit_args(rank, 7)
    n = block.hi - block.lo
    exact, loss = np.empty((n, rank + 1)), np.empty(n)
    reference.solve_implicit_block(block.indptr, block.indices, block.values, src, gram, threshold, 0.5, scaled,
                                   binary, 0.1, True, exact, loss)
    prev = rng.normal(0, 0.1, (n, rank + 1)).astype(np.float32)
    out, cg_loss = np.full((n, rank + 1), np.nan, np.float32), np.full(n, np.nan)
    implicit_als.solve_implicit_block_cg(block.indptr, block.indices, block.values, src, prev, gram, threshold, 0.5,
                                         scaled, binary, 0.1, True, 2 * rank, out, cg_loss)
    np.testing.assert_allclose(out, exact, atol=1e-3, rtol=1e-2)
    np.testing.assert_allclose(cg_loss, loss, rtol=1e-3, atol=1e-3)
    assert np.all(out[:, -1] == 0)


def test_kernels_prefetch_is_a_hint_that_changes_no_value():
    from numba import njit

    from recsys_dist.kernels.prefetch import prefetch

    @njit
    def total(a, rows):
        s = 0.0
        for q in range(rows.shape[0]):
            prefetch(a, rows[q], a.shape[1] - 1)
            s += a[rows[q]].sum()
        return s

    a = np.arange(60, dtype=np.float32).reshape(6, 10)
    rows = np.array([5, 0, 3, 5], np.int32)
    assert total(a, rows) == float(a[rows].sum())
    assert total(a[:, 1:], rows.astype(np.int64)) == float(a[rows, 1:].sum())  # a non-contiguous view too
