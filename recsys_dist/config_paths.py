"""Local paths in a job's configuration made absolute, once, at the edge (the CLI).

A job hands its locations to other processes: shm pool processes and Dask workers open the datasets
themselves, and a `dask worker` runs in a directory of its own (often on another machine), where a
relative path means something else or nothing. So every local path is resolved against the job's
own working directory before any work; URLs (``s3://``, ``memory://``, ``file://``) and names that
are not paths (``synth``, download shorthands) are left as they are.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Collection

from recsys_dist.config import JobConfig

# section -> keys that hold a local path or URL
PATH_KEYS: dict[str, tuple[str, ...]] = {
    "ingest": ("source", "out", "cache_dir"),
    "synth": ("out",),
    "split": ("data", "out", "train_file", "test_file", "archive"),
    "run": ("out", "source"),
    "train": ("train", "test", "out"),
    "bench": ("data", "work_dir", "out"),
    "evaluate": ("model", "data", "out", "train"),
    "score": ("model", "out", "users", "train"),
    "filter": ("allow", "deny"),
    "recommend": ("model", "fold_in", "train"),
    "foldin": ("model", "ratings", "out"),
    "similar": ("model", "out", "items"),
    "tune": ("data", "space", "out", "test", "archive"),
    "engine": ("upload", "tls_ca", "tls_cert", "tls_key"),
}
SOURCE_KEYS = {("ingest", "source"), ("run", "source")}


def absolute_location(value: str) -> str:
    """``value`` as an absolute location: a local path made absolute (``~`` expanded), a URL or "" unchanged."""
    if not value or "://" in value:
        return value
    return os.path.abspath(os.path.expanduser(value))


def resolve_paths(cfg: JobConfig, names: Collection[str] = ()) -> JobConfig:
    """``cfg`` with every local path of PATH_KEYS absolute. A source that is one of ``names`` (``synth``,
    a shorthand such as ``ml-100k``) names data rather than a path, and is kept."""
    sections: dict[str, Any] = {}
    for section, keys in PATH_KEYS.items():
        current = getattr(cfg, section)
        changes: dict[str, Any] = {}
        for key in keys:
            value = getattr(current, key)
            if (section, key) in SOURCE_KEYS and value in names:
                continue
            resolved = [absolute_location(v) for v in value] if isinstance(value, list) else absolute_location(value)
            if resolved != value:
                changes[key] = resolved
        if changes:
            sections[section] = dataclasses.replace(current, **changes)
    return dataclasses.replace(cfg, **sections) if sections else cfg
