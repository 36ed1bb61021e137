"""Numba kernel of BPR (Rendle et al. 2009): SGD on (user, positive, negative) triples of one stratum.

The score of item i for user u is b_i + p_u . q_i. For a triple (u, i, j) with i a positive of
u and j not, x = s_ui - s_uj and z = 1 / (1 + e^x) (the gradient of ln sigma(x)), and

    p_u += lr (z (q_i - q_j) - reg p_u)
    q_i += lr (z p_u - reg q_i)          b_i += lr (z - bias_reg b_i)
    q_j += lr (-z p_u - reg q_j)         b_j += lr (-z - bias_reg b_j)

A task owns one user block and one stratum of items (a subset no other task of the same
sub-epoch touches), so tasks never write the same rows. Randomness is counter-based: draw
number t of a task is a hash of (key, t), so a task's result depends only on its key and its
inputs, never on the thread, process or machine it runs on.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _mix(z):
    """splitmix64 finaliser of a uint64."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, inline="always")
def _uniform(key, counter):
    """Uniform [0, 1) double from draw ``counter`` of stream ``key``."""
    z = _mix(key + np.uint64(counter) * np.uint64(0x9E3779B97F4A7C15))
    return (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True, inline="always")
def _is_positive(indices, values, start, end, item, threshold):
    """Binary search of ``item`` among a CSR row's ascending indices, counting only ratings >= threshold."""
    lo, hi = start, end
    while lo < hi:
        mid = (lo + hi) // 2
        if indices[mid] < item:
            lo = mid + 1
        else:
            hi = mid
    return lo < end and indices[lo] == item and values[lo] >= threshold


@njit(cache=True, nogil=True, fastmath=True)
def sgd_stratum(indptr, indices, values, threshold, user_rows, item_rows, local, candidates, cdf, key, lr, reg,
                bias_reg, update_items, max_tries, stats):
    """One pass of BPR SGD over a user block's positives that fall in one item stratum.

    indptr int64[n_rows+1] / indices int32 (global items, ascending per row) / values float32:
    the block's ratings; a rating >= ``threshold`` is a positive. user_rows float32[n_rows, K]
    (factors, last column unused) and item_rows float32[n_local, K] (factors, bias in the last
    column) are updated in place; local int32[n_items] maps a global item to its row in item_rows
    (-1: not in this stratum); candidates int32[n_local] lists the stratum's global items (the
    negatives are drawn from them) and cdf float64[n_local] their cumulative sampling weights
    (empty: uniform). As many triples are drawn as the stratum holds positives, each positive
    uniformly; a negative that is a positive of the user is redrawn up to ``max_tries`` times,
    then the triple is skipped. ``update_items`` False keeps item rows fixed (fold-in).

    stats float64[3] += [triples ranked correctly before their update, triples used, skipped].
    """
    n_rows = indptr.shape[0] - 1
    k = user_rows.shape[1] - 1
    # the positives of this stratum, as (row, local item) pairs
    n_pos = 0
    for p in range(indptr[n_rows]):
        if values[p] >= threshold and local[indices[p]] >= 0:
            n_pos += 1
    pos_row = np.empty(n_pos, np.int32)
    pos_item = np.empty(n_pos, np.int32)
    n = 0
    for r in range(n_rows):
        for p in range(indptr[r], indptr[r + 1]):
            if values[p] >= threshold and local[indices[p]] >= 0:
                pos_row[n] = r
                pos_item[n] = local[indices[p]]
                n += 1
    n_cand = candidates.shape[0]
    if n_pos == 0 or n_cand == 0:
        return
    grad = np.empty(k, np.float32)
    counter = 0
    for _ in range(n_pos):
        t = min(int(_uniform(key, counter) * n_pos), n_pos - 1)
        counter += 1
        u, i = pos_row[t], pos_item[t]
        j = -1
        for _try in range(max_tries):
            draw = _uniform(key, counter)
            counter += 1
            if cdf.shape[0]:
                c = np.searchsorted(cdf, draw * cdf[n_cand - 1], side="right")
                c = min(c, n_cand - 1)
            else:
                c = min(int(draw * n_cand), n_cand - 1)
            if not _is_positive(indices, values, indptr[u], indptr[u + 1], candidates[c], threshold):
                j = c
                break
        if j < 0:
            stats[2] += 1
            continue
        x = item_rows[i, k] - item_rows[j, k]
        for c in range(k):
            x += user_rows[u, c] * (item_rows[i, c] - item_rows[j, c])
        if x > 0:
            stats[0] += 1
        stats[1] += 1
        z = 1.0 / (1.0 + np.exp(min(max(x, -30.0), 30.0)))  # clipped: no overflow under fastmath
        for c in range(k):
            grad[c] = z * (item_rows[i, c] - item_rows[j, c]) - reg * user_rows[u, c]
        if update_items:
            for c in range(k):
                pu = user_rows[u, c]
                item_rows[i, c] += lr * (z * pu - reg * item_rows[i, c])
                item_rows[j, c] += lr * (-z * pu - reg * item_rows[j, c])
            item_rows[i, k] += lr * (z - bias_reg * item_rows[i, k])
            item_rows[j, k] += lr * (-z - bias_reg * item_rows[j, k])
        for c in range(k):
            user_rows[u, c] += lr * grad[c]
