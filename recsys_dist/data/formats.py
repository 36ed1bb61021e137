"""Raw rating formats and their detection.

========  ==========================  ==============================  ============
format    ratings file                items file                      scale
========  ==========================  ==============================  ============
ml-100k   u.data  (tab, no header)    u.item (pipe, latin-1, flags)   1-5 whole
ml-1m     ratings.dat (``::``)        movies.dat (``::``, ``A|B``)    1-5 whole
ml-10m    ratings.dat (``::``)        movies.dat                      0.5-5 half
ml-csv    ratings.csv (header)        movies.csv (quoted titles)      0.5-5 half
csv       any delimited text with a header naming the columns
parquet   any Parquet file with the named columns
========  ==========================  ==============================  ============

ml-csv covers ml-20m, ml-25m, ml-32m, ml-latest and ml-latest-small. User demographics come from
ml-100k's ``u.user`` and ml-1m's ``users.dat`` (data/users.py); the other releases have none.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

import numpy as np

from recsys_dist.data.sources import Source
from recsys_dist.errors import DataError


@dataclass(frozen=True, slots=True)
class RatingScale:
    min: float
    max: float
    step: float | None = None

    def violations(self, rating: np.ndarray) -> np.ndarray:
        """Boolean mask of ratings outside [min, max] or off the step grid."""
        bad = (rating < self.min) | (rating > self.max) | ~np.isfinite(rating)
        if self.step:
            steps = (rating - self.min) / self.step
            bad |= np.abs(steps - np.round(steps)) > 1e-6
        return bad

    def describe(self) -> str:
        step = f" in steps of {self.step:g}" if self.step else ""
        return f"{self.min:g}-{self.max:g}{step}"

    def to_mapping(self) -> dict[str, float | None]:
        return {"min": self.min, "max": self.max, "step": self.step}


WHOLE_STARS = RatingScale(1.0, 5.0, 1.0)
HALF_STARS = RatingScale(0.5, 5.0, 0.5)


@dataclass(frozen=True, slots=True)
class RatingsLayout:
    """How to read one ratings file."""

    sep: str
    header: bool
    columns: tuple[str, ...]
    """Columns in file order; with a header, the header must list exactly these (MovieLens) or
    contain at least user/item/rating/timestamp (generic, ``strict=False``)."""
    user: str
    item: str
    rating: str
    timestamp: str | None
    id_type: str = "int"
    strict: bool = True
    parquet: bool = False

    @property
    def needed(self) -> tuple[str, ...]:
        return tuple(c for c in (self.user, self.item, self.rating, self.timestamp) if c)


@dataclass(frozen=True, slots=True)
class SourceFormat:
    name: str
    ratings_file: str
    layout: RatingsLayout
    scale: RatingScale | None
    items_file: str | None = None
    genre_file: str | None = None
    users_file: str | None = None


ML100K = RatingsLayout("\t", False, ("user", "item", "rating", "timestamp"), "user", "item", "rating", "timestamp")
ML1M = RatingsLayout("::", False, ("user", "item", "rating", "timestamp"), "user", "item", "rating", "timestamp")
MLCSV = RatingsLayout(",", True, ("userId", "movieId", "rating", "timestamp"), "userId", "movieId", "rating", "timestamp")


def generic_layout(user: str, item: str, rating: str, timestamp: str, sep: str, id_type: str, parquet: bool) -> RatingsLayout:
    cols = tuple(c for c in (user, item, rating, timestamp) if c)
    return RatingsLayout(sep, True, cols, user, item, rating, timestamp or None, id_type, strict=False, parquet=parquet)


def detect_format(source: Source, requested: str, generic: RatingsLayout) -> SourceFormat:
    """Find the ratings file in ``source`` and decide its format (``requested`` may force one)."""
    files = source.files()
    if not files:
        raise DataError(f"{source.name}: empty (no files)")
    by_name: dict[str, list[str]] = {}
    for rel in files:
        by_name.setdefault(posixpath.basename(rel), []).append(rel)

    def find(name: str) -> str | None:
        hits = sorted(by_name.get(name, []), key=lambda p: (p.count("/"), p))
        return hits[0] if hits else None

    def sibling(rel: str, name: str) -> str | None:
        path = posixpath.join(posixpath.dirname(rel), name)
        return path if path in files else None

    if requested in ("auto", "ml-100k") and (rel := find("u.data")):
        return SourceFormat("ml-100k", rel, ML100K, WHOLE_STARS, sibling(rel, "u.item"), sibling(rel, "u.genre"),
                            sibling(rel, "u.user"))
    if requested in ("auto", "ml-1m", "ml-10m") and (rel := find("ratings.dat")):
        # ml-1m ships users.dat; ml-10m does not and uses half stars.
        one_m = requested == "ml-1m" or (requested == "auto" and sibling(rel, "users.dat") is not None)
        name, scale = ("ml-1m", WHOLE_STARS) if one_m else ("ml-10m", HALF_STARS)
        return SourceFormat(name, rel, ML1M, scale, sibling(rel, "movies.dat"),
                            users_file=sibling(rel, "users.dat") if one_m else None)
    if requested in ("auto", "ml-csv") and (rel := find("ratings.csv")):
        return SourceFormat("ml-csv", rel, MLCSV, HALF_STARS, sibling(rel, "movies.csv"))
    if len(files) == 1:
        return detect_single_file(source, files[0], requested, generic)
    if requested != "auto":
        raise DataError(f"{source.name}: no ratings file of format {requested} found (files: {', '.join(files[:8])})")
    raise DataError(
        f"{source.name}: no MovieLens ratings file (u.data, ratings.dat, ratings.csv) found; "
        "for other tables pass a single file with --format csv or parquet"
    )


def detect_single_file(source: Source, rel: str, requested: str, generic: RatingsLayout) -> SourceFormat:
    """A lone file: Parquet by extension, MovieLens shapes by their first line, else generic CSV."""
    lower = rel.lower()
    if requested == "parquet" or (requested == "auto" and lower.endswith(".parquet")):
        return SourceFormat("parquet", rel, _as_parquet(generic), None)
    fixed = {"ml-100k": (ML100K, WHOLE_STARS), "ml-1m": (ML1M, WHOLE_STARS), "ml-10m": (ML1M, HALF_STARS),
             "ml-csv": (MLCSV, HALF_STARS)}
    if requested in fixed:
        layout, scale = fixed[requested]
        return SourceFormat(requested, rel, layout, scale)
    if requested == "auto":
        with source.open(rel) as fh:
            first = fh.read(4096).split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")
        if "::" in first and len(first.split("::")) == 4:
            return SourceFormat("ml-1m", rel, ML1M, None)
        if first.count("\t") == 3 and all(f.strip().lstrip("-").isdigit() for f in first.split("\t")[:2]):
            return SourceFormat("ml-100k", rel, ML100K, None)
        if first.split(",") == list(MLCSV.columns):
            return SourceFormat("ml-csv", rel, MLCSV, None)
    return SourceFormat("csv", rel, generic, None)


def _as_parquet(layout: RatingsLayout) -> RatingsLayout:
    return RatingsLayout(layout.sep, True, layout.columns, layout.user, layout.item, layout.rating,
                         layout.timestamp, layout.id_type, strict=False, parquet=True)
