"""Numba kernels of the synthetic data generator.

Each user's random stream is seeded from (seed, user) alone, so the data do not depend
on how users are grouped into blocks or chunks.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _seed_user(seed, stream, user):
    np.random.seed((seed * 1_000_003 + stream * 7_919 + user * 2_654_435_761) % 4_294_967_291)


@njit(cache=True, nogil=True)
def sample_user_items(indptr, weights, cdf, seed, out_items):
    """Draw ``indptr[u+1]-indptr[u]`` distinct items per user, with probability ~ ``weights``.

    indptr int64[n_users+1]; weights float64[n_items] > 0; cdf float64[n_items] its
    normalised cumulative sum; out_items int32[indptr[-1]] receives each user's items
    sorted ascending. Light users use rejection (cheap when n << n_items); users rating
    more than a quarter of the catalogue use Efraimidis-Spirakis keys log(U)/w, top n.
    """
    n_items = weights.shape[0]
    mark = np.zeros(n_items, dtype=np.bool_)
    for u in range(indptr.shape[0] - 1):
        _seed_user(seed, 0, u)
        start, n = indptr[u], indptr[u + 1] - indptr[u]
        if 4 * n > n_items:
            keys = np.empty(n_items)
            for j in range(n_items):
                keys[j] = np.log(np.random.random() + 1e-300) / weights[j]
            chosen = np.argsort(keys)[n_items - n:]
            for k in range(n):
                out_items[start + k] = chosen[k]
        else:
            filled = 0
            while filled < n:
                j = np.searchsorted(cdf, np.random.random(), side="right")
                if j >= n_items:
                    j = n_items - 1
                if not mark[j]:
                    mark[j] = True
                    out_items[start + filled] = j
                    filled += 1
            for k in range(n):
                mark[out_items[start + k]] = False
        out_items[start:start + n].sort()


@njit(cache=True, nogil=True)
def cover_items(indptr, items, seed, n_items):
    """Give every item at least one rating by re-pointing ratings of items rated twice or more.

    Keeps each user's count and distinct items (re-sorting the users it touched); returns how
    many ratings were moved.
    """
    counts = np.zeros(n_items, dtype=np.int64)
    for j in items:
        counts[j] += 1
    np.random.seed(seed % 4_294_967_291)
    nnz = items.shape[0]
    moved = 0
    touched = np.zeros(indptr.shape[0] - 1, dtype=np.bool_)
    for j in range(n_items):
        if counts[j] > 0:
            continue
        for _ in range(100 * nnz + 100):
            p = np.random.randint(0, nnz)
            if counts[items[p]] < 2:
                continue
            u = np.searchsorted(indptr, p, side="right") - 1
            taken = False
            for q in range(indptr[u], indptr[u + 1]):
                if items[q] == j:
                    taken = True
                    break
            if taken:
                continue
            counts[items[p]] -= 1
            items[p] = j
            counts[j] += 1
            touched[u] = True
            moved += 1
            break
    for u in range(indptr.shape[0] - 1):
        if touched[u]:
            items[indptr[u]:indptr[u + 1]].sort()
    return moved


@njit(cache=True, nogil=True)
def planted_ratings(indptr, items, user_f, item_f, user_b, item_b, mu, noise, lo, hi, seed,
                    t_start, t_span, r_min, r_max, step, out_rating, out_ts, out_truth):
    """Ratings of users lo..hi-1 from the planted model, rounded to the star grid.

    r = clip(round_step(mu + b_u + b_i + p_u.q_i + N(0, noise^2)), r_min, r_max); out_truth
    gets the noiseless value. Outputs are indexed from indptr[lo]. Timestamps are uniform
    in [t_start[u], t_start[u] + t_span[u]].
    """
    base = indptr[lo]
    rank = user_f.shape[1]
    for u in range(lo, hi):
        _seed_user(seed, 1, u)
        for p in range(indptr[u], indptr[u + 1]):
            j = items[p]
            dot = 0.0
            for f in range(rank):
                dot += user_f[u, f] * item_f[j, f]
            truth = mu + user_b[u] + item_b[j] + dot
            r = truth + noise * np.random.standard_normal()
            r = r_min + np.round((r - r_min) / step) * step
            out_rating[p - base] = min(max(r, r_min), r_max)
            out_truth[p - base] = truth
            out_ts[p - base] = t_start[u] + np.int64(np.random.random() * t_span[u])
