"""Why an item is recommended, and what to show a user the model does not know.

An explanation names the rated items that pull hardest toward a recommendation: the
cosine similarity of their factors to the recommended item's, weighted by the user's
rating of each (a five-star rating of a close neighbour counts most). It reads the
factor space the score came from, so it stays cheap: one small matrix product per user.
"""

from __future__ import annotations

import numpy as np


def unit_factors(item_matrix: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Unit-length factor rows of ``items`` (zero rows stay zero)."""
    f = item_matrix[np.asarray(items, np.int64), :-1].astype(np.float64)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    return np.divide(f, norms, out=np.zeros_like(f), where=norms > 0)


def explain(item_matrix: np.ndarray, recommended: np.ndarray, rated: np.ndarray, ratings: np.ndarray,
            n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """For each recommended item, the ``n`` rated items with the largest similarity x rating.

    Returns (item indices int64[len(recommended), n], weights float64[...]); slots without a
    positive contribution hold -1 and NaN."""
    recommended = np.asarray(recommended, np.int64)
    out_items = np.full((len(recommended), n), -1, np.int64)
    out_weights = np.full((len(recommended), n), np.nan)
    if len(rated) == 0 or n == 0:
        return out_items, out_weights
    weights = (unit_factors(item_matrix, recommended) @ unit_factors(item_matrix, rated).T) * np.asarray(ratings)[None, :]
    for row, w in enumerate(weights):
        best = np.argsort(-w, kind="stable")[:n]
        best = best[w[best] > 0]
        out_items[row, :len(best)] = np.asarray(rated, np.int64)[best]
        out_weights[row, :len(best)] = w[best]
    return out_items, out_weights
