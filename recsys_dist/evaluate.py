"""Rating metrics over arrays (pure)."""

from __future__ import annotations

from typing import Any

import numpy as np


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    if not len(actual):
        return float("nan")
    return float(np.sqrt(np.mean((predicted.astype(np.float64) - actual) ** 2)))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    if not len(actual):
        return float("nan")
    return float(np.mean(np.abs(predicted.astype(np.float64) - actual)))


def rating_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float | int]:
    return {"rmse": rmse(predicted, actual), "mae": mae(predicted, actual), "n": int(len(actual))}


def calibration(predicted: np.ndarray, std: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """How often the truth falls inside the predictive interval: share within 1 std (a Gaussian's 68 %)
    and within 1.96 std (95 %), and the mean predicted std."""
    if not len(actual):
        return {"inside_68": float("nan"), "inside_95": float("nan"), "mean_std": float("nan")}
    z = np.abs(actual - predicted.astype(np.float64)) / std
    return {"inside_68": float(np.mean(z <= 1.0)), "inside_95": float(np.mean(z <= 1.96)),
            "mean_std": float(np.mean(std))}


def ranking_metrics(recommended: np.ndarray, relevant: list[np.ndarray], ks: list[int],
                    n_items: int) -> dict[str, dict[str, float]]:
    """Precision, recall, NDCG, MAP, hit rate at each K (averaged over users with a relevant item)
    and catalogue coverage at each K.

    recommended int[n_users, K_max] holds item indices best first (-1 for empty slots);
    relevant[u] lists user u's relevant items. Gains are binary: DCG = sum_j rel_j / log2(j + 2),
    NDCG divides by the DCG of an ideal list; AP@K = sum_j P@(j+1) rel_j / min(K, |relevant|).
    """
    return finish_ranking([ranking_sums(recommended, relevant, ks, n_items)], ks, n_items)


RANKING_SUMS = ("precision", "recall", "ndcg", "map", "hit_rate")


def ranking_sums(recommended: np.ndarray, relevant: list[np.ndarray], ks: list[int], n_items: int) -> dict[str, Any]:
    """``ranking_metrics`` of some users as sums to reduce over blocks of users (``finish_ranking``): per K,
    each metric summed over the users with a relevant item, their number, and the items shown."""
    n_users, k_max = recommended.shape
    sizes = np.array([len(np.unique(r)) for r in relevant], np.int64)
    keys = [u * np.int64(n_items) + np.unique(np.asarray(r, np.int64)) for u, r in enumerate(relevant)]
    rel_keys = np.concatenate(keys) if keys else np.empty(0, np.int64)
    rec_keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + recommended
    hits = np.isin(rec_keys, rel_keys) & (recommended >= 0)
    users = sizes > 0
    discount = 1.0 / np.log2(np.arange(k_max) + 2.0)
    out: dict[str, Any] = {}
    for k in ks:
        if k > k_max:
            raise ValueError(f"K={k} exceeds the {k_max} recommendations computed")
        h = hits[users, :k]
        n_rel = sizes[users]
        found = h.sum(axis=1)
        ideal = np.cumsum(discount[:k])[np.minimum(n_rel, k) - 1]
        precision_at = np.cumsum(h, axis=1) / np.arange(1, k + 1)
        shown = recommended[:, :k]
        out[str(k)] = {
            "precision": float(np.sum(found / k)), "recall": float(np.sum(found / n_rel)),
            "ndcg": float(np.sum((h * discount[:k]).sum(axis=1) / ideal)),
            "map": float(np.sum((precision_at * h).sum(axis=1) / np.minimum(n_rel, k))),
            "hit_rate": float(np.sum(found > 0)), "users": int(users.sum()),
            "shown": np.unique(shown[shown >= 0]).astype(np.int32),
        }
    return out


def finish_ranking(sums: list[dict[str, Any]], ks: list[int], n_items: int) -> dict[str, dict[str, float]]:
    """The metrics of ``ranking_metrics`` from the ``ranking_sums`` of every block of users."""
    out: dict[str, dict[str, float]] = {}
    for k in ks:
        parts = [s[str(k)] for s in sums]
        n = sum(p["users"] for p in parts)
        shown = np.unique(np.concatenate([p["shown"] for p in parts])) if parts else np.empty(0, np.int32)
        out[str(k)] = {**{m: sum(p[m] for p in parts) / n if n else float("nan") for m in RANKING_SUMS},
                       "coverage": float(len(shown) / n_items), "users": int(n)}
    return out
