"""Reading Parquet in the calling thread, with no Python object inside Arrow.

`pq.read_table` goes through Arrow's dataset scanner: it decodes on the CPU pool, pre-buffers through
the IO pool, and a pool thread may drop the last reference to the source after the read returns. When
that source wraps a Python object (an open file, a BytesIO, a bytes buffer), dropping it takes the GIL,
and if the interpreter is finalising by then the process aborts ("terminate called without an active
exception", exit 134; gdb: PyReadableFile / PyBuffer destructors on an Arrow pool thread; about 1 load
of a saved model in 12 with the defaults, 1 in 40 with the pools off). So: a local path is opened by
Arrow itself, any other source is read into Arrow-owned memory first, and the file is decoded by
`ParquetFile.read` in this thread, not by the scanner.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def _arrow_source(source: Any) -> Any:
    if isinstance(source, (str, os.PathLike)):
        return pa.OSFile(os.fspath(source), "rb")
    data = source if isinstance(source, (bytes, bytearray, memoryview)) else source.read()
    # A copy into Arrow's allocator: the reader then holds no reference to a Python buffer.
    owned = pa.allocate_buffer(len(data))
    memoryview(owned).cast("B")[:] = memoryview(data).cast("B")
    return pa.BufferReader(owned)


def read_table(source: Any, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file (a local path, an open binary file or bytes) read in the calling thread only."""
    with _arrow_source(source) as handle:
        return pq.ParquetFile(handle).read(columns=columns, use_threads=False)
