import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_dist.blocking import block_bounds, build_in_block
from recsys_dist.errors import DataError
from tests.conftest import spark_example


def test_blocking_spark_example_matches_the_docstring():
    users, items, ratings = spark_example()
    user_block0 = build_in_block(0, 0, 4, *(a[users < 4] for a in (users, items, ratings)))
    assert user_block0.indptr.tolist() == [0, 3, 3, 3, 6]
    assert user_block0.indices.tolist() == [1, 4, 7, 1, 4, 7]
    keep = items >= 4
    item_block1 = build_in_block(1, 4, 8, items[keep], users[keep], ratings[keep])
    assert item_block1.indptr.tolist() == [0, 3, 3, 3, 6]
    assert item_block1.indices.tolist() == [0, 3, 6, 0, 3, 6]
    assert block_bounds(7, 2) == [(0, 4), (4, 7)]  # the user blocks of the docstring example
    assert block_bounds(8, 2) == [(0, 4), (4, 8)]


@settings(max_examples=40, deadline=None)
@given(n_blocks=st.integers(1, 9), seed=st.integers(0, 1000))
def test_blocking_decoded_blocks_equal_the_input(n_blocks, seed):
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, 25 * 17, 120))
    dst, src = keys // 17, keys % 17
    values = rng.random(len(keys)).astype(np.float32)
    seen = []
    for b, (lo, hi) in enumerate(block_bounds(25, n_blocks)):
        sel = (dst >= lo) & (dst < hi)
        block = build_in_block(b, lo, hi, dst[sel][::-1], src[sel][::-1], values[sel][::-1])
        rows = np.repeat(np.arange(lo, hi), np.diff(block.indptr))
        seen += list(zip(rows.tolist(), block.indices.tolist(), block.values.tolist()))
    assert sorted(seen) == sorted(zip(dst.tolist(), src.tolist(), values.tolist()))
    assert sum(hi - lo for lo, hi in block_bounds(25, n_blocks)) == 25


def test_blocking_rejects_rows_outside_the_block():
    with pytest.raises(DataError, match=r"outside \[0, 3\)"):
        build_in_block(0, 0, 3, np.array([5]), np.array([1]), np.array([1.0], np.float32))
