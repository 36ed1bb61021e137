"""Reading Parquet without Arrow's thread pools.

`pq.read_table` by default decodes with the CPU pool (use_threads) and pre-buffers column chunks
through the IO pool (pre_buffer). Both are wrong here: a block is one task's work and the engines
already run blocks in parallel, and an IO-pool thread still releasing a read's buffers while the
interpreter finalises takes the GIL from a dying runtime and aborts the process ("terminate called
without an active exception", exit 134; seen in about 1 load in 20 of a saved model; arrow#34314).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def read_table(source: Any, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file (path or open binary file) read in the calling thread only."""
    return pq.read_table(source, columns=columns, use_threads=False, pre_buffer=False)
