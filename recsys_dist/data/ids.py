"""Dense indices for raw user and item ids.

A raw id's index is its rank among the sorted distinct ids, so the mapping depends
only on the set of ids: every worker, every run and every input order agrees.
Raw ids are int64 (any integer that fits, including ones beyond int32) or strings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class UniqueAccumulator:
    """Collects the distinct values of a stream of id arrays in bounded memory."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self._pending = 0

    def add(self, values: np.ndarray) -> None:
        self._parts.append(pd.unique(values))
        self._pending += len(self._parts[-1])
        if self._pending > 4_000_000:  # compact so memory tracks the distinct count
            self._parts = [self.values()]
            self._pending = len(self._parts[0])

    def values(self) -> np.ndarray:
        if not self._parts:
            return np.empty(0, dtype=np.int64)
        merged = np.concatenate(self._parts)
        return np.sort(pd.unique(merged))


class IdIndex:
    """Bidirectional map between raw ids and dense int32 indices 0..n-1."""

    def __init__(self, sorted_ids: np.ndarray) -> None:
        ids = np.asarray(sorted_ids)
        if ids.dtype.kind not in "iuO":
            raise TypeError(f"ids must be integers or strings, got {ids.dtype}")
        if ids.dtype.kind in "iu":
            ids = ids.astype(np.int64)
        if len(ids) > np.iinfo(np.int32).max:
            raise ValueError("more than 2**31-1 distinct ids")
        self.ids = ids
        self._lookup = pd.Index(ids) if ids.dtype.kind == "O" else None

    @classmethod
    def from_values(cls, values: np.ndarray) -> IdIndex:
        return cls(np.sort(pd.unique(np.asarray(values))))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def is_integer(self) -> bool:
        return self.ids.dtype.kind != "O"

    def to_index(self, raw: np.ndarray) -> np.ndarray:
        """Indices of ``raw`` ids as int32; ids not in the map get -1."""
        raw = np.asarray(raw)
        if self._lookup is not None:
            if raw.dtype.kind != "O":
                raw = raw.astype(str).astype(object)
            return self._lookup.get_indexer(raw).astype(np.int32)
        if raw.dtype.kind not in "iu":
            raise TypeError(f"integer ids expected, got {raw.dtype}")
        pos = np.searchsorted(self.ids, raw)
        pos_clipped = np.minimum(pos, max(len(self.ids) - 1, 0))
        found = (pos < len(self.ids)) & (self.ids[pos_clipped] == raw) if len(self.ids) else np.zeros(len(raw), bool)
        return np.where(found, pos, -1).astype(np.int32)

    def to_raw(self, index: np.ndarray) -> np.ndarray:
        return self.ids[np.asarray(index)]
