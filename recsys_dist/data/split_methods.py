"""Which ratings go to test: pure functions over one user block of ratings.

Every method decides from the rating itself (user, item, timestamp) and the seed,
never from block boundaries or row order, so the split is the same whatever the
partitioning, and every user's ratings sit in one block, so per-user rules need no
global pass.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

from recsys_dist.data.dataset import Ratings
from recsys_dist.errors import ConfigError
from recsys_dist.hashing import mix64

def pair_hash(seed: int, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    key = (user.astype(np.uint64) << np.uint64(32)) | item.astype(np.uint64)
    with np.errstate(over="ignore"):
        return mix64(key ^ mix64(np.array([seed], np.uint64))[0])


def uniform(seed: int, user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """A deterministic uniform [0, 1) draw per (seed, user, item)."""
    return (pair_hash(seed, user, item) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def chosen_rows(n: int, fraction: float, seed: int, stream: int) -> np.ndarray:
    """bool[n]: round(fraction * n) rows (at least one) picked by a seeded hash of the row index, the same
    for every block and partitioning."""
    keys = np.arange(n, dtype=np.uint64) ^ mix64(np.array([seed * 1_000_003 + stream], np.uint64))[0]
    order = np.argsort(mix64(keys), kind="stable")
    chosen = np.zeros(n, bool)
    chosen[order[:max(1, int(round(fraction * n)))]] = True
    return chosen


def cold_holdout(r: Ratings, chosen: np.ndarray, users: bool, fraction: float, seed: int) -> np.ndarray:
    """Every rating of the chosen items (users) and a random ``fraction`` of the others: the chosen ones
    become cold (no training rating), the others leave warm test ratings to compare with."""
    side = r.user_idx if users else r.item_idx
    return chosen[side] | random_holdout(r, fraction, seed)


def random_holdout(r: Ratings, fraction: float, seed: int) -> np.ndarray:
    return uniform(seed, r.user_idx, r.item_idx) < fraction


def temporal(r: Ratings, cutoff: int) -> np.ndarray:
    return r.timestamp >= cutoff


def parse_cutoff(text: str) -> int:
    """Epoch seconds, or an ISO date/time (UTC when no zone is given)."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"split.cutoff: {text!r} is neither epoch seconds nor an ISO date") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return int(when.timestamp())


def _rank_within_user(user: np.ndarray, key_primary: np.ndarray, key_secondary: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order rows by (user, primary, secondary); return order, rank of each ordered row, and user sizes."""
    order = np.lexsort((key_secondary, key_primary, user))
    u = user[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    sizes = np.diff(np.r_[starts, len(u)])
    rank = np.arange(len(u)) - np.repeat(starts, sizes)
    return order, rank, np.repeat(sizes, sizes)


def last_k(r: Ratings, k: int) -> np.ndarray:
    """Each user's k latest ratings (later item index on equal times), keeping at least one in train."""
    mask = np.zeros(len(r), dtype=bool)
    if not len(r):
        return mask
    order, rank, size = _rank_within_user(r.user_idx, r.timestamp, r.item_idx)
    held = np.minimum(k, size - 1)
    mask[order] = rank >= size - held
    return mask


def kfold(r: Ratings, n_folds: int, fold: int, seed: int) -> np.ndarray:
    """User-stratified folds: each user's ratings, in a seeded random order, are dealt round-robin
    to the folds from a per-user random start, so every fold gets 1/n of every user's ratings."""
    mask = np.zeros(len(r), dtype=bool)
    if not len(r):
        return mask
    order, rank, _ = _rank_within_user(r.user_idx, pair_hash(seed, r.user_idx, r.item_idx), r.item_idx)
    start = mix64(r.user_idx[order].astype(np.uint64) ^ np.uint64(seed)) % np.uint64(n_folds)
    mask[order] = (rank + start.astype(np.int64)) % n_folds == fold
    return mask
