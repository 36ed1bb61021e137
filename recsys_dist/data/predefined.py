"""Train and test sets given as files: the official ml-100k folds (u1..u5, ua, ub from
the archive) or any two rating files with original ids, mapped onto a dataset's indices."""

from __future__ import annotations

import posixpath

import numpy as np

from recsys_dist.config import IngestConfig, SplitConfig
from recsys_dist.data.dataset import Dataset, Ratings, sort_dedup
from recsys_dist.data.formats import RatingScale, detect_single_file, generic_layout
from recsys_dist.data.ids import IdIndex
from recsys_dist.data.readers import iter_rating_chunks
from recsys_dist.data.sources import Source, resolve_source
from recsys_dist.errors import DataError


def predefined_parts(cfg: SplitConfig, ds: Dataset) -> tuple[Ratings, Ratings]:
    """(train, test) ratings, each sorted by (user, item) with duplicates resolved as in ingest."""
    if cfg.method == "folds":
        recorded = ds.manifest.get("source", {})
        spec = cfg.archive or recorded.get("location") or recorded.get("spec", "")
        if not spec or spec == "synth":
            raise DataError(f"{ds.url}: official folds need the ml-100k archive: pass --archive PATH")
        try:
            source = resolve_source(spec)
        except DataError as exc:
            where = "--archive" if cfg.archive else f"the archive {ds.url} was ingested from"
            raise DataError(f"{exc} ({where}; the official folds are read from the ml-100k archive: pass "
                            "--archive PATH/ml-100k.zip)") from None
        files = [_find(source, f"{cfg.fold}.base"), _find(source, f"{cfg.fold}.test")]
        located = [(source, rel) for rel in files]
    else:
        located = []
        for spec in (cfg.train_file, cfg.test_file):
            source = resolve_source(spec)
            located.append((source, source.files()[0]))
    users, items = ds.user_index(), ds.item_index()
    scale = RatingScale(*ds.rating_scale)
    train, test = (_read_mapped(src, rel, users, items, scale) for src, rel in located)
    both = np.intersect1d(_pair_keys(train), _pair_keys(test))
    if len(both):
        raise DataError(f"{located[1][0].describe(located[1][1])}: {len(both)} (user, item) pairs are also in "
                        f"the training file; a test rating must not be trained on")
    return train, test


def _find(source: Source, name: str) -> str:
    hits = sorted((r for r in source.files() if posixpath.basename(r) == name), key=lambda p: p.count("/"))
    if not hits:
        raise DataError(f"{source.name}: no {name} (official folds come from the ml-100k archive)")
    return hits[0]


def _read_mapped(source: Source, rel: str, users: IdIndex, items: IdIndex, scale: RatingScale) -> Ratings:
    d = IngestConfig()
    generic = generic_layout(d.user_col, d.item_col, d.rating_col, d.timestamp_col, d.delimiter, d.id_type, False)
    fmt = detect_single_file(source, rel, "auto", generic)
    parts, seqs, offset = [], [], 0
    for chunk in iter_rating_chunks(source, rel, fmt.layout, scale):
        u, i = users.to_index(chunk.user), items.to_index(chunk.item)
        for idx, raw, what in ((u, chunk.user, "user"), (i, chunk.item, "item")):
            missing = np.flatnonzero(idx < 0)
            if len(missing):
                row = int(missing[0])
                value = raw[row].item() if isinstance(raw[row], np.generic) else raw[row]
                raise DataError(f"{source.describe(rel)} line {chunk.first_line + row}: {what} {value!r} is not "
                                f"in the dataset's id map; ingest data that contains it")
        parts.append(Ratings(u, i, chunk.rating.astype(np.float32), chunk.timestamp))
        seqs.append(np.arange(offset, offset + len(chunk)))
        offset += len(chunk)
    kept, _ = sort_dedup(Ratings.concat(parts), np.concatenate(seqs))
    return kept


def _pair_keys(r: Ratings) -> np.ndarray:
    return r.user_idx.astype(np.int64) << 32 | r.item_idx.astype(np.int64)
