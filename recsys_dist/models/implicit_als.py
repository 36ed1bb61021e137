"""Implicit-feedback ALS (``implicit_als``; Hu, Koren & Volinsky 2008) on the block engines.

Per half-step (src fixed, dst solved; see kernels/implicit_als.py for the row system):

1. G = Y^T Y of the src side: the sum of the k x k Gram matrices its blocks' solves returned in the
   previous half-step (a map over the blocks before the first; no task ever needs all of Y for it);
2. a solve over the dst blocks with the broadcast src matrix and G: each row touches only
   its own interactions, warm-started CG by default (or Cholesky); each block also returns its
   rows' Gram matrix, penalty and non-finite count, so the next half-step needs no other pass.

Both lower the objective sum_all c (p - x.y)^2 + sum_rows s_r reg |x_r|^2, which the driver
records per iteration. Rows without interactions get zero factors.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from recsys_dist.als import regularization
from recsys_dist.blocking import InBlock, build_in_block
from recsys_dist.config import ModelConfig
from recsys_dist.errors import FitError
from recsys_dist.kernels.row_threads import set_threads
from recsys_dist.kernels.implicit_als import count_interactions, solve_implicit_block, solve_implicit_block_cg
from recsys_dist.kernels.moments import gram as gram_of_rows
from recsys_dist.models.explicit import half_step


def block_gram(block: InBlock, _src: None, own_rows: np.ndarray, _threads: int) -> np.ndarray:
    """Map task: the k x k Gram matrix (float64) of the block's own factor rows (the same bits on every
    engine: see kernels/moments.py)."""
    return gram_of_rows(own_rows, own_rows.shape[1] - 1)


def block_interactions(block: InBlock, _src: None, _own: None, threshold: float) -> np.ndarray:
    """Map task: interactions (ratings >= threshold) per row of the block."""
    out = np.empty(block.hi - block.lo, np.int64)
    count_interactions(block.indptr, block.values, float(threshold), out)
    return out


def implicit_penalty(block: InBlock, _src: None, own_rows: np.ndarray, threshold: float, reg: float,
                     weighted: bool) -> float:
    """Map task: the block's share of the regularization term, weighted by its rows' interactions."""
    return regularization(own_rows, block_interactions(block, None, None, threshold), reg, 0.0, weighted)


def solve_implicit(block: InBlock, src: np.ndarray, prev: np.ndarray | None, gram: np.ndarray, threshold: float,
                   alpha: float, scaled: bool, binary: bool, reg: float, weighted: bool, threads: int,
                   cg_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Solve task: new rows [hi-lo, k+1] and stats [objective share, interactions, the rows' share of the
    regularization term, their non-finite entries, their k x k Gram matrix (flattened), kernel seconds]:
    the penalty, the finiteness check and the Gram matrix the other side's half-step needs come with the
    solve, not from more passes over the blocks."""
    if src.dtype != np.float32 or not src.flags.c_contiguous:
        raise FitError(f"block {block.block_id}: src matrix must be C-contiguous float32, got {src.dtype}")
    set_threads(threads)
    started = time.perf_counter()
    rows = np.empty((block.hi - block.lo, src.shape[1]), np.float32)
    loss = np.empty(block.hi - block.lo, np.float64)
    gram = np.ascontiguousarray(gram, np.float64)
    args = (float(threshold), float(alpha), bool(scaled), bool(binary), float(reg), bool(weighted))
    if cg_steps:
        if prev is None or prev.shape != rows.shape:
            raise FitError(f"block {block.block_id}: the conjugate-gradient solver needs the block's current rows")
        solve_implicit_block_cg(block.indptr, block.indices, block.values, src, np.ascontiguousarray(prev, np.float32),
                                gram, *args, int(cg_steps), rows, loss)
    else:
        bad = solve_implicit_block(block.indptr, block.indices, block.values, src, gram, *args, rows, loss)
        if bad >= 0:
            raise FitError(f"block {block.block_id}: the system of row {block.lo + bad} is not positive definite; "
                           "increase model.reg")
    interactions = block_interactions(block, None, None, threshold)
    penalty = regularization(rows, interactions, reg, 0.0, weighted)
    gram_out = block_gram(block, None, rows, threads).ravel()
    nonfinite = rows.size - np.count_nonzero(np.isfinite(rows))
    return rows, np.concatenate([[loss.sum(), float(interactions.sum()), penalty, nonfinite], gram_out,
                                 [time.perf_counter() - started]])


def confidence_args(cfg: dict[str, Any] | ModelConfig) -> tuple[float, float, bool, bool]:
    """(threshold, alpha, scaled, binary) from a ModelConfig or its saved mapping."""
    get = cfg.get if isinstance(cfg, dict) else lambda key, default=None: getattr(cfg, key)
    return (float(get("threshold", 0.0)), float(get("alpha", 1.0)), get("confidence", "1+alpha*r") == "alpha*r",
            get("strength", "rating") == "binary")


class ImplicitSteps:
    sides = ("user", "item")
    sharded = True  # factors live with the blocks: Gram matrices and the penalty term are block reductions

    def __init__(self, cfg: ModelConfig, mu: float) -> None:
        self.cfg = cfg
        self.rank = cfg.rank
        self.weighted = cfg.reg_mode == "weighted"
        self.solver = cfg.effective_solver()
        self.cg_steps = cfg.cg_steps if self.solver == "cg" else 0
        self.counts: dict[str, np.ndarray] = {}

    def describe(self) -> str:
        how = f"{self.cg_steps} warm-started conjugate-gradient steps" if self.cg_steps else "Cholesky"
        return f"{how}; confidence {self.cfg.confidence} with alpha {self.cfg.alpha:g}, r = {self.cfg.strength}"

    def tasks_per_iteration(self, n_blocks: dict[str, int]) -> int:
        return n_blocks["user"] + n_blocks["item"]  # a solve per block (also the block's penalty and Gram matrix)

    def prepare(self, ex: Any, counts: dict[str, np.ndarray], n_blocks: dict[str, int]) -> None:
        # interactions per row (weighted lambda and the regularization term), as a map: ratings stay put
        self.counts = {side: np.concatenate(ex.map_blocks(side, block_interactions, None, None,
                                                          (self.cfg.threshold,)))
                       for side in ("user", "item")}
        if not self.counts["user"].any():
            raise FitError(f"no rating is >= model.threshold = {self.cfg.threshold:g}: there are no interactions")
        self.penalty = {side: self._penalty(ex, side) for side in self.sides}
        self.gram = {side: np.sum(ex.map_blocks(side, block_gram, None, side, (ex.task_threads,)), axis=0)
                     for side in self.sides}

    def _penalty(self, ex: Any, side: str) -> float:
        """The side's regularization term, summed from its blocks (a side's term changes only in its half-step)."""
        cfg = self.cfg
        return float(sum(ex.map_blocks(side, implicit_penalty, None, side, (cfg.threshold, cfg.reg, self.weighted))))

    def iteration(self, ex: Any, iteration: int) -> dict[str, Any]:
        cfg = self.cfg
        record: dict[str, Any] = {"solver": self.solver}
        k = self.rank
        for dst, src in (("user", "item"), ("item", "user")):
            params = (self.gram[src], *confidence_args(cfg), cfg.reg, self.weighted, ex.task_threads, self.cg_steps)
            stats = half_step(ex, record, dst, src, solve_implicit, params, self.cg_steps > 0)
            self.penalty[dst] = float(stats[2])
            record[f"{dst}_nonfinite"] = int(stats[3])
            self.gram[dst] = stats[4:4 + k * k].reshape(k, k)
            record[f"objective_after_{dst}"] = float(stats[0] + self.penalty["user"] + self.penalty["item"])
        record["objective"] = record["objective_after_item"]
        return record

    @staticmethod
    def summary(record: dict[str, Any]) -> str:
        return f"objective {record['objective']:.6g}"


def fold_in_implicit(item_matrix: np.ndarray, rows: np.ndarray, item_idx: np.ndarray, ratings: np.ndarray,
                     n_rows: int, settings: dict[str, Any]) -> np.ndarray:
    """[n_rows, k+1] rows of users 0..n_rows-1 from their interactions alone (``rows[j]`` rated
    ``item_idx[j]``), by an exact solve against the fixed item factors: implicit's recalculate_user."""
    block = build_in_block(0, 0, n_rows, np.asarray(rows, np.int64), np.asarray(item_idx, np.int64),
                           np.asarray(ratings, np.float32))
    items = np.ascontiguousarray(item_matrix, np.float32)
    gram = block_gram(block, None, items, 0)
    solved, _ = solve_implicit(block, items, None, gram, *confidence_args(settings), float(settings.get("reg", 0.1)),
                               settings.get("reg_mode", "weighted") == "weighted", 0, 0)
    return solved
