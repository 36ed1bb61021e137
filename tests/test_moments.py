"""The moment kernels block tasks reduce: the products they stand for, and the same bits for any
memory layout (a BLAS product's bits depend on its thread count; these must not)."""

import numpy as np

from recsys_dist.kernels.moments import gram, weighted_cross


def test_gram_is_yty_of_the_first_k_columns_and_symmetric():
    rows = np.random.default_rng(1).standard_normal((500, 9)).astype(np.float32)
    y = rows[:, :8].astype(np.float64)
    out = gram(rows, 8)
    np.testing.assert_allclose(out, y.T @ y, rtol=1e-12, atol=1e-10)
    assert np.array_equal(out, out.T)


def test_gram_bits_do_not_depend_on_layout():
    rows = np.random.default_rng(2).standard_normal((3000, 33)).astype(np.float32)
    strided = np.asfortranarray(rows)
    padded = np.zeros((3000, 40), np.float32)
    padded[:, :33] = rows
    assert gram(rows, 32).tobytes() == gram(strided, 32).tobytes() == gram(padded[:, :33], 32).tobytes()


def test_weighted_cross_is_ft_s_x():
    rng = np.random.default_rng(3)
    f = (rng.random((400, 19)) < 0.2).astype(np.float64)
    s = rng.random(400)
    x = rng.standard_normal((400, 11)).astype(np.float32)
    np.testing.assert_allclose(weighted_cross(f, s, x), f.T @ (s[:, None] * x.astype(np.float64)), rtol=1e-12,
                               atol=1e-10)
    np.testing.assert_allclose(weighted_cross(f, s, f), f.T @ (s[:, None] * f), rtol=1e-12, atol=1e-12)
