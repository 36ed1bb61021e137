"""BPR (``bpr``; Rendle et al. 2009) as stratified distributed SGD (Gemulla et al. 2011).

Users are cut into B contiguous blocks and, every epoch, items into B strata by a hash of
(seed, epoch, item), so each stratum is a fresh random share of the catalogue. An epoch is B
sub-epochs; in sub-epoch s, user block b trains on its positives in item stratum (b + s) mod B,
drawing its negatives from that stratum too. Within a sub-epoch no two tasks share a user or an
item row, so they run in parallel without locks or conflicts, and every (user block, stratum)
pair is visited once per epoch. Each task's random stream is keyed by (seed, epoch, sub-epoch,
block): the model depends on the data, the settings (B included) and the seed, never on the
engine, the number of workers or the order in which tasks finish.

Worked example, B = 3: sub-epoch 0 pairs user blocks (0, 1, 2) with strata (0, 1, 2), sub-epoch
1 with (1, 2, 0), sub-epoch 2 with (2, 0, 1).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from recsys_dist.blocking import InBlock, build_in_block
from recsys_dist.config import ModelConfig
from recsys_dist.hashing import mix64
from recsys_dist.kernels.bpr import sgd_stratum

log = logging.getLogger(__name__)
MAX_TRIES = 10  # negative draws per triple before it is skipped (a user who rated almost the whole stratum)
POPULARITY_POWER = 0.75  # negatives by popularity: weight n_i^0.75 (word2vec's smoothing)


def stream_key(seed: int, *keys: int) -> np.uint64:
    """A 64-bit key of (seed, keys...) for a counter-based stream."""
    z = mix64(np.array([seed], np.uint64))[0]
    for k in keys:
        z = mix64(np.array([z ^ np.uint64(k)], np.uint64))[0]
    return np.uint64(z)


def strata_of(seed: int, epoch: int, n_items: int, n_strata: int) -> np.ndarray:
    """int32[n_items]: each item's stratum in this epoch, from a hash of (seed, epoch, item)."""
    base = stream_key(seed, 1_000_003, epoch)
    with np.errstate(over="ignore"):
        h = mix64(np.arange(n_items, dtype=np.uint64) ^ base)
    return (h % np.uint64(n_strata)).astype(np.int32)


def bpr_block(block: InBlock, user_rows: np.ndarray, item_matrix: np.ndarray, stratum: int, key: np.uint64,
              seed: int, epoch: int, n_strata: int, weights: np.ndarray | None, threshold: float, lr: float, reg: float,
              bias_reg: float, update_items: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratum task: SGD of the block's users against the items of ``stratum`` in ``epoch``.

    Returns the block's new user rows, the stratum's item indices and their new rows, and stats
    [ranked correctly, triples used, skipped, kernel seconds]."""
    started = time.perf_counter()
    candidates = np.flatnonzero(strata_of(seed, epoch, len(item_matrix), n_strata) == stratum).astype(np.int32)
    local = np.full(len(item_matrix), -1, np.int32)
    local[candidates] = np.arange(len(candidates), dtype=np.int32)
    item_rows = np.ascontiguousarray(item_matrix[candidates], np.float32).copy()
    users = np.ascontiguousarray(user_rows, np.float32).copy()
    cdf = np.cumsum(weights[candidates]) if weights is not None else np.empty(0, np.float64)
    stats = np.zeros(3, np.float64)
    sgd_stratum(block.indptr, block.indices, block.values, float(threshold), users, item_rows, local, candidates, cdf,
                np.uint64(key), float(lr), float(reg), float(bias_reg), bool(update_items), MAX_TRIES, stats)
    return users, candidates, item_rows, np.append(stats, time.perf_counter() - started)


def block_item_interactions(block: InBlock, _src: None, _own: None, n_items: int, threshold: float) -> np.ndarray:
    """Map task: interactions per item within the block's users (summed by the driver)."""
    return np.bincount(block.indices[block.values >= threshold], minlength=n_items)


class BPRSteps:
    sides = ("user",)

    def __init__(self, cfg: ModelConfig, mu: float) -> None:
        if cfg.reg > 0.05:
            log.warning("model.reg = %g: for bpr it is the weight decay of every SGD step, and values above about "
                        "0.05 shrink the factors to nothing; 0.01 is typical (conf/ml-100k-bpr.toml)", cfg.reg)
        self.cfg = cfg
        self.rank = cfg.rank
        self.weights: np.ndarray | None = None
        self.n_strata = 0

    def describe(self) -> str:
        c = self.cfg
        return (f"stratified SGD, {self.n_strata or c.strata} strata, learning rate {c.learning_rate:g} (x{c.lr_decay:g} per epoch), "
                f"{c.negatives} negatives")

    def blocks(self, n_users: int) -> int:
        return min(self.cfg.strata, n_users)

    def tasks_per_iteration(self, n_blocks: dict[str, int]) -> int:
        return n_blocks["user"] ** 2

    def prepare(self, ex: Any, counts: dict[str, np.ndarray], n_blocks: dict[str, int]) -> None:
        self.n_strata = n_blocks["user"]
        if self.cfg.negatives == "popularity":
            n_items = ex.matrix("item").shape[0]
            popularity = np.sum(ex.map_blocks("user", block_item_interactions, None, None, (n_items, self.cfg.threshold)),
                                axis=0)
            self.weights = popularity.astype(np.float64) ** POPULARITY_POWER

    def iteration(self, ex: Any, epoch: int) -> dict[str, Any]:
        cfg = self.cfg
        n = self.n_strata
        lr = cfg.learning_rate * cfg.lr_decay ** epoch
        started = time.perf_counter()
        totals = np.zeros(4)
        for sub in range(n):
            per_block = [((b + sub) % n, stream_key(cfg.seed, epoch, sub, b)) for b in range(n)]
            params = (cfg.seed, epoch, n, self.weights, cfg.threshold, lr, cfg.reg, cfg.bias_reg)
            totals += np.sum(ex.update_strata("user", bpr_block, "user", "item", params, per_block), axis=0)
        seconds = time.perf_counter() - started
        return {"learning_rate": lr, "sampled_auc": float(totals[0] / max(totals[1], 1.0)), "triples": int(totals[1]),
                "skipped": int(totals[2]), "user_seconds": seconds, "item_seconds": 0.0,
                "user_task_seconds": float(totals[3]), "item_task_seconds": 0.0}

    @staticmethod
    def summary(record: dict[str, Any]) -> str:
        return f"sampled AUC {record['sampled_auc']:.4f} over {record['triples']} triples, lr {record['learning_rate']:.4g}"


def fold_in_bpr(item_matrix: np.ndarray, item_idx: np.ndarray, ratings: np.ndarray, settings: dict[str, Any],
                init: np.ndarray, user_key: int) -> np.ndarray:
    """One user's [k+1] row by BPR SGD against the fixed item matrix: ``n_iter`` epochs over the user's
    own positives (as many triples an epoch as positives), negatives from the whole catalogue, from
    ``init``. The stream is keyed by (seed, ``user_key``, epoch), so a user's row never depends on which
    other users are folded in with them."""
    block = build_in_block(0, 0, 1, np.zeros(len(item_idx), np.int64), np.asarray(item_idx, np.int64),
                           np.asarray(ratings, np.float32))
    users = np.ascontiguousarray(init, np.float32).reshape(1, -1).copy()
    seed = int(settings.get("seed", 0))
    for epoch in range(int(settings.get("n_iter", 10))):
        lr = float(settings.get("learning_rate", 0.05)) * float(settings.get("lr_decay", 1.0)) ** epoch
        users, _, _, _ = bpr_block(block, users, item_matrix, 0, stream_key(seed, 7, user_key, epoch), seed, epoch, 1,
                                   None, float(settings.get("threshold", 0.0)), lr, float(settings.get("reg", 0.1)),
                                   float(settings.get("bias_reg", 0.1)), update_items=False)
    return users[0]
