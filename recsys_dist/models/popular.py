"""The most-popular baseline (``popular``): every user gets the items with the most interactions.

It is the floor every ranking model must beat. Stored in the common layout with rank 0: the
item matrix's one column (the bias) holds the item's number of interactions (training ratings
at or above ``model.threshold``), user rows are 0, mu is 0; ties go to the lower item index.
"""

from __future__ import annotations

import numpy as np


def popular_matrices(item_counts: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(user matrix [n_users, 1] of zeros, item matrix [n_items, 1] = interaction counts), float32."""
    if item_counts.max(initial=0) >= 1 << 24:
        raise ValueError("an item has more than 2^24 interactions: float32 scores would tie")
    return np.zeros((n_users, 1), np.float32), item_counts.astype(np.float32).reshape(-1, 1)
