"""Which items may be recommended: allow and deny lists, genres and a minimum popularity, as one mask."""

from __future__ import annotations

import numpy as np

from recsys_dist.config import FilterConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.recommendations import read_ids
from recsys_dist.errors import DataError


def item_mask(train: Dataset, item_ids: np.ndarray, rules: FilterConfig) -> np.ndarray | None:
    """bool[n_items] over the model's items (``item_ids``, in the training data's order), or None
    when no rule is set. An item must pass every rule that is set."""
    if not (rules.allow or rules.deny or rules.genres or rules.min_ratings):
        return None
    integer = item_ids.dtype.kind in "iu"
    mask = np.ones(len(item_ids), bool)
    if rules.allow:
        mask &= np.isin(item_ids, read_ids(rules.allow, integer, "item"))
    if rules.deny:
        mask &= ~np.isin(item_ids, read_ids(rules.deny, integer, "item"))
    if rules.genres:
        mask &= _has_genre(train, rules.genres)
    if rules.min_ratings:
        mask &= train.item_counts() >= rules.min_ratings
    return mask


def _has_genre(train: Dataset, wanted: list[str]) -> np.ndarray:
    known = {g.lower(): g for g in train.manifest.get("genres", [])}
    unknown = [g for g in wanted if g.lower() not in known]
    if unknown:
        raise DataError(f"filter.genres: {', '.join(unknown)} not in {train.url} "
                        f"(its genres: {', '.join(sorted(known.values())) or 'none'})")
    chosen = {known[g.lower()] for g in wanted}
    genres = train.read_items()["genres"]
    return np.array([bool(chosen.intersection(gs)) if gs is not None else False for gs in genres], bool)
