"""Where raw ratings come from: a folder, a .zip archive, a single file, any fsspec URL,
or a MovieLens shorthand (``ml-100k`` ... ``ml-latest``) downloaded once into a cache.

A ``Source`` lists its files by relative path and opens them as binary streams; read
errors (a truncated archive member, a vanished file) become ``DataError`` naming the file.
"""

from __future__ import annotations

import io
import os
import shutil
import urllib.error
import urllib.request
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import fsspec

from recsys_dist.errors import DataError

GROUPLENS = "https://files.grouplens.org/datasets/movielens"
SHORTHANDS = {
    "ml-100k": "ml-100k.zip",
    "ml-1m": "ml-1m.zip",
    "ml-10m": "ml-10m.zip",
    "ml-20m": "ml-20m.zip",
    "ml-25m": "ml-25m.zip",
    "ml-32m": "ml-32m.zip",
    "ml-latest-small": "ml-latest-small.zip",
    "ml-latest": "ml-latest.zip",
}
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError)


class Source:
    """A set of raw files; ``name`` is what error messages call it."""

    name: str

    def files(self) -> list[str]:
        raise NotImplementedError

    def _open(self, rel: str) -> BinaryIO:
        raise NotImplementedError

    def open(self, rel: str) -> BinaryIO:
        try:
            return _Guarded(self._open(rel), self.describe(rel))
        except FileNotFoundError:
            raise DataError(f"{self.describe(rel)}: no such file") from None
        except _READ_ERRORS as exc:
            raise DataError(f"{self.describe(rel)}: cannot open: {exc}") from None

    def describe(self, rel: str) -> str:
        return f"{self.name}:{rel}" if rel else self.name


class DirSource(Source):
    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, name: str) -> None:
        self.fs, self.root, self.name = fs, root.rstrip("/"), name

    def files(self) -> list[str]:
        return sorted(p[len(self.root) + 1 :] for p in self.fs.find(self.root))

    def _open(self, rel: str) -> BinaryIO:
        return self.fs.open(f"{self.root}/{rel}", "rb")

    def describe(self, rel: str) -> str:
        return f"{self.name.rstrip('/')}/{rel}"


class ZipSource(Source):
    def __init__(self, fileobj: BinaryIO, name: str) -> None:
        self.name = name
        try:
            self.zip = zipfile.ZipFile(fileobj)
        except _READ_ERRORS as exc:
            raise DataError(f"{name}: not a readable zip archive (corrupt or truncated?): {exc}") from None

    def files(self) -> list[str]:
        return sorted(i.filename for i in self.zip.infolist() if not i.is_dir())

    def _open(self, rel: str) -> BinaryIO:
        return self.zip.open(rel)  # type: ignore[return-value]


class FileSource(Source):
    """A single file: its one relative path is its base name."""

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str, name: str) -> None:
        self.fs, self.path, self.name = fs, path, name

    def files(self) -> list[str]:
        return [os.path.basename(self.path)]

    def _open(self, rel: str) -> BinaryIO:
        return self.fs.open(self.path, "rb")

    def describe(self, rel: str) -> str:
        return self.name


class _Guarded(io.RawIOBase):
    """A read-only stream whose read errors name the file (e.g. a bad CRC in a truncated zip)."""

    def __init__(self, inner: BinaryIO, label: str) -> None:
        self._inner, self._label = inner, label

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(getattr(self._inner, "seekable", lambda: False)())

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()

    def read(self, size: int = -1) -> bytes:
        try:
            return self._inner.read(size)
        except _READ_ERRORS as exc:
            raise DataError(f"{self._label}: read failed (corrupt or truncated archive?): {exc}") from None

    def readinto(self, buf) -> int:  # noqa: ANN001 - any writable buffer
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


def resolve_source(spec: str, cache_dir: str | Path | None = None, base_url: str = GROUPLENS) -> Source:
    """Turn a --source argument into a Source (downloading a shorthand when needed)."""
    if not spec:
        raise DataError("no source given: pass --source PATH (folder, .zip, file or URL) or a shorthand like ml-100k")
    if spec in SHORTHANDS:
        path = fetch_shorthand(spec, Path(cache_dir or default_cache_dir()), base_url)
        return ZipSource(open(path, "rb"), str(path))
    try:
        fs, path = fsspec.core.url_to_fs(spec)
    except ImportError as exc:
        raise DataError(f"{spec}: reading this URL needs an extra package: {exc}") from None
    except ValueError as exc:
        raise DataError(f"{spec}: not a usable path or URL: {exc}") from None
    try:
        if fs.isdir(path):
            return DirSource(fs, path, spec)
        if not fs.exists(path):
            raise DataError(f"{spec}: no such file or directory")
        if path.lower().endswith(".zip"):
            return ZipSource(fs.open(path, "rb"), spec)
    except DataError:
        raise
    except Exception as exc:  # network file systems raise their own kinds
        raise DataError(f"{spec}: cannot read: {exc}") from None
    return FileSource(fs, path, spec)


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "recsys_dist"


def fetch_shorthand(name: str, cache_dir: Path, base_url: str = GROUPLENS) -> Path:
    """Return the cached archive for shorthand ``name``, downloading it the first time."""
    target = cache_dir / SHORTHANDS[name]
    if target.exists():
        return target
    url = f"{base_url.rstrip('/')}/{SHORTHANDS[name]}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{target.name}.{uuid.uuid4().hex[:8]}.part"
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        if not zipfile.is_zipfile(tmp):
            raise DataError(f"{url}: the download is not a zip archive")
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"cannot download {url} ({reason}); without network, fetch it elsewhere and pass --source PATH/{SHORTHANDS[name]}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return target
