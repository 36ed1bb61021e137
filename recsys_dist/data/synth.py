"""MovieLens-shaped synthetic ratings from a planted biased low-rank model.

Deterministic by seed. Users' activity is heavy-tailed (log-normal above a floor of
``min_user_ratings``), items' popularity is Zipf-like, every item gets at least one
rating, and each rating is

    r = clip(round_to_star(mu + b_u + b_i + p_u . q_i + noise), scale)

where item factors carry a genre component, so genre-aware models have signal. The
planted (noiseless) values are kept to report the noise floor: the RMSE a perfect model
would score (``planted_rmse`` in the manifest).

Memory: the sampled (user, item) pairs are held as int32 (4 bytes a rating); ratings and
timestamps are made and written one user block at a time, so 32M ratings fit in ~1 GB.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recsys_dist.config import SynthConfig
from recsys_dist.data.dataset import Ratings
from recsys_dist.data.formats import HALF_STARS, WHOLE_STARS, RatingScale
from recsys_dist.errors import ConfigError
from recsys_dist.kernels.sampling import cover_items, planted_ratings, sample_user_items

# (users, items, ratings, stars) of the real releases.
SHAPES = {
    "ml-100k": (943, 1682, 100_000, "whole"),
    "ml-1m": (6040, 3706, 1_000_209, "whole"),
    "ml-25m": (162_541, 59_047, 25_000_095, "half"),
    "ml-32m": (200_948, 84_432, 32_000_204, "half"),
}
GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
_GENRE_WEIGHT = np.array([8, 5, 2, 3, 14, 5, 3, 19, 3, 1, 4, 2, 2, 7, 4, 8, 2, 1], dtype=np.float64)
T_FIRST, T_LAST = 788_918_400, 1_672_531_200  # 1995-01-01 .. 2023-01-01 UTC


@dataclass(frozen=True, slots=True)
class Planted:
    """The generated structure: who rated what, and the model that decides the ratings."""

    indptr: np.ndarray  # int64[n_users+1]
    items: np.ndarray  # int32[n_ratings], sorted within each user
    user_f: np.ndarray
    item_f: np.ndarray
    user_b: np.ndarray
    item_b: np.ndarray
    mu: float
    t_start: np.ndarray
    t_span: np.ndarray
    scale: RatingScale
    noise: float
    seed: int
    item_ids: np.ndarray  # raw MovieLens-like ids, sorted, so item index = rank of id
    item_meta: pd.DataFrame  # item_id, title, year, genres

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_ratings(self) -> int:
        return int(self.indptr[-1])

    def ratings(self, lo: int, hi: int) -> tuple[Ratings, np.ndarray]:
        """Ratings of users lo..hi-1 (sorted by user, item) and their noiseless values."""
        a, b = int(self.indptr[lo]), int(self.indptr[hi])
        rating, truth = np.empty(b - a, np.float64), np.empty(b - a, np.float64)
        ts = np.empty(b - a, np.int64)
        planted_ratings(self.indptr, self.items, self.user_f, self.item_f, self.user_b, self.item_b, self.mu,
                        self.noise, lo, hi, self.seed, self.t_start, self.t_span, self.scale.min, self.scale.max,
                        self.scale.step or 0.5, rating, ts, truth)
        users = np.repeat(np.arange(lo, hi, dtype=np.int32), np.diff(self.indptr[lo:hi + 1]))
        return Ratings(users, self.items[a:b], rating.astype(np.float32), ts), truth


def resolve_shape(cfg: SynthConfig) -> tuple[int, int, int, RatingScale]:
    users, items, ratings, stars = SHAPES.get(cfg.shape, (0, 0, 0, "whole"))
    users, items, ratings = cfg.n_users or users, cfg.n_items or items, cfg.n_ratings or ratings
    scale = HALF_STARS if (cfg.stars or stars) == "half" else WHOLE_STARS
    if cfg.min_user_ratings > items:
        raise ConfigError(f"synth.min_user_ratings: {cfg.min_user_ratings} exceeds the {items} items")
    if ratings < users * cfg.min_user_ratings:
        raise ConfigError(f"synth.n_ratings: {ratings} is fewer than {users} users x {cfg.min_user_ratings} ratings")
    if ratings > users * (items // 2) or ratings < items:
        raise ConfigError(f"synth.n_ratings: {ratings} does not fit {users} users x {items} items "
                          "(need at least one rating an item, at most half the matrix)")
    return users, items, ratings, scale


def generate(cfg: SynthConfig) -> Planted:
    n_users, n_items, n_ratings, scale = resolve_shape(cfg)
    rng = np.random.default_rng([cfg.seed, 0])
    counts = _user_counts(rng, n_users, n_items, n_ratings, cfg.min_user_ratings)
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    popularity = 1.0 / (np.arange(n_items) + 10.0) ** 1.1
    popularity = popularity[rng.permutation(n_items)]
    items = np.empty(n_ratings, np.int32)
    sample_user_items(indptr, popularity, np.cumsum(popularity) / popularity.sum(), cfg.seed, items)
    cover_items(indptr, items, cfg.seed, n_items)

    genres = _item_genres(rng, n_items)
    k = cfg.rank
    scale_f = math.sqrt(0.6 / math.sqrt(k))  # makes std(p.q) about 0.6
    genre_w = rng.normal(0, 1, (len(GENRES), k))
    g_part = genres @ genre_w / np.sqrt(np.maximum(genres.sum(1, keepdims=True), 1))
    item_f = scale_f * (0.7 * g_part + 0.7 * rng.normal(0, 1, (n_items, k)))
    user_f = rng.normal(0, scale_f, (n_users, k))
    log_pop = np.log(popularity)
    item_b = rng.normal(0, 0.4, n_items) + 0.15 * (log_pop - log_pop.mean()) / log_pop.std()
    user_b = rng.normal(0, 0.35, n_users)
    t_start = rng.integers(T_FIRST, T_LAST - 86_400, n_users)
    t_span = np.minimum(rng.exponential(200 * 86_400, n_users), T_LAST - t_start).astype(np.int64) + 1

    item_ids = np.sort(rng.choice(np.arange(1, 3 * n_items + 1), n_items, replace=False)).astype(np.int64)
    years = np.clip(2023 - rng.exponential(15, n_items).astype(np.int64), 1902, 2023)
    names = [[GENRES[g] for g in np.flatnonzero(row)] for row in genres]
    titles = [f"Synthetic Movie {i}{', The' if i % 7 == 0 else ''} ({y})" for i, y in zip(item_ids, years)]
    meta = pd.DataFrame({"item_id": item_ids, "title": titles, "year": pd.array(years, dtype="Int16"), "genres": names})
    return Planted(indptr, items, user_f, item_f, user_b, item_b, 3.45 if scale is WHOLE_STARS else 3.4,
                   t_start, t_span, scale, cfg.noise, cfg.seed, item_ids, meta)


def _user_counts(rng: np.random.Generator, n_users: int, n_items: int, n_ratings: int, floor: int) -> np.ndarray:
    """Heavy-tailed ratings per user: floor + log-normal excess, capped at half the items, summing exactly."""
    cap = max(floor, n_items // 2) - floor
    weight = rng.lognormal(0.0, 1.3, n_users)
    excess_total = n_ratings - floor * n_users
    excess = np.zeros(n_users, np.int64)
    for _ in range(50):  # water-filling: scale the uncapped users until the total fits
        room = excess < cap
        left = excess_total - excess.sum()
        if left <= 0 or not room.any():
            break
        share = np.floor(weight * room / weight[room].sum() * left).astype(np.int64)
        excess = np.minimum(excess + share, cap)
    left = excess_total - excess.sum()
    open_users = np.flatnonzero(excess < cap)
    excess[rng.choice(open_users, int(left), replace=False)] += 1  # each open user lost < 1 to flooring
    return floor + excess


def _item_genres(rng: np.random.Generator, n_items: int) -> np.ndarray:
    n_genres = rng.choice([1, 2, 3], n_items, p=[0.5, 0.35, 0.15])
    p = _GENRE_WEIGHT / _GENRE_WEIGHT.sum()
    flags = np.zeros((n_items, len(GENRES)))
    for i, n in enumerate(n_genres):
        flags[i, rng.choice(len(GENRES), n, replace=False, p=p)] = 1.0
    return flags


def synth_meta(cfg: SynthConfig, planted: Planted, seconds: float) -> dict[str, Any]:
    return {"spec": "synth", "format": "synth", "shape": cfg.shape, "seed": cfg.seed, "rank": cfg.rank,
            "noise": cfg.noise, "min_user_ratings": cfg.min_user_ratings, "generate_seconds": round(seconds, 3)}


def timed_generate(cfg: SynthConfig) -> tuple[Planted, float]:
    started = time.perf_counter()
    planted = generate(cfg)
    return planted, time.perf_counter() - started
