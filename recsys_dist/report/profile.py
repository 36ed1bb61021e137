"""The dataset profile (EDA) as reductions over the Parquet partitions: each block is read alone,
reduced to counts (bincounts of users, items, ratings and months), and the counts merged, so a
32M-rating release profiles in the memory of one block plus a few count vectors. No plotting here:
``figures`` draws what this computes, and ``explore`` shows the same numbers."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from recsys_dist.data.dataset import Dataset

TOP_SHARE = 0.2  # the long tail: what share of the ratings the top 20 % of items get


def profile_dataset(ds: Dataset) -> dict[str, Any]:
    """Counts, density, the rating histogram, activity and popularity counts, ratings per month and
    the genre table of ``ds``; one block in memory at a time."""
    users = np.zeros(ds.n_users, np.int64)
    items = np.zeros(ds.n_items, np.int64)
    ratings: Counter[float] = Counter()
    months: Counter[int] = Counter()
    for _, block in ds.iter_blocks():
        users += np.bincount(block.user_idx, minlength=ds.n_users)
        items += np.bincount(block.item_idx, minlength=ds.n_items)
        values, counts = np.unique(block.rating, return_counts=True)
        ratings.update(dict(zip(values.tolist(), counts.tolist())))
        stamps = block.timestamp
        if len(stamps) and stamps.max() > 0:  # 0: no timestamps in the source
            month, counts = np.unique(stamps.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64),
                                      return_counts=True)
            months.update(dict(zip(month.tolist(), counts.tolist())))
    n = int(users.sum())
    profile: dict[str, Any] = {
        "ratings": n, "users": int((users > 0).sum()), "items": int((items > 0).sum()),
        "user_ids": ds.n_users, "item_ids": ds.n_items,
        "density": n / max(1, int((users > 0).sum()) * int((items > 0).sum())),
        "rating_values": sorted(ratings), "rating_counts": [ratings[v] for v in sorted(ratings)],
        "mean_rating": sum(v * c for v, c in ratings.items()) / max(n, 1),
        "user_counts": users, "item_counts": items,
        "user_exponent": power_law_exponent(users), "item_exponent": power_law_exponent(items),
        "top_item_share": top_share(items, TOP_SHARE),
        "months": sorted(months), "month_counts": [months[m] for m in sorted(months)],
    }
    profile.update(genre_table(ds, items))
    return profile


def power_law_exponent(counts: np.ndarray, x_min: int = 0) -> float:
    """The maximum-likelihood exponent alpha of p(x) ~ x^-alpha for the nonzero counts >= x_min
    (Clauset, Shalizi and Newman 2009, the discrete approximation with x_min - 1/2); x_min 0 takes
    the median nonzero count, where the tail of a rating distribution begins. NaN with < 10 points."""
    x = counts[counts > 0].astype(np.float64)
    if x_min <= 0 and len(x):
        x_min = max(1, int(np.median(x)))
    x = x[x >= x_min]
    if len(x) < 10:
        return float("nan")
    return float(1.0 + len(x) / np.sum(np.log(x / (x_min - 0.5))))


def top_share(counts: np.ndarray, fraction: float) -> float:
    """The share of all ratings that the ``fraction`` most-rated items (of those rated) receive."""
    rated = np.sort(counts[counts > 0])[::-1]
    if not len(rated):
        return float("nan")
    top = max(1, int(round(fraction * len(rated))))
    return float(rated[:top].sum() / rated.sum())


def genre_table(ds: Dataset, item_counts: np.ndarray) -> dict[str, Any]:
    """Genres by items and by ratings, and the item-level co-occurrence matrix (how many items carry
    both genres); empty lists when the items table has no genres."""
    frame = ds.read_items()
    if "genres" not in frame or frame["genres"].isna().all():
        return {"genres": [], "genre_items": [], "genre_ratings": [], "genre_cooccurrence": np.zeros((0, 0))}
    lists = [list(g) if g is not None else [] for g in frame["genres"]]
    names = sorted({g for row in lists for g in row})
    col = {g: j for j, g in enumerate(names)}
    hot = np.zeros((len(item_counts), len(names)), np.float64)  # rows by item_idx, as the ratings
    for i, row in zip(frame["item_idx"].to_numpy(), lists):
        hot[i, [col[g] for g in row]] = 1.0
    by_ratings = item_counts.astype(np.float64) @ hot
    return {"genres": names, "genre_items": hot.sum(0).astype(int).tolist(),
            "genre_ratings": by_ratings.astype(np.int64).tolist(), "genre_cooccurrence": (hot.T @ hot).astype(np.int64),
            "item_genres": hot}


def profile_summary(p: dict[str, Any]) -> list[tuple[str, str]]:
    """The profile's headline figures as (label, value text) rows."""
    rows = [("ratings", f"{p['ratings']:,}"), ("users with ratings", f"{p['users']:,}"),
            ("items with ratings", f"{p['items']:,}"), ("density", f"{100 * p['density']:.3f} %"),
            ("mean rating", f"{p['mean_rating']:.3f}"),
            ("ratings per user (median)", f"{np.median(p['user_counts'][p['user_counts'] > 0]):.0f}"),
            ("ratings per item (median)", f"{np.median(p['item_counts'][p['item_counts'] > 0]):.0f}"),
            ("user-activity power-law exponent", f"{p['user_exponent']:.2f}"),
            ("item-popularity power-law exponent", f"{p['item_exponent']:.2f}"),
            (f"share of ratings on the top {100 * TOP_SHARE:.0f} % of items", f"{100 * p['top_item_share']:.1f} %")]
    if p["months"]:
        first, last = (np.datetime64(m, "M") for m in (p["months"][0], p["months"][-1]))
        rows.append(("time span", f"{first} to {last}"))
    return rows
