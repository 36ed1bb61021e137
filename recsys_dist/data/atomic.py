"""Atomic publication of output directories and files.

A job builds its whole output in a staging directory beside the destination
(``.<name>.staging-<random>``) and renames it into place only when everything is
written; on any error, including Ctrl-C, the staging directory is removed and a
previous output at the destination is left untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from recsys_dist.errors import DataError

MANIFEST = "manifest.json"


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike[str], *, replaceable: tuple[str, ...] = (MANIFEST,)) -> Iterator[Path]:
    """Yield an empty staging directory that replaces ``out`` when the block succeeds.

    ``out`` may already exist only if it is empty or holds one of ``replaceable`` (a
    previous output of ours); anything else is refused rather than deleted.
    """
    dest = Path(out)
    if dest.exists() and not _replaceable(dest, replaceable):
        raise DataError(f"{dest}: refusing to replace an existing directory that is not a recsys_dist output")
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = dest.parent / f".{dest.name}.staging-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        yield stage
        _publish(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _replaceable(dest: Path, markers: tuple[str, ...]) -> bool:
    if not dest.is_dir():
        return False
    return not any(dest.iterdir()) or any((dest / m).exists() for m in markers)


def _publish(stage: Path, dest: Path) -> None:
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(dest, old)
        os.replace(stage, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, dest)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
