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
        return lookup(self.ids, raw, self._lookup).astype(np.int32)

    def to_raw(self, index: np.ndarray) -> np.ndarray:
        return self.ids[np.asarray(index)]


def lookup(ids: np.ndarray, raw, index: pd.Index | None = None) -> np.ndarray:  # noqa: ANN001
    """Positions (int64) of ``raw`` ids in the map ``ids`` (sorted integers, or strings); -1 where absent.

    The one id lookup of the library (datasets, models, jobs): an id is found whatever form it comes
    in, as long as it names the same id: the integer 42 and the string "42" are the same id for a
    map of either type (a CSV, a command line and Python code spell ids differently). An id that
    cannot be one of the map's type (a non-integer string or a fraction for an integer map) is a
    TypeError naming it, never a silent "unknown"."""
    raw = np.asarray(raw)
    if raw.ndim == 0:
        raw = raw.reshape(1)
    if ids.dtype.kind == "O":
        if raw.dtype.kind != "O" or any(not isinstance(x, str) for x in raw[:1]):
            raw = np.array([_as_str(x) for x in raw.tolist()], dtype=object)
        found = (index if index is not None else pd.Index(ids)).get_indexer(raw)
        return found.astype(np.int64)
    raw = _as_integers(raw)
    if len(ids) == 0:
        return np.full(len(raw), -1, np.int64)
    pos = np.searchsorted(ids, raw)
    ok = pos < len(ids)
    ok[ok] = ids[pos[ok]] == raw[ok]
    return np.where(ok, pos, -1).astype(np.int64)


def _as_str(x) -> str:  # noqa: ANN001
    if isinstance(x, (float, np.floating)) and float(x).is_integer():
        return str(int(x))  # 42.0 from a float column is the id "42"
    return str(x)


def _as_integers(raw: np.ndarray) -> np.ndarray:
    if raw.dtype.kind in "iu":
        return raw.astype(np.int64)
    if raw.dtype.kind == "b":
        raise TypeError("integer ids expected, got booleans")
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
            bad = raw[~(np.isfinite(raw) & (raw == np.round(raw)))][0]
            raise TypeError(f"integer ids expected, got {bad!r}")
        return raw.astype(np.int64)
    out = np.empty(len(raw), np.int64)
    for n, x in enumerate(raw.tolist()):
        try:
            out[n] = int(x.strip()) if isinstance(x, str) else int(x)
        except (TypeError, ValueError):
            raise TypeError(f"integer ids expected, got {x!r}") from None
        if isinstance(x, float) and not x.is_integer():
            raise TypeError(f"integer ids expected, got {x!r}")
    return out
