"""Slow NumPy twins of the kernels, with the same signatures; imported only by tests."""

import numpy as np


def solve_in_block(indptr, indices, values, src, mu, reg, bias_reg, weighted, out, row_sse):
    k = src.shape[1] - 1
    for r in range(len(indptr) - 1):
        cols = indices[indptr[r]:indptr[r + 1]]
        if len(cols) == 0:
            out[r] = 0.0
            row_sse[r] = 0.0
            continue
        feats = np.hstack([src[cols, :k].astype(np.float64), np.ones((len(cols), 1))])
        target = values[indptr[r]:indptr[r + 1]] - mu - src[cols, k]
        scale = len(cols) if weighted else 1.0
        lam = np.diag([reg * scale] * k + [bias_reg * scale])
        x = np.linalg.solve(feats.T @ feats + lam, feats.T @ target)
        out[r] = x
        row_sse[r] = float(np.sum((target - feats @ x) ** 2))
    return -1


def predict_pairs(dst_idx, src_idx, dst, src, mu, out):
    k = dst.shape[1] - 1
    for p, (u, i) in enumerate(zip(dst_idx, src_idx)):
        pred = mu + (dst[u, k] if u >= 0 else 0.0) + (src[i, k] if i >= 0 else 0.0)
        if u >= 0 and i >= 0:
            pred += float(np.dot(dst[u, :k], src[i, :k]))
        out[p] = pred


def topk_rows(queries, items, query_bias, item_bias, allowed, excl_indptr, excl_indices, k, out_items, out_scores):
    for q in range(len(queries)):
        scores = query_bias[q] + item_bias + items.astype(np.float64) @ queries[q].astype(np.float64)
        ok = allowed.copy()
        ok[excl_indices[excl_indptr[q]:excl_indptr[q + 1]]] = False
        cand = np.flatnonzero(ok)
        order = cand[np.lexsort((cand, -scores[cand]))][:k]  # score desc, then index asc
        out_items[q] = -1
        out_scores[q] = np.nan
        out_items[q, :len(order)] = order
        out_scores[q, :len(order)] = scores[order]
