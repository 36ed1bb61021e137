"""Waiting on a Dask executor's tasks: progress as each finishes, a stop instead of a hang when Dask has paused
every worker that could run them, a task's error raised at once naming its block, and a scatter in bounded time."""

from __future__ import annotations

import queue
import time
from concurrent.futures import CancelledError
from typing import Any

import numpy as np

from recsys_dist import progress
from recsys_dist.errors import FitError, RecsysError
from recsys_dist.executors.dask_cluster import paused_workers


class Waiting:
    """Waits for ``client``'s futures; ``bounds`` (side -> each block's (lo, hi) rows) names a failed block's
    rows; ``pause_timeout`` is how long nothing may finish while a worker is paused (engine.pause_timeout)."""

    def __init__(self, client: Any, pause_timeout: float, bounds: dict[str, list[tuple[int, int]]]) -> None:
        self.client, self.pause_timeout, self.bounds = client, pause_timeout, bounds

    def check(self, futures: dict[int, Any], side: str, what: str) -> None:
        """Wait for ``futures`` (block -> future); a task that raised (or was cancelled) stops the step at once.
        Lost workers are not errors here: Dask reruns their tasks and rebuilds their inputs from lineage."""
        try:
            self.wait(list(futures.values()), f"the {what}")
            for b, future in futures.items():
                if future.status == "error":
                    raise self.task_error(future.exception(), side, b, what)
                if future.status == "cancelled":
                    raise FitError(f"the {what}: {side} block {b} was cancelled (its inputs were lost); run again")
        except BaseException:
            self.client.cancel(list(futures.values()))
            raise

    def collect(self, futures: dict[int, Any], results: list[Any], side: str, what: str) -> list[int]:
        """Wait for ``futures`` (block -> future), store each result in ``results``; return the blocks whose
        futures were cancelled (their inputs were lost). A task that raised stops the step at once."""
        try:
            self.wait(list(futures.values()), f"the {what}")
        except BaseException:
            self.client.cancel(list(futures.values()))
            raise
        lost = []
        for b, future in futures.items():
            if future.status == "error":
                error = self.task_error(future.exception(), side, b, what)
                self.client.cancel(list(futures.values()))
                raise error
            try:
                results[b] = future.result()
            except CancelledError:
                lost.append(b)
        return lost

    def task_error(self, exc: BaseException, side: str, block: int, what: str) -> Exception:
        from distributed import KilledWorker

        lo, hi = self.bounds[side][block]
        where = f"the {what}: {side} block {block} (rows {lo}-{hi - 1})"
        if isinstance(exc, KilledWorker):
            return FitError(f"{where}: every worker that ran it died ({exc}); a task that kills its worker is "
                            "usually out of memory: give workers more memory or raise engine.user_blocks / "
                            "engine.item_blocks")
        if isinstance(exc, RecsysError):  # already says what to do
            return type(exc)(f"{where}: {exc}")
        return FitError(f"{where} raised {type(exc).__name__}: {exc} (not retried: the same inputs raise again)")

    def gather(self, futures: list, what: str) -> list[Any]:
        """The futures' results in order (see ``wait``)."""
        self.wait(futures, what)
        return self.client.gather(futures)

    def wait(self, futures: list, what: str) -> None:
        """Wait until every future is done (finished, erred or cancelled), advancing the progress bar as each
        finishes. Stops (FitError) when nothing finishes for ``pause_timeout`` seconds while Dask has paused a
        worker for memory: a paused worker starts no task, so the job would otherwise wait forever."""
        finished: queue.SimpleQueue = queue.SimpleQueue()
        for future in futures:
            future.add_done_callback(finished.put)  # called once each, on success, error or cancellation
        done, last_finish = 0, time.monotonic()
        while done < len(futures):
            try:
                future = finished.get(timeout=2.0)
            except queue.Empty:
                if time.monotonic() - last_finish > self.pause_timeout:
                    self.stop_if_paused(what)
                continue
            done, last_finish = done + 1, time.monotonic()
            if future.status == "finished":
                progress.advance()
            elif future.status == "error":
                return  # the caller fails the step: no need to wait for the rest

    def stop_if_paused(self, what: str) -> None:
        paused = paused_workers(self.client)
        if paused:  # else long tasks, not a stall
            raise FitError(f"{what}: waited over {self.pause_timeout:g} s (engine.pause_timeout) and {paused}")

    def scatter(self, matrix: np.ndarray, n_workers: int, what: str):  # noqa: ANN202 - a distributed.Future
        """Scatter ``matrix`` once, in bounded time; each worker fetches it from a peer the first time one
        of its tasks needs it. (``broadcast=True`` pushed it to every worker up front, a little faster, but
        a push that raced a dying worker could stall forever.) A stuck scatter raises TimeoutError and
        the caller retries on the survivors."""
        import concurrent.futures

        limit = 30 + matrix.nbytes * n_workers / 50e6  # generous for a 50 MB/s link
        pool = concurrent.futures.ThreadPoolExecutor(1)
        started = time.monotonic()
        try:
            call = pool.submit(self.client.scatter, matrix, hash=False)
            while True:
                try:
                    return call.result(timeout=2.0)
                except concurrent.futures.TimeoutError:
                    waited = time.monotonic() - started
                    if waited > self.pause_timeout:  # a scatter waits for a running worker
                        self.stop_if_paused(f"the broadcast for the {what}")
                    if waited > limit:
                        raise TimeoutError(f"broadcast of a {matrix.nbytes / 1e6:.0f} MB matrix took over "
                                           f"{limit:.0f} s") from None
        finally:
            pool.shutdown(wait=False)
