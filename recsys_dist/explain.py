"""Why an item is recommended: each rated item's share of the score, through the user's own solve.

For the ALS kinds a user's factor row is the solution of one linear system whose right-hand
side is a sum over the user's rated items, so the score splits exactly into one term per rated
item (as implicit's ``explain`` does): with W the inverse of the system matrix, item i gets
(q_i^T W q_j) * target_j from rated item j.

- ``als`` (kernels/als.py solves [p_u, b_u] jointly): given the user's bias b_u from that solve,
  p_u = W sum_j q_j t_j with W = (Q^T Q + lam I)^-1 (lam = reg * n under weighted lambda) and the
  residual targets t_j = r_j - mu - b_j - b_u. A rating above what the biases predict (t_j > 0)
  pulls the items near q_j up; one below (t_j < 0) pushes them down, and so pulls the items far
  from q_j up: a 1-star rating can be a reason, as "unlike" the item rated low, never as "like".
- ``implicit_als`` (kernels/implicit_als.py): W = (Y^T Y + sum_j (c_j - 1) y_j y_j^T + lam I)^-1
  over the interactions j (ratings >= threshold), target c_j (preference 1, confidence c_j > 0).

The contributions sum to p_u . q_i, the score minus its biases (mu + b_u + b_i), for the row the
solve gives: the exact solve against the model's item factors, i.e. the user's row after fold-in
of their training ratings. A trained model's stored row differs slightly (training ends with an
item half-step, and CG solves approximately); the recommend job reports that part as ``rest``.

``bpr`` has no per-user solve: its rule is the item-factor dot product q_i . q_j over the user's
positives (ratings >= threshold), a similarity, not a split of the score. ``popular``, ``bias``
and ``mean`` scores have no per-item part for a user: no contributions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EXPLAINED_KINDS = ("als", "genre_als", "implicit_als")  # contributions sum to the score minus the biases


def contributions(kind: str, item_matrix: np.ndarray, query_rows: np.ndarray, rated: np.ndarray,
                  ratings: np.ndarray, mu: float, settings: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """Rated item j's share of each query item's score: (float64[len(query_rows), len(rated)],
    toward bool[len(rated)]), ``toward[j]`` true when j's target is positive (the user liked j more
    than the biases predict, so j pulls the items near it up; a false j pushes them down, and
    those far from it up). None for kinds without contributions.

    ``item_matrix`` [n_items, k+1] is the model's (bias last); ``query_rows`` [m, k] the factor rows
    the scores are computed with (for rating models the support-shrunk ranking rows); ``rated`` /
    ``ratings`` the user's items (indices) and ratings."""
    rated = np.asarray(rated, np.int64)
    ratings = np.asarray(ratings, np.float64)
    terms = _terms(kind, item_matrix, rated, ratings, mu, settings)
    if terms is None:
        return None
    basis, targets = terms
    return (np.asarray(query_rows, np.float64) @ basis) * targets[None, :], targets > 0


def strongest(contrib: np.ndarray | None, rated: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` rated items with the largest positive contribution to each row, strongest first.

    Returns (item indices int64[rows, n], contributions float64[rows, n]); slots without a positive
    contribution hold -1 and NaN."""
    rows = 0 if contrib is None else len(contrib)
    out_items = np.full((rows, n), -1, np.int64)
    out_weights = np.full((rows, n), np.nan)
    if contrib is None or n == 0 or contrib.shape[1] == 0:
        return out_items, out_weights
    rated = np.asarray(rated, np.int64)
    for row, w in enumerate(contrib):
        best = np.argsort(-w, kind="stable")[:n]
        best = best[w[best] > 0]
        out_items[row, :len(best)] = rated[best]
        out_weights[row, :len(best)] = w[best]
    return out_items, out_weights


def _terms(kind: str, item_matrix: np.ndarray, rated: np.ndarray, ratings: np.ndarray, mu: float,
           settings: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(basis [k, n], targets [n]): a query item with factors q gets q . basis[:, j] * targets[j] from j."""
    k = item_matrix.shape[1] - 1
    weighted = settings.get("reg_mode", "weighted") == "weighted"
    reg = float(settings.get("reg", 0.1))
    if kind in ("als", "genre_als"):  # genre_als's user solve is explicit ALS's
        return _explicit_terms(item_matrix, rated, ratings, mu, reg, float(settings.get("bias_reg", 0.1)), weighted)
    if kind == "implicit_als":
        return _implicit_terms(item_matrix, rated, ratings, reg, weighted, settings)
    if kind == "bpr":
        positive = ratings >= float(settings.get("threshold", 0.0))
        return item_matrix[rated, :k].astype(np.float64).T, positive.astype(np.float64)
    return None


def _explicit_terms(item_matrix, rated, ratings, mu, reg, bias_reg, weighted):  # noqa: ANN001, ANN202
    """Columns W q_j and targets t_j of the explicit user system (kernels/als.py's, in float64): b_u
    from the joint solve, then W = (Q^T Q + lam I)^-1 and t_j = r_j - mu - b_j - b_u."""
    k = item_matrix.shape[1] - 1
    if len(rated) == 0:
        return np.zeros((k, 0)), np.zeros(0)
    rows = item_matrix[rated].astype(np.float64)
    features = np.hstack([rows[:, :k], np.ones((len(rated), 1))])
    targets = ratings - mu - rows[:, k]
    scale = float(len(rated)) if weighted else 1.0
    system = features.T @ features + np.diag([reg * scale] * k + [bias_reg * scale])
    user_bias = np.linalg.solve(system, features.T @ targets)[k]
    return np.linalg.solve(system[:k, :k], features[:, :k].T), targets - user_bias


def _implicit_terms(item_matrix, rated, ratings, reg, weighted, settings):  # noqa: ANN001, ANN202
    """Columns W y_j and confidences c_j (targets: the preference 1 times c_j) of the implicit user
    system (kernels/implicit_als.py's, in float64); rated items below the threshold are no
    interactions and get target 0."""
    k = item_matrix.shape[1] - 1
    factors = item_matrix[:, :k].astype(np.float64)
    strength = np.ones(len(rated)) if settings.get("strength", "rating") == "binary" else ratings
    alpha = float(settings.get("alpha", 1.0))
    conf = alpha * strength if settings.get("confidence", "1+alpha*r") == "alpha*r" else 1.0 + alpha * strength
    interaction = ratings >= float(settings.get("threshold", 0.0))
    basis, targets = np.zeros((k, len(rated))), np.where(interaction, conf, 0.0)
    n = int(interaction.sum())
    if n == 0:
        return basis, targets
    y, c = factors[rated[interaction]], conf[interaction]
    lam = reg * n if weighted else reg
    system = factors.T @ factors + (y.T * (c - 1.0)) @ y + lam * np.eye(k)
    basis[:, interaction] = np.linalg.solve(system, y.T)
    return basis, targets


def liked_genre(user_row: np.ndarray, embedding: dict[str, list[float]], item_genres: Any) -> str | None:  # noqa: ANN401
    """genre_als: of an item's genres, the one whose embedding the user's factors like best, when the
    user likes it at all (a positive dot product): "because you like Sci-Fi"."""
    best, best_value = None, 0.0
    for genre in (item_genres if item_genres is not None else []):
        if genre in embedding:
            value = float(np.dot(user_row[:-1].astype(np.float64), np.asarray(embedding[genre][:-1])))
            if value > best_value:
                best, best_value = genre, value
    return best
