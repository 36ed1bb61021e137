"""Console progress: one bar per training iteration and per scoring pass, advanced as blocks finish.

The driver opens a bar for the blocks it is about to run (``with progress.bar("iteration 3/10", 8):``)
and every executor calls ``progress.advance()`` when one block's task completes -- in its own loop
for in-process, as pool results arrive for shared memory, as Dask futures complete for a cluster --
so the three engines draw the same bar. Nothing is drawn until a console is switched on
(``with progress.to_console(sys.stderr):``, which the CLI does on a terminal without ``--quiet``):
library callers, tests and redirected logs see no control characters.

A bar redraws on every block and twice a second while a block runs (elapsed time), and is erased
when it closes so the one log line per iteration that follows stays clean.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Iterator, TextIO

WIDTH = 24


class _Bar:
    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done, self.started = label, max(total, 1), 0, time.monotonic()

    def line(self) -> str:
        done = min(self.done, self.total)
        filled = WIDTH * done // self.total
        return (f"{self.label} [{'#' * filled}{'-' * (WIDTH - filled)}] {done}/{self.total} blocks "
                f"{time.monotonic() - self.started:5.1f} s")


class Console:
    """Draws the innermost open bar on ``stream``; a ticker thread keeps its elapsed time moving."""

    def __init__(self, stream: TextIO, interval: float = 0.5) -> None:
        self.stream, self.interval = stream, interval
        self.bars: list[_Bar] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="recsys_dist-progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if self.bars:
                    self._draw()

    def _draw(self) -> None:
        self.stream.write("\r\x1b[K" + (self.bars[-1].line() if self.bars else ""))
        self.stream.flush()

    def push(self, label: str, total: int) -> None:
        with self._lock:
            self.bars.append(_Bar(label, total))
            self._draw()

    def pop(self) -> None:
        with self._lock:
            self.bars.pop()
            self._draw()  # erases the line, or shows the outer bar again

    def advance(self, n: int) -> None:
        with self._lock:
            if self.bars:
                self.bars[-1].done = max(0, self.bars[-1].done + n)
                self._draw()

    def close(self) -> None:
        self._stop.set()
        self._ticker.join()


_console: Console | None = None


@contextlib.contextmanager
def to_console(stream: TextIO) -> Iterator[None]:
    """Draw bars on ``stream`` inside this block (the caller decides whether it is a terminal)."""
    global _console
    previous, _console = _console, Console(stream)
    try:
        yield
    finally:
        _console.close()
        _console = previous


@contextlib.contextmanager
def bar(label: str, total: int) -> Iterator[None]:
    """A bar over ``total`` blocks for the work done inside this block (nested bars stack)."""
    console = _console
    if console is None:
        yield
        return
    console.push(label, total)
    try:
        yield
    finally:
        console.pop()


def advance(n: int = 1) -> None:
    """``n`` more blocks of the innermost open bar are done (negative when a retry starts them over)."""
    if _console is not None:
        _console.advance(n)


class LogHandler(logging.StreamHandler):
    """A logging handler for the console's stream: a record never lands in the middle of a bar
    (the bar is erased, the record written, the bar drawn again below it)."""

    def emit(self, record: logging.LogRecord) -> None:
        console = _console
        if console is None or console.stream is not self.stream:
            super().emit(record)
            return
        with console._lock:
            if console.bars:
                self.stream.write("\r\x1b[K")
            super().emit(record)
            if console.bars:
                console._draw()
