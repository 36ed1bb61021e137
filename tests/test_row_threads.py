"""Several kernel threads per block give the same bits as one, share the rows by rating count, and
hand a failing range's exception to the caller."""

import threading

import numpy as np
import pytest

from recsys_dist.blocking import build_in_block
from recsys_dist.kernels import als, als_cg, implicit_als
from recsys_dist.kernels.row_threads import get_threads, run_rows, set_threads


def _skewed_block(n_dst=3000, n_src=400, seed=5):
    rng = np.random.default_rng(seed)
    counts = np.minimum(rng.zipf(1.6, n_dst), n_src)  # a few very heavy rows, many with one rating
    counts[::11] = 0
    dst = np.repeat(np.arange(n_dst), counts)
    src = np.concatenate([rng.choice(n_src, c, replace=False) for c in counts])
    return build_in_block(0, 0, n_dst, dst, src, rng.integers(1, 6, len(dst)).astype(np.float32)), rng


def _solve_all(threads, block, src, prev):
    before = get_threads()
    set_threads(threads)
    try:
        out = {}
        for name in ("cholesky", "cg", "implicit"):
            rows, loss = np.full(prev.shape, np.nan, np.float32), np.full(len(prev), np.nan)
            if name == "cholesky":
                assert als.solve_in_block(block.indptr, block.indices, block.values, src, 3.5, 0.1, 0.05, True,
                                          rows, loss) == -1
            elif name == "cg":
                als_cg.solve_in_block_cg(block.indptr, block.indices, block.values, src, prev, 3.5, 0.1, 0.05, True, 3,
                                      rows, loss)
            else:
                gram = src[:, :-1].T.astype(np.float64) @ src[:, :-1]
                implicit_als.solve_implicit_block_cg(block.indptr, block.indices, block.values, src, prev, gram, 0.0,
                                                     2.0, False, False, 0.1, True, 3, rows, loss)
            out[name] = (rows, loss)
        return out
    finally:
        set_threads(before)


@pytest.mark.parametrize("threads", [2, 3])
def test_row_threads_any_thread_count_gives_the_one_thread_bits(threads):
    block, rng = _skewed_block()
    src = rng.normal(0, 0.3, (400, 17)).astype(np.float32)
    prev = rng.normal(0, 0.1, (3000, 17)).astype(np.float32)
    one, many = _solve_all(1, block, src, prev), _solve_all(threads, block, src, prev)
    for name in one:
        assert np.isfinite(one[name][0]).all(), name
        np.testing.assert_array_equal(many[name][0], one[name][0], err_msg=name)
        np.testing.assert_array_equal(many[name][1], one[name][1], err_msg=name)


def test_row_threads_ranges_cover_every_row_once_and_spread_the_ratings():
    block, _ = _skewed_block()
    seen, lock = [], threading.Lock()

    def record(lo, hi, indptr, buffer):
        assert buffer.shape == (1,)  # this thread's own scratch
        with lock:
            seen.append((lo, hi, threading.get_ident(), int(indptr[hi] - indptr[lo])))

    before = get_threads()
    set_threads(2)
    try:
        run_rows(record, block.indptr, (block.indptr,), lambda: (np.zeros(1),))
    finally:
        set_threads(before)
    covered = np.zeros(3000, int)
    for lo, hi, _, _ in seen:
        covered[lo:hi] += 1
    assert (covered == 1).all()
    assert len(seen) > 4
    # no range holds much more than its share, unless it is a single heavy row
    share = block.nnz / len(seen)
    assert all(n <= 2.5 * share or hi - lo == 1 for lo, hi, _, n in seen)


def test_row_threads_an_exception_in_a_helper_reaches_the_caller():
    block, _ = _skewed_block()

    def fail_late(lo, hi):
        if hi == 3000:
            raise ValueError("the last range failed")

    before = get_threads()
    set_threads(2)
    try:
        with pytest.raises(ValueError, match="last range"):
            run_rows(fail_late, block.indptr, (), lambda: ())
    finally:
        set_threads(before)


def test_row_threads_setting_is_per_thread():
    before, got = get_threads(), []
    t = threading.Thread(target=lambda: (set_threads(1), got.append(get_threads())))
    t.start()
    t.join()
    assert got == [1] and get_threads() == before
