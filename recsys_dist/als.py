"""Module-level task functions of blocked ALS: arrays and scalars in, arrays out.

These run wherever the executor puts them (this process, a pool process, a Dask worker).
"""

from __future__ import annotations

import time

import numpy as np

from recsys_dist.blocking import InBlock, build_in_block
from recsys_dist.errors import FitError
from recsys_dist.hashing import normal
from recsys_dist.kernels.als import predict_pairs, solve_in_block
from recsys_dist.kernels.als_cg import solve_in_block_cg
from recsys_dist.kernels.row_threads import set_threads

INIT_SCALE = 0.1


def solve_block(block: InBlock, src: np.ndarray, prev: np.ndarray | None, mu: float, reg: float, bias_reg: float,
                weighted: bool, threads: int, cg_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Solve the dst rows of ``block`` against the fixed ``src`` matrix [n_src, k+1]: float32, or for CG its
    float16 bits (uint16, kernels/half.py: ``solve(..., half_src=True)``).

    ``cg_steps`` = 0 solves exactly (Cholesky); otherwise that many conjugate-gradient steps
    start from ``prev``, the block's current rows.

    Returns the new rows [hi-lo, k+1] float32 and stats [sum of squared errors, nnz, the rows' share
    of the regularization term, their non-finite entries, kernel seconds] (the seconds let the driver
    tell computation from engine overhead; penalty and finiteness come with the solve, so neither
    costs another pass over the blocks).
    """
    if src.dtype not in (np.float32, np.uint16) or not src.flags.c_contiguous:
        raise FitError(f"block {block.block_id}: src matrix must be C-contiguous float32 (or its float16 bits, "
                       f"uint16), got {src.dtype}")
    if src.dtype == np.uint16 and not cg_steps:
        raise FitError(f"block {block.block_id}: float16 src rows (model.gather_dtype) need the CG solver")
    set_threads(threads)
    started = time.perf_counter()
    rows = np.empty((block.hi - block.lo, src.shape[1]), np.float32)
    row_sse = np.empty(block.hi - block.lo, np.float64)
    if cg_steps:
        if prev is None or prev.shape != rows.shape:
            raise FitError(f"block {block.block_id}: the conjugate-gradient solver needs the block's current rows")
        bad = solve_in_block_cg(block.indptr, block.indices, block.values, src, np.ascontiguousarray(prev, np.float32),
                                float(mu), float(reg), float(bias_reg), bool(weighted), int(cg_steps), rows, row_sse)
    else:
        bad = solve_in_block(block.indptr, block.indices, block.values, src, float(mu), float(reg), float(bias_reg),
                             bool(weighted), rows, row_sse)
    if bad >= 0:
        raise FitError(f"block {block.block_id}: the normal equations of row {block.lo + bad} are not positive "
                       "definite; increase model.reg or model.bias_reg")
    penalty = regularization(rows, block.row_counts(), reg, bias_reg, weighted)
    nonfinite = rows.size - np.count_nonzero(np.isfinite(rows))
    return rows, np.array([row_sse.sum(), block.nnz, penalty, nonfinite, time.perf_counter() - started], np.float64)


def fold_in_rows(item_matrix: np.ndarray, rows: np.ndarray, item_idx: np.ndarray, ratings: np.ndarray, n_rows: int,
                 mu: float, reg: float, bias_reg: float, weighted: bool) -> np.ndarray:
    """[n_rows, k+1] bias and factors of users 0..n_rows-1 from their ratings (``rows[j]`` rated item
    ``item_idx[j]``) by one exact (Cholesky) solve against the fixed item matrix: training's user
    half-step with ``solver = "cholesky"``, bit for bit; CG's half-step approaches this same solution
    (see the README's fold-in section for the measured gap at rank 64)."""
    block = build_in_block(0, 0, n_rows, np.asarray(rows, np.int64), np.asarray(item_idx, np.int64),
                           np.asarray(ratings, np.float32))
    solved, _ = solve_block(block, np.ascontiguousarray(item_matrix, np.float32), None, mu, reg, bias_reg, weighted,
                            0, 0)
    return solved


def init_matrix(seed: int, side: int, n_rows: int, rank: int) -> np.ndarray:
    """Initial [n_rows, rank+1] matrix: N(0, INIT_SCALE^2) factors from (seed, side, row) alone, zero bias."""
    return init_rows(0, n_rows, seed, side, rank)


def init_rows(lo: int, hi: int, seed: int, side: int, rank: int) -> np.ndarray:
    """Rows lo..hi-1 of ``init_matrix``: each row from (seed, side, row) alone, so a sharded matrix built block
    by block where the blocks live equals the whole one, on every engine and block count."""
    out = np.zeros((hi - lo, rank + 1), np.float32)
    if rank:
        out[:, :rank] = INIT_SCALE * normal(seed, side, np.arange(lo, hi), rank)
    return out


def regularization(matrix: np.ndarray, counts: np.ndarray, reg: float, bias_reg: float, weighted: bool) -> float:
    """sum_r s_r (reg ||x_r||^2 + bias_reg b_r^2), s_r = n_r (weighted) or 1, over rows with ratings."""
    m = matrix.astype(np.float64)
    per_row = reg * np.einsum("ij,ij->i", m[:, :-1], m[:, :-1]) + bias_reg * m[:, -1] ** 2
    scale = counts.astype(np.float64) if weighted else (counts > 0).astype(np.float64)
    return float(per_row @ scale)


def block_regularization(block: InBlock, _src: None, own_rows: np.ndarray, reg: float, bias_reg: float,
                         weighted: bool) -> float:
    """Map task: the block's share of ``regularization`` (its rows, its own rating counts), so the objective's
    penalty is a sum of per-block floats and no task or driver needs a whole factor matrix."""
    return regularization(own_rows, block.row_counts(), reg, bias_reg, weighted)


def block_is_finite(block: InBlock, _src: None, own_rows: np.ndarray) -> bool:
    """Map task: whether every entry of the block's own factor rows is finite."""
    return bool(np.isfinite(own_rows).all())


def block_errors(block: InBlock, item_matrix: np.ndarray, user_rows: np.ndarray, mu: float,
                 clip: tuple[float, float] | None) -> tuple[float, float, int]:
    """Map task over ratings blocked like the training users (the training blocks themselves, or test or cold
    ratings loaded with their bounds): (sum of squared errors, sum of absolute errors, ratings) of the
    predictions ``ALSModel.predict_idx`` makes for them (mu + biases + dot product, clipped to ``clip``), from the
    block's own user rows and the item matrix, so RMSE and MAE need no model in the driver (``error_metrics``)."""
    users = np.repeat(np.arange(block.hi - block.lo, dtype=np.int64), block.row_counts())
    predicted = np.empty(block.nnz, np.float64)
    predict_pairs(users, np.asarray(block.indices, np.int64), np.ascontiguousarray(user_rows, np.float32),
                  item_matrix, float(mu), predicted)
    return error_sums(predicted, block.values, clip)


def error_sums(predicted: np.ndarray, actual: np.ndarray,
               clip: tuple[float, float] | None) -> tuple[float, float, int]:
    """(sum of squared errors, sum of absolute errors, n) of float64 ``predicted``, clipped to ``clip`` in place."""
    if clip is not None:
        np.clip(predicted, *clip, out=predicted)
    errors = predicted - actual
    return float(np.sum(errors ** 2)), float(np.sum(np.abs(errors))), int(len(errors))


def error_metrics(sums: list[tuple[float, float, int]]) -> dict[str, float | int]:
    """``evaluate.rating_metrics`` (rmse, mae, n) from ``block_errors``' per-block sums."""
    sse, sae, n = (sum(s[i] for s in sums) for i in range(3))
    return {"rmse": float(np.sqrt(sse / n)) if n else float("nan"), "mae": float(sae / n) if n else float("nan"),
            "n": int(n)}
