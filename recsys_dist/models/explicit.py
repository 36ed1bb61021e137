"""Explicit biased ALS (``als``) and the bias-only baseline (``bias``): the rating predictors.

One iteration is two calls of the same half-step with the roles swapped:

    user half-step: src = item matrix (fixed, broadcast)  -> dst = user matrix
    item half-step: src = user matrix (fixed, broadcast)  -> dst = item matrix

Each half-step minimises the objective exactly (or, with CG, lowers it) over the dst side, so

    sum (r - mu - b_u - b_i - p_u.q_i)^2 + sum_rows s_r (reg |x_r|^2 + bias_reg b_r^2)

never increases.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from recsys_dist.als import block_regularization, solve_block
from recsys_dist.config import ModelConfig
from recsys_dist.kernels.als_gram import GRAM_COLS


class ExplicitSteps:
    sides = ("user", "item")
    sharded = True  # factors live with the blocks: the penalty term is a block reduction, not driver arithmetic

    def __init__(self, cfg: ModelConfig, mu: float) -> None:
        self.cfg, self.mu = cfg, mu
        self.rank = cfg.rank if cfg.kind == "als" else 0
        self.weighted = cfg.kind == "als" and cfg.reg_mode == "weighted"
        self.solver = cfg.effective_solver()
        self.cg_steps = cfg.cg_steps if self.solver == "cg" else 0
        # float16 rows from rank 16: a narrower row is at most one cache line either way, and the Gram kernel's
        # column broadcasts then take shuffles (ml-25m-shape item rows, rank 10: 13.1 against 9.9 ns per rating)
        self.half_src = cfg.gather_dtype == "float16" and self.rank + 1 > GRAM_COLS
        self.counts: dict[str, np.ndarray] = {}

    def describe(self) -> str:
        if not self.cg_steps:
            return "Cholesky"
        gathers = (", float16 gathers" if self.half_src else
                   ", float32 gathers (model.gather_dtype float16 applies from rank 16)"
                   if self.cfg.gather_dtype == "float16" else "")
        return f"{self.cg_steps} warm-started conjugate-gradient steps{gathers}"

    def tasks_per_iteration(self, n_blocks: dict[str, int]) -> int:
        return n_blocks["user"] + n_blocks["item"]  # a solve per block (it also returns the block's penalty)

    def prepare(self, ex: Any, counts: dict[str, np.ndarray], n_blocks: dict[str, int]) -> None:
        self.counts = counts
        self.penalty = {side: self._penalty(ex, side) for side in self.sides}

    def _penalty(self, ex: Any, side: str) -> float:
        """The side's regularization term, summed from its blocks (a side's term changes only in its half-step)."""
        cfg = self.cfg
        return float(sum(ex.map_blocks(side, block_regularization, None, side, (cfg.reg, cfg.bias_reg, self.weighted))))

    def iteration(self, ex: Any, iteration: int) -> dict[str, Any]:
        cfg = self.cfg
        record: dict[str, Any] = {"solver": self.solver}
        step = (self.mu, cfg.reg, cfg.bias_reg, self.weighted, ex.task_threads, self.cg_steps)
        for dst, src in (("user", "item"), ("item", "user")):
            stats = half_step(ex, record, dst, src, solve_block, step, self.cg_steps > 0, self.half_src)
            self.penalty[dst] = float(stats[2])
            record[f"{dst}_nonfinite"] = int(stats[3])
            record[f"objective_after_{dst}"] = float(stats[0] + self.penalty["user"] + self.penalty["item"])
        record["objective"] = record["objective_after_item"]
        record["train_rmse"] = float(np.sqrt(stats[0] / stats[1]))
        return record

    @staticmethod
    def summary(record: dict[str, Any]) -> str:
        return f"objective {record['objective']:.6g}, train RMSE {record['train_rmse']:.4f}"


def half_step(ex: Any, record: dict[str, Any], dst: str, src: str, task: Any, params: tuple,
              with_prev: bool, half_src: bool = False) -> np.ndarray:
    """One timed ``ex.solve`` of the dst side; returns the summed block stats (kernel seconds last)."""
    t0 = time.perf_counter()
    stats = np.sum(ex.solve(dst, task, src, dst, params, with_prev=with_prev, half_src=half_src), axis=0)
    record[f"{dst}_seconds"] = record.get(f"{dst}_seconds", 0.0) + time.perf_counter() - t0
    record[f"{dst}_task_seconds"] = record.get(f"{dst}_task_seconds", 0.0) + float(stats[-1])
    return stats
