"""Float16 gather copies (kernels/half.py): the conversion, and CG kernels gathering from them."""

import numpy as np
import pytest

from recsys_dist.als import solve_block
from recsys_dist.errors import FitError
from recsys_dist.kernels import als_cg
from recsys_dist.kernels.half import half_copy, narrow_into, widened
from tests.test_kernels import _long_block


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 1000])
def test_half_copy_rounds_as_numpy_does_including_the_edges(n):
    rng = np.random.default_rng(n)
    src = rng.normal(0, 0.3, (n, 3)).astype(np.float32)
    if n:  # overflow, underflow to a subnormal and to zero, a tie, nan and infinities
        src.flat[:7] = [7e4, -3e-6, 1e-9, 1 + 2 ** -11, np.nan, np.inf, -np.inf][:src.size]
    with np.errstate(over="ignore"):
        want = src.astype(np.float16)
    np.testing.assert_array_equal(half_copy(src), want.view(np.uint16))
    np.testing.assert_array_equal(widened(half_copy(src)), want.astype(np.float32))


def test_half_narrow_into_refuses_mismatched_arrays():
    with pytest.raises(ValueError, match="one shape"):
        narrow_into(np.zeros((3, 2), np.float32), np.zeros((2, 3), np.uint16))
    with pytest.raises(ValueError, match="float32 src"):
        narrow_into(np.zeros((3, 2), np.float64), np.zeros((3, 2), np.uint16))


@pytest.mark.parametrize("rank", [0, 1, 10, 15, 16, 20, 64, 260])  # each CG kernel, the vector counts, Numba loops
def test_half_cg_on_float16_bits_equals_cg_on_their_float32_values_bit_for_bit(rank):
    """The kernels widen each gathered row exactly and compute as before: same rows, same squared error."""
    block, rng = _long_block(31 + rank)
    n = block.hi - block.lo
    src = rng.normal(0, 0.3, (300, rank + 1)).astype(np.float32)
    prev = rng.normal(0, 0.1, (n, rank + 1)).astype(np.float32)
    bits = half_copy(src)
    assert not np.array_equal(widened(bits), src)  # the copy really is rounded
    results = []
    for matrix in (bits, widened(bits)):
        out, sse = np.empty((n, rank + 1), np.float32), np.empty(n)
        als_cg.solve_in_block_cg(block.indptr, block.indices, block.values, matrix, prev, 3.5, 0.1, 0.05, True, 3,
                                 out, sse)
        results.append((out, sse))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    # and the rounding moves the solution by little (two steps: test_kernels' plain-CG test says why not three)
    rows = []
    for matrix in (bits, src):
        out, sse = np.empty((n, rank + 1), np.float32), np.empty(n)
        als_cg.solve_in_block_cg(block.indptr, block.indices, block.values, matrix, prev, 3.5, 0.1, 0.05, True, 2,
                                 out, sse)
        rows.append(out)
    np.testing.assert_allclose(rows[0], rows[1], atol=2e-3)


def test_half_cholesky_refuses_float16_src():
    block, rng = _long_block(3)
    bits = half_copy(rng.normal(0, 0.3, (300, 5)).astype(np.float32))
    with pytest.raises(FitError, match="gather_dtype.*CG"):
        solve_block(block, bits, None, 3.5, 0.1, 0.1, True, 1, 0)


def test_half_gather_dtype_is_part_of_a_checkpoints_fingerprint_and_its_default_is_not(small_split):
    """float16 gathers make another model, so a checkpoint does not resume across the setting; the default
    leaves the fingerprint as it was before the key existed, so older checkpoints still resume."""
    import dataclasses
    import hashlib
    import json

    from recsys_dist.config import ModelConfig
    from recsys_dist.data.dataset import Dataset
    from recsys_dist.train import fingerprint

    train = Dataset.open(str(small_split / "train"))
    cfg = ModelConfig(rank=4)
    assert fingerprint(train, cfg) != fingerprint(train, dataclasses.replace(cfg, gather_dtype="float16"))
    before = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("n_iter", "tol", "clip", "gather_dtype")
              and k not in ("burn_in", "noise_precision", "sample_noise", "genre_reg")}
    text = json.dumps([train.manifest["files"], before], sort_keys=True)
    assert fingerprint(train, cfg) == hashlib.sha256(text.encode()).hexdigest()[:16]


def test_half_gathers_change_the_model_from_rank_16_only(small_split):
    """Below rank 16 a src row is at most one cache line and float16 gathers are not used (same model); from
    rank 16 they are: a slightly different model (a few rarely rated items move by 0.01 after 3 iterations
    of 3 CG steps), as accurate."""
    import dataclasses

    from recsys_dist.config import EngineConfig, ModelConfig, TrainConfig
    from recsys_dist.train import fit

    base = ModelConfig(rank=8, reg=0.05, n_iter=3, seed=7, solver="cg")
    for rank, same in ((8, True), (15, True), (16, False)):
        runs = [fit(TrainConfig(train=str(small_split / "train")),
                    dataclasses.replace(base, rank=rank, gather_dtype=dtype), EngineConfig(name="inprocess"))
                for dtype in ("float32", "float16")]
        a, b = (run.model.item_matrix_ for run in runs)
        assert np.array_equal(a, b) == same, rank
        assert runs[1].history[-1]["train_rmse"] == pytest.approx(runs[0].history[-1]["train_rmse"], abs=1e-4)
