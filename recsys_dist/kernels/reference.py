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


def solve_implicit_block(indptr, indices, values, src, gram, threshold, alpha, scaled, binary, reg, weighted,
                         out, row_loss):
    """Dense float64 twin of kernels.implicit_als.solve_implicit_block: each row's
    (G + sum_j (c_j - 1) y_j y_j^T + lam I) x = sum_j c_j y_j by numpy.linalg.solve."""
    k = src.shape[1] - 1
    gram = np.asarray(gram, np.float64)
    for r in range(len(indptr) - 1):
        vals = values[indptr[r]:indptr[r + 1]].astype(np.float64)
        keep = vals >= threshold
        cols = indices[indptr[r]:indptr[r + 1]][keep]
        out[r] = 0.0
        row_loss[r] = 0.0
        if len(cols) == 0:
            continue
        strength = np.ones(len(cols)) if binary else vals[keep]
        conf = alpha * strength if scaled else 1.0 + alpha * strength
        y = src[cols, :k].astype(np.float64)
        lam = reg * len(cols) if weighted else reg
        x = np.linalg.solve(gram + (y.T * (conf - 1.0)) @ y + lam * np.eye(k), y.T @ conf)
        s = y @ x
        out[r, :k] = x
        row_loss[r] = float(x @ gram @ x + np.sum(conf * (1.0 - s) ** 2 - s * s))
    return -1
