"""Each kernel equals its slow NumPy twin."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_dist.blocking import build_in_block
from recsys_dist.kernels import als, reference


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


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), rank=st.sampled_from([0, 2, 6]), weighted=st.booleans())
def test_kernels_cg_converges_to_the_exact_solve_and_each_step_helps(seed, rank, weighted):
    block, rng = _random_block(seed)
    src = rng.normal(0, 0.5, (30, rank + 1)).astype(np.float32)
    exact, sse = np.empty((40, rank + 1), np.float32), np.empty(40)
    reference.solve_in_block(block.indptr, block.indices, block.values, src, 3.5, 0.3, 0.2, weighted, exact, sse)
    prev = rng.normal(0, 0.5, (40, rank + 1)).astype(np.float32)
    errors = []
    for steps in (1, 2, 4 * (rank + 1)):
        out, cg_sse = np.empty_like(exact), np.empty(40)
        assert als.solve_in_block_cg(block.indptr, block.indices, block.values, src, prev, 3.5, 0.3, 0.2, weighted,
                                     steps, out, cg_sse) == -1
        errors.append(np.abs(out - exact).max())
    assert errors[-1] < 1e-4
    assert errors[1] <= errors[0] + 1e-6
