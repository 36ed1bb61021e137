"""Numba kernels for top-K selection over scores computed on the fly.

Scores are never materialised for more than one (user, item) pair at a time: each user
streams over the candidate items and keeps its K best in a small binary heap, so memory is
O(users x K) whatever the catalogue size. Ties are broken deterministically: a higher score
wins, then the lower item index.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def _worse(s1, i1, s2, i2):
    """True if (s1, i1) ranks below (s2, i2)."""
    return s1 < s2 or (s1 == s2 and i1 > i2)


@njit(cache=True, nogil=True, inline="always")
def _sift_down(hs, hi, n, pos):
    """Restore the min-heap (worst candidate on top) below ``pos``."""
    while True:
        left = 2 * pos + 1
        if left >= n:
            return
        child = left
        right = left + 1
        if right < n and _worse(hs[right], hi[right], hs[left], hi[left]):
            child = right
        if _worse(hs[child], hi[child], hs[pos], hi[pos]):
            hs[pos], hs[child] = hs[child], hs[pos]
            hi[pos], hi[child] = hi[child], hi[pos]
            pos = child
        else:
            return


@njit(cache=True, nogil=True, inline="always")
def _push(hs, hi, n, k, score, item):
    """Offer (score, item) to a heap holding n of at most k entries; return the new size."""
    if n < k:
        pos = n
        hs[pos], hi[pos] = score, item
        while pos > 0:  # sift up
            parent = (pos - 1) // 2
            if _worse(hs[pos], hi[pos], hs[parent], hi[parent]):
                hs[pos], hs[parent] = hs[parent], hs[pos]
                hi[pos], hi[parent] = hi[parent], hi[pos]
                pos = parent
            else:
                break
        return n + 1
    if _worse(hs[0], hi[0], score, item):
        hs[0], hi[0] = score, item
        _sift_down(hs, hi, n, 0)
    return n


@njit(cache=True, nogil=True, parallel=True, fastmath=True)
def topk_rows(queries, items, query_bias, item_bias, allowed, excl_indptr, excl_indices, k, out_items, out_scores):
    """For each query row q, the k items maximising query_bias[q] + item_bias[i] + queries[q] . items[i].

    queries float32[n_q, f], items float32[n_i, f] (C order); query_bias float64[n_q];
    item_bias float64[n_i]; allowed bool[n_i] (False: never recommended); excl_indptr
    int64[n_q+1] / excl_indices int32 (ascending per row): items excluded for that query.
    Writes out_items int32[n_q, k] (-1 where fewer than k candidates) and out_scores
    float32[n_q, k] (NaN there), best first.
    """
    n_q, f = queries.shape
    n_i = items.shape[0]
    for q in prange(n_q):
        hs = np.empty(k, np.float64)
        hi = np.empty(k, np.int64)
        n = 0
        e, e_end = excl_indptr[q], excl_indptr[q + 1]
        for i in range(n_i):
            while e < e_end and excl_indices[e] < i:
                e += 1
            if (e < e_end and excl_indices[e] == i) or not allowed[i]:
                continue
            s = 0.0
            for c in range(f):
                s += queries[q, c] * items[i, c]
            n = _push(hs, hi, n, k, query_bias[q] + item_bias[i] + s, i)
        for slot in range(n, k):  # fewer candidates than k
            out_items[q, slot] = -1
            out_scores[q, slot] = np.nan
        size = n
        for slot in range(n - 1, -1, -1):  # pop worst first into the tail: the output is best first
            out_items[q, slot] = hi[0]
            out_scores[q, slot] = hs[0]
            size -= 1
            hs[0], hi[0] = hs[size], hi[size]
            _sift_down(hs, hi, size, 0)


@njit(cache=True, nogil=True, parallel=True, fastmath=True)
def rank_stats_rows(queries, items, query_bias, item_bias, excl_indptr, excl_indices, rel_indptr, rel_indices,
                    out_auc, out_rr):
    """Whole-list ranking figures of each query row against its relevant items.

    Same score and exclusion arrays as ``topk_rows``; rel_indptr int64[n_q+1] / rel_indices int32 list
    each row's relevant items. Writes out_auc float64[n_q]: the share of (relevant, non-relevant
    candidate) pairs ranked the right way (ties count half), and out_rr float64[n_q]: 1 / the position of
    the first relevant item in the full ranked list (ties broken as in ``topk_rows``). An excluded item is
    not in the list, relevant or not, so it counts in neither. Rows without a relevant item in the list
    get NaN.
    """
    n_q, f = queries.shape
    n_i = items.shape[0]
    for q in prange(n_q):
        # scratch of loop-invariant sizes only: Numba hoists a prange body's allocations out of the loop
        # (parallel_diagnostics), also one sized by the candidates' count made in the body, and the AUC
        # then depended on what had run before in the process (0.7387 against 0.7108, same inputs)
        scores = np.empty(n_i, np.float64)
        kind = np.empty(n_i, np.int8)  # 0 candidate, 1 excluded, 2 relevant
        neg = np.empty(n_i, np.float64)
        r0, r1 = rel_indptr[q], rel_indptr[q + 1]
        kind[:] = 0
        for e in range(r0, r1):
            kind[rel_indices[e]] = 2
        for e in range(excl_indptr[q], excl_indptr[q + 1]):
            kind[excl_indices[e]] = 1
        n_neg = 0
        n_rel = 0
        best = -1
        for i in range(n_i):
            s = query_bias[q] + item_bias[i]
            for c in range(f):
                s += queries[q, c] * items[i, c]
            scores[i] = s
            if kind[i] == 0:
                neg[n_neg] = s
                n_neg += 1
            elif kind[i] == 2:
                n_rel += 1
                if best < 0 or s > scores[best]:  # ascending i: the first of equal scores stays
                    best = i
        if n_rel == 0:
            out_auc[q] = np.nan
            out_rr[q] = np.nan
            continue
        candidates = neg[:n_neg]
        candidates.sort()
        wrong = 0.0
        for i in range(n_i):
            if kind[i] == 2:
                s = scores[i]
                below = np.searchsorted(candidates, s, side="left")
                not_above = np.searchsorted(candidates, s, side="right")
                wrong += (n_neg - not_above) + 0.5 * (not_above - below)
        out_auc[q] = 1.0 - wrong / (n_rel * n_neg) if n_neg else np.nan
        above = 0
        sb = scores[best]
        for i in range(n_i):
            if kind[i] != 1 and (scores[i] > sb or (scores[i] == sb and i < best)):
                above += 1
        out_rr[q] = 1.0 / (above + 1)
