"""Atomic publication of output directories and files.

A job builds its whole output in a staging directory beside the destination
(``.<name>.staging-<random>``) and renames it into place only when everything is
written; on any error, including Ctrl-C, the staging directory is removed and a
previous output at the destination is left untouched. An fsspec URL (s3://, gs://,
memory://, ...) cannot be renamed into: the output is staged in a local temporary directory
and uploaded when complete, manifests and summaries last, so a reader never takes a
half-uploaded output for a finished one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
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
    if _is_remote(str(out)):
        with _staged_upload(str(out), replaceable) as stage:
            yield stage
        return
    dest = Path(str(out)[len("file://"):] if str(out).startswith("file://") else out)
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


def _is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


@contextlib.contextmanager
def _staged_upload(url: str, replaceable: tuple[str, ...]) -> Iterator[Path]:
    import fsspec

    fs, root = fsspec.core.url_to_fs(url)
    root = root.rstrip("/")
    if fs.exists(root) and fs.ls(root, detail=False) and not any(fs.exists(f"{root}/{m}") for m in replaceable):
        raise DataError(f"{url}: refusing to replace an existing directory that is not a recsys_dist output")
    with tempfile.TemporaryDirectory(prefix="recsys_dist-upload-") as tmp:
        stage = Path(tmp) / "out"
        stage.mkdir()
        yield stage
        files = sorted(p for p in stage.rglob("*") if p.is_file())
        last = {MANIFEST, *replaceable}
        for marker in replaceable:  # the old output stops looking complete before anything changes
            if fs.exists(f"{root}/{marker}"):
                fs.rm(f"{root}/{marker}")
        if fs.exists(root):
            fs.rm(root, recursive=True)
        # deepest manifests first, the top-level markers at the very end
        for path in [p for p in files if p.name not in last] + sorted(
                (p for p in files if p.name in last), key=lambda p: -len(p.relative_to(stage).parts)):
            target = f"{root}/{path.relative_to(stage).as_posix()}"
            fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(path), target)


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
