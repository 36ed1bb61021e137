"""Item metadata (title, year, genres) from MovieLens movie files.

Titles are decoded as UTF-8 where valid and as latin-1 otherwise (ml-100k and ml-1m are
latin-1, later releases UTF-8). The year is the trailing ``(YYYY)`` of the title, else the
release date's year.
"""

from __future__ import annotations

import csv
import io
import re

import pandas as pd

from recsys_dist.data.sources import Source
from recsys_dist.errors import DataError

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
_YEAR = re.compile(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")
ITEM_COLUMNS = ["item_id", "title", "year", "genres"]


def read_items(source: Source, fmt_name: str, items_file: str | None, genre_file: str | None) -> pd.DataFrame | None:
    """Parse the items file of a MovieLens source; None when the source has none."""
    if items_file is None:
        return None
    text_lines = _decoded_lines(source, items_file)
    label = source.describe(items_file)
    if fmt_name == "ml-100k":
        genres = _read_genre_names(source, genre_file) if genre_file else ML100K_GENRES
        rows = _parse_u_item(text_lines, genres, label)
    elif fmt_name in ("ml-1m", "ml-10m"):
        rows = _parse_movies_dat(text_lines, label)
    else:
        rows = _parse_movies_csv(text_lines, label)
    frame = pd.DataFrame(rows, columns=ITEM_COLUMNS)
    frame["year"] = frame["year"].astype("Int16")
    dupes = frame["item_id"].duplicated()
    if dupes.any():
        raise DataError(f"{label}: item id {frame['item_id'][dupes].iloc[0]} listed twice")
    return frame


def _decoded_lines(source: Source, rel: str) -> list[str]:
    with source.open(rel) as fh:
        raw = fh.read()
    out = []
    for line in raw.split(b"\n"):
        line = line.rstrip(b"\r")
        try:
            out.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(line.decode("latin-1"))
    return out


def _read_genre_names(source: Source, rel: str) -> tuple[str, ...]:
    pairs = []
    for n, line in enumerate(_decoded_lines(source, rel), 1):
        if not line.strip():
            continue
        name, sep, idx = line.rpartition("|")
        if not sep or not idx.strip().isdigit():
            raise DataError(f"{source.describe(rel)} line {n}: expected 'name|index', found {line!r}")
        pairs.append((int(idx), name))
    return tuple(name for _, name in sorted(pairs))


def _year(title: str, date: str = "") -> int | None:
    match = _YEAR.search(title)
    if match:
        return int(match.group(1))
    tail = date.strip()[-4:]
    return int(tail) if tail.isdigit() else None


def _int_id(value: str, label: str, n: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{label} line {n}: item id {value!r} is not an integer") from None


def _parse_u_item(lines: list[str], genres: tuple[str, ...], label: str) -> list[tuple]:
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5 + len(genres):
            raise DataError(f"{label} line {n}: expected {5 + len(genres)} fields, found {len(fields)}")
        flags = fields[5:]
        if any(f not in ("0", "1") for f in flags):
            raise DataError(f"{label} line {n}: genre flags must be 0 or 1")
        title = fields[1].strip()
        rows.append((_int_id(fields[0], label, n), title, _year(title, fields[2]),
                     [g for g, f in zip(genres, flags) if f == "1"]))
    return rows


def _parse_movies_dat(lines: list[str], label: str) -> list[tuple]:
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split("::")
        if len(fields) != 3:
            raise DataError(f"{label} line {n}: expected 3 '::'-separated fields, found {len(fields)}")
        title = fields[1].strip()
        rows.append((_int_id(fields[0], label, n), title, _year(title), _genre_list(fields[2])))
    return rows


def _parse_movies_csv(lines: list[str], label: str) -> list[tuple]:
    reader = csv.reader(io.StringIO("\n".join(lines)))
    header = next(reader, None)
    if header is None or [h.lstrip("\ufeff") for h in header] != ["movieId", "title", "genres"]:
        raise DataError(f"{label} line 1: expected header movieId,title,genres, found {header}")
    rows = []
    for fields in reader:
        if not fields:
            continue
        n = reader.line_num
        if len(fields) != 3:
            raise DataError(f"{label} line {n}: expected 3 fields, found {len(fields)}")
        title = fields[1].strip()
        rows.append((_int_id(fields[0], label, n), title, _year(title), _genre_list(fields[2])))
    return rows


def _genre_list(text: str) -> list[str]:
    text = text.strip()
    if not text or text == "(no genres listed)":
        return []
    return text.split("|")
