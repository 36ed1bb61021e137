"""The item blocks built by one shuffle of the user blocks are the blocks a scan of storage builds, on every engine."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_dist.blocking import block_bounds, build_in_block
from recsys_dist.config import EngineConfig
from recsys_dist.data.blocks import build_from_pieces, load_item_block, load_user_block, split_by_block
from recsys_dist.data.dataset import Dataset
from recsys_dist.executors import make_executor


def block_arrays(block, src, own):  # a map task: the block as the engine holds it
    return block.lo, block.hi, block.indptr.copy(), block.indices.copy(), block.values.copy()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 200), order=st.sampled_from(["random", "dst", "src"]))
def test_block_shuffle_build_orders_ratings_as_lexsort_from_any_arrival_order(seed, n, order):
    rng = np.random.default_rng(seed)
    dst, src = rng.integers(10, 30, n).astype(np.int32), rng.integers(0, 50, n).astype(np.int32)  # duplicates too
    values = np.arange(n, dtype=np.float32)  # tells duplicates apart: their arrival order must be kept
    if order != "random":  # the two orders blocks arrive in: read from the user-sorted Parquet, or cut pieces
        keep = np.lexsort((src, dst)) if order == "dst" else np.argsort(src, kind="stable")
        dst, src, values = dst[keep], src[keep], values[keep]
    block = build_in_block(0, 10, 30, dst, src, values)
    expected = np.lexsort((src, dst))
    assert block.indices.tolist() == src[expected].tolist()
    assert block.values.tolist() == values[expected].tolist()


@pytest.mark.parametrize("engine", [
    EngineConfig(name="inprocess"),
    EngineConfig(name="shm", workers=2),
    pytest.param(EngineConfig(name="dask", workers=2), marks=pytest.mark.dask),
], ids=["inprocess", "shm", "dask"])
def test_block_shuffle_gives_the_item_blocks_a_storage_scan_gives(ml100k_dataset, engine):
    ds = Dataset.open(str(ml100k_dataset))
    users, items = block_bounds(ds.n_users, 5), block_bounds(ds.n_items, 4)
    edges = np.array([lo for lo, _ in items] + [ds.n_items])
    with make_executor(engine) as ex:
        ex.load_blocks("user", load_user_block, [(ds.url, b, lo, hi) for b, (lo, hi) in enumerate(users)])
        counts = ex.shuffle_blocks("item", "user", split_by_block, (edges,), build_from_pieces,
                                   [(b, lo, hi) for b, (lo, hi) in enumerate(items)])
        held = ex.map_blocks("item", block_arrays, None, None, ())
    assert np.concatenate(counts).tolist() == ds.rating_counts()[1].tolist()
    for b, (lo, hi) in enumerate(items):
        scanned = load_item_block(ds.url, b, lo, hi)
        got = held[b]
        assert (got[0], got[1]) == (lo, hi)
        assert got[2].tolist() == scanned.indptr.tolist()
        assert got[3].tolist() == scanned.indices.tolist()
        assert got[4].tolist() == scanned.values.tolist()


def test_block_shuffle_an_empty_piece_and_an_item_nobody_rated(tmp_path):
    block = build_in_block(0, 0, 2, np.array([0, 1]), np.array([4, 4]), np.array([1.0, 2.0], np.float32))
    split = split_by_block(block, np.array([0, 3, 6]))
    arrays, offsets = split
    pieces = [tuple(a[offsets[j]:offsets[j + 1]] for a in arrays) for j in range(2)]
    first, second = build_from_pieces(0, 0, 3, [pieces[0]]), build_from_pieces(1, 3, 6, [pieces[1]])
    assert first.nnz == 0 and first.row_counts().tolist() == [0, 0, 0]
    assert second.row_counts().tolist() == [0, 2, 0] and second.indices.tolist() == [0, 1]
    assert build_from_pieces(2, 0, 3, []).nnz == 0
