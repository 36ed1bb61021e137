"""ALSModel: the fitted parameters of r(u, i) = mu + b_u + b_i + p_u . q_i and their id maps. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsys_dist.errors import DataError
from recsys_dist.kernels.als import predict_pairs


@dataclass
class ALSModel:
    """Fitted model. Matrices hold factors with the bias in the last column ([n, k+1] float32).

    Users or items without training ratings have zero factors and bias, so their predictions
    fall back to mu + the known side's bias. ``kind`` is ``als``, ``bias`` (k = 0) or ``mean``.
    """

    kind: str
    mu_: float
    user_matrix_: np.ndarray
    item_matrix_: np.ndarray
    user_ids_: np.ndarray
    item_ids_: np.ndarray
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def n_factors(self) -> int:
        return self.user_matrix_.shape[1] - 1

    @property
    def user_factors_(self) -> np.ndarray:
        return self.user_matrix_[:, :-1]

    @property
    def item_factors_(self) -> np.ndarray:
        return self.item_matrix_[:, :-1]

    @property
    def user_bias_(self) -> np.ndarray:
        return self.user_matrix_[:, -1]

    @property
    def item_bias_(self) -> np.ndarray:
        return self.item_matrix_[:, -1]

    def predict_idx(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Predictions for dense index pairs; index -1 marks an unknown user or item."""
        user_idx = np.ascontiguousarray(user_idx, np.int64)
        item_idx = np.ascontiguousarray(item_idx, np.int64)
        if len(user_idx) != len(item_idx):
            raise DataError(f"{len(user_idx)} users but {len(item_idx)} items")
        out = np.empty(len(user_idx), np.float64)
        predict_pairs(user_idx, item_idx, self.user_matrix_, self.item_matrix_, float(self.mu_), out)
        return out

    def user_index(self, user_ids: np.ndarray) -> np.ndarray:
        return _lookup(self.user_ids_, np.asarray(user_ids))

    def item_index(self, item_ids: np.ndarray) -> np.ndarray:
        return _lookup(self.item_ids_, np.asarray(item_ids))

    def predict(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Predictions for original ids; unknown ids fall back to biases, then to mu."""
        return self.predict_idx(self.user_index(user_ids), self.item_index(item_ids))


def _lookup(sorted_ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
    if sorted_ids.dtype.kind == "O" or raw.dtype.kind in "OUS":
        import pandas as pd

        return pd.Index(sorted_ids).get_indexer(raw.astype(object)).astype(np.int64)
    pos = np.searchsorted(sorted_ids, raw)
    ok = pos < len(sorted_ids)
    ok[ok] = sorted_ids[pos[ok]] == raw[ok]
    return np.where(ok, pos, -1).astype(np.int64)
