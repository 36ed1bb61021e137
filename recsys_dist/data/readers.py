"""Streaming readers of raw ratings files.

Text is read ``chunk_bytes`` at a time, cut at the last newline and parsed by
pyarrow's CSV reader (``::`` is first rewritten to a tab), so memory stays bounded
whatever the file size. Checking is two-speed: the fast path only notices that a chunk
is bad (parse error, null, NaN, off-scale); then a line-by-line Python scan of that
chunk finds the first offending line and says what is wrong with it.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recsys_dist.data.formats import RatingScale, RatingsLayout
from recsys_dist.data.sources import Source
from recsys_dist.errors import DataError

INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True)
class RawChunk:
    """Parsed ratings with raw ids; ``first_line`` is the file line of the first row."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    first_line: int

    def __len__(self) -> int:
        return len(self.rating)


def iter_rating_chunks(
    source: Source, rel: str, layout: RatingsLayout, scale: RatingScale | None, chunk_bytes: int = 32 << 20
) -> Iterator[RawChunk]:
    """Yield the ratings of one file in chunks; raise DataError naming file and line on bad input."""
    label = source.describe(rel)
    reader = _ParquetReader(label, layout, scale) if layout.parquet else _TextReader(label, layout, scale)
    n_rows = 0
    with source.open(rel) as fh:
        for chunk in reader.chunks(fh, chunk_bytes):
            n_rows += len(chunk)
            yield chunk
    if n_rows == 0:
        raise DataError(f"{label}: no ratings (empty input)")


class _TextReader:
    def __init__(self, label: str, layout: RatingsLayout, scale: RatingScale | None) -> None:
        self.label, self.layout, self.scale = label, layout, scale
        self.sep = "\t" if layout.sep == "::" else layout.sep
        self.id_type = layout.id_type
        self.columns: list[str] = list(layout.columns)

    def chunks(self, fh: BinaryIO, chunk_bytes: int) -> Iterator[RawChunk]:
        stream = io.BufferedReader(fh, 1 << 20)  # type: ignore[arg-type]
        line_no = 1
        if self.layout.header:
            self._read_header(stream.readline())
            line_no = 2
        leftover = b""
        while True:
            data = stream.read(chunk_bytes)
            buf = leftover + data
            if data:
                cut = buf.rfind(b"\n")
                if cut < 0:
                    leftover = buf
                    continue
                buf, leftover = buf[: cut + 1], buf[cut + 1 :]
            if buf.strip():
                if self.layout.sep == "::":
                    buf = buf.replace(b"::", b"\t")
                yield self._parse(buf, line_no)
            line_no += buf.count(b"\n")
            if not data:
                return

    def _read_header(self, raw: bytes) -> None:
        if not raw.strip():
            raise DataError(f"{self.label}: no ratings (empty input)")
        text = raw.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r\n")
        names = [n.strip().strip('"') for n in next(csv.reader([text], delimiter=self.sep))]
        want = list(self.layout.columns)
        if self.layout.strict and names != want:
            missing = [c for c in want if c not in names]
            extra = [c for c in names if c not in want]
            what = f"missing {missing}" if missing else f"unexpected {extra}" if extra else "wrong order"
            raise DataError(f"{self.label} line 1: header {names} does not match {want} ({what})")
        missing = [c for c in self.layout.needed if c not in names]
        if missing:
            raise DataError(f"{self.label} line 1: column(s) {missing} not found in header {names}")
        self.columns = names

    def _parse(self, buf: bytes, line_no: int) -> RawChunk:
        if self.id_type == "auto":
            self.id_type = "int"
            try:
                return self._parse_typed(buf, line_no)
            except DataError:
                self.id_type = "str"
        return self._parse_typed(buf, line_no)

    def _parse_typed(self, buf: bytes, line_no: int) -> RawChunk:
        lay = self.layout
        id_arrow = pa.int64() if self.id_type == "int" else pa.string()
        types = {lay.user: id_arrow, lay.item: id_arrow, lay.rating: pa.float64()}
        if lay.timestamp:
            types[lay.timestamp] = pa.int64()
        try:
            table = pacsv.read_csv(
                io.BytesIO(buf),
                read_options=pacsv.ReadOptions(column_names=self.columns, block_size=8 << 20),
                parse_options=pacsv.ParseOptions(delimiter=self.sep),
                convert_options=pacsv.ConvertOptions(
                    column_types=types, include_columns=list(lay.needed), strings_can_be_null=False
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            self._raise_first_problem(buf, line_no, str(exc))
        bad = any(table.column(c).null_count for c in lay.needed)
        rating = table.column(lay.rating).to_numpy(zero_copy_only=False)
        bad = bad or not np.isfinite(rating).all()
        if self.scale is not None:
            bad = bad or bool(self.scale.violations(rating).any())
        if bad:
            self._raise_first_problem(buf, line_no, "invalid value")
        ts = table.column(lay.timestamp).to_numpy() if lay.timestamp else np.zeros(len(rating), np.int64)
        return RawChunk(_ids(table.column(lay.user)), _ids(table.column(lay.item)), rating, ts, line_no)

    def _raise_first_problem(self, buf: bytes, line_no: int, fallback: str) -> None:
        text = buf.decode("latin-1")
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=self.sep)
        n_cols = len(self.columns)
        pos = {c: i for i, c in enumerate(self.columns)}
        for offset, fields in enumerate(rows):
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if len(fields) != n_cols:
                self._fail(line_no + offset, f"expected {n_cols} fields, found {len(fields)}")
            problem = self._check_fields(fields, pos)
            if problem:
                self._fail(line_no + offset, problem)
        raise DataError(f"{self.label} lines {line_no}+: {fallback}")

    def _check_fields(self, fields: list[str], pos: dict[str, int]) -> str | None:
        lay = self.layout
        for name, what in ((lay.user, "user id"), (lay.item, "item id")):
            value = fields[pos[name]].strip()
            if not value:
                return f"empty {what}"
            if self.id_type == "int" and not _is_int64(value):
                hint = " (set ingest.id_type = \"str\" for string ids)" if not lay.strict else ""
                return f"{what} {value!r} is not an integer within int64{hint}"
        raw = fields[pos[lay.rating]].strip()
        try:
            rating = float(raw)
        except ValueError:
            return f"rating {raw!r} is not a number"
        if not math.isfinite(rating):
            return f"rating {raw!r} is not finite"
        if self.scale is not None and self.scale.violations(np.array([rating])).any():
            return f"rating {raw} outside the scale {self.scale.describe()}"
        if lay.timestamp:
            value = fields[pos[lay.timestamp]].strip()
            if not _is_int64(value):
                return f"timestamp {value!r} is not an integer"
        return None

    def _fail(self, line: int, problem: str) -> None:
        raise DataError(f"{self.label} line {line}: {problem}")


class _ParquetReader:
    def __init__(self, label: str, layout: RatingsLayout, scale: RatingScale | None) -> None:
        self.label, self.layout, self.scale = label, layout, scale

    def chunks(self, fh: BinaryIO, chunk_bytes: int) -> Iterator[RawChunk]:
        try:
            pfile = pq.ParquetFile(fh)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{self.label}: not a readable Parquet file: {exc}") from None
        names = pfile.schema_arrow.names
        missing = [c for c in self.layout.needed if c not in names]
        if missing:
            raise DataError(f"{self.label}: column(s) {missing} not found (columns: {names})")
        lay, row = self.layout, 1
        for batch in pfile.iter_batches(batch_size=1 << 20, columns=list(lay.needed)):
            cols = {c: batch.column(c) for c in lay.needed}
            for c, what in ((lay.user, "user id"), (lay.item, "item id"), (lay.rating, "rating")):
                self._check_column(cols[c], c, what, row)
            rating = cols[lay.rating].cast(pa.float64()).to_numpy(zero_copy_only=False)
            bad = ~np.isfinite(rating)
            if self.scale is not None:
                bad |= self.scale.violations(rating)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(f"{self.label} row {row + i}: rating {rating[i]} is invalid or off the scale")
            ts = cols[lay.timestamp].cast(pa.int64()).to_numpy() if lay.timestamp else np.zeros(len(rating), np.int64)
            yield RawChunk(_ids(cols[lay.user]), _ids(cols[lay.item]), rating, ts, row)
            row += len(batch)

    def _check_column(self, col: pa.Array, name: str, what: str, row: int) -> None:
        if col.null_count:
            i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{self.label} row {row + i}: missing {what} (column {name!r})")
        kind = col.type
        if what == "rating" and not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise DataError(f"{self.label}: column {name!r} ({what}) has type {kind}, expected a number")
        if what != "rating" and not (pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise DataError(f"{self.label}: column {name!r} ({what}) has type {kind}, expected integers or strings")


def _ids(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if pa.types.is_integer(col.type):
        return col.cast(pa.int64()).to_numpy()
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)


def _is_int64(text: str) -> bool:
    try:
        return abs(int(text)) <= INT64_MAX
    except ValueError:
        return False
