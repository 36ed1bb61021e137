"""Where the search's trials run (``runner_for`` chooses from the engine and the data size):

- ``inprocess``: one trial at a time in this process, on the configured engine;
- ``shm``: ``parallel`` trials at once, each in its own process with an even share of the cores, pruning
  through the study's journal file;
- ``dask``: with at most ``TRIALS_ON_WORKERS_MAX`` training ratings, one whole trial per Dask worker thread,
  the study's storage on the scheduler so every trial prunes against all others; above that, trials one
  after another, each training on the cluster's block tasks.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from typing import Any, Callable, Iterator

from recsys_dist.config import EngineConfig
from recsys_dist.errors import FitError
from recsys_dist.tuning.trial import TrialOutcome, TrialSpec

TRIALS_ON_WORKERS_MAX = 5_000_000  # training ratings up to which a whole trial runs on one Dask worker


def runner_for(engine: EngineConfig, parallel: int, n_ratings: int) -> Any:  # noqa: ANN401
    if engine.name == "shm":
        return _Processes(parallel or engine.workers)
    if engine.name == "dask":
        return _Dask(engine, parallel, n_ratings)
    return _InProcess(engine)


class _InProcess:
    """Trials one at a time in this process, on the configured engine."""
    shares_study, by_journal, parallel = True, False, 1

    def __init__(self, engine: EngineConfig) -> None:
        self.trial_engine = engine
        self._done: list[TrialOutcome] = []

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def storage(self, journal: str) -> Any:  # noqa: ANN401
        return journal_storage(journal)

    def describe(self) -> str:
        return f"trials one at a time in this process ({self.trial_engine.name} engine)"

    def submit(self, fn: Callable[[TrialSpec], TrialOutcome], spec: TrialSpec) -> None:
        self._done.append(_guarded(fn, spec))

    def finished(self) -> Iterator[TrialOutcome]:
        done, self._done = self._done, []
        return iter(done)


class _Processes:
    """``parallel`` trials at once, each in its own process with an even share of the cores; they prune
    through the study's journal file."""
    shares_study, by_journal = False, True

    def __init__(self, parallel: int) -> None:
        self.parallel = parallel
        cores = os.cpu_count() or 1
        self.trial_engine = EngineConfig(name="inprocess", threads=max(1, cores // parallel))
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._running: set[concurrent.futures.Future] = set()

    def __enter__(self) -> _Processes:
        # spawn: a fork of a process with Numba's and Arrow's thread pools running is not safe
        self._pool = concurrent.futures.ProcessPoolExecutor(self.parallel, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._pool is not None
        self._pool.shutdown(wait=True, cancel_futures=True)

    def storage(self, journal: str) -> Any:  # noqa: ANN401
        return journal_storage(journal)

    def describe(self) -> str:
        return f"{self.parallel} trials at once in separate processes, {self.trial_engine.threads} kernel threads each"

    def submit(self, fn: Callable[[TrialSpec], TrialOutcome], spec: TrialSpec) -> None:
        assert self._pool is not None
        self._running.add(self._pool.submit(_guarded, fn, spec))

    def finished(self) -> Iterator[TrialOutcome]:
        done, self._running = concurrent.futures.wait(self._running, return_when=concurrent.futures.FIRST_COMPLETED)
        return (f.result() for f in done)


class _Dask:
    """Trials as Dask tasks (small data: a whole trial per worker thread) or one after another on the
    cluster's block tasks (large data)."""
    by_journal = False

    def __init__(self, engine: EngineConfig, parallel: int, n_ratings: int) -> None:
        self.engine, self.on_workers, self._parallel = engine, n_ratings <= TRIALS_ON_WORKERS_MAX, parallel
        self.shares_study = True
        self._executor: Any = None
        self._running: Any = None

    def __enter__(self) -> _Dask:
        from recsys_dist.executors import make_executor
        from recsys_dist.executors.dask_cluster import completion_queue

        self._executor = make_executor(self.engine).__enter__()  # connects, checks versions and threading layers
        client = self._executor.client
        slots = sum(w["nthreads"] for w in client.scheduler_info().get("workers", {}).values()) or 1
        self.parallel = (self._parallel or slots) if self.on_workers else 1
        self.trial_engine = EngineConfig(name="inprocess", threads=1) if self.on_workers else self.engine
        self._running = completion_queue() if self.on_workers else []
        return self

    def __exit__(self, *exc: object) -> None:
        self._executor.__exit__(*exc)

    def storage(self, journal: str) -> Any:  # noqa: ANN401
        if not self.on_workers:
            return journal_storage(journal)
        from optuna_integration import DaskStorage

        # the journal-backed storage lives on the scheduler: every trial task reports and prunes through it
        return DaskStorage(journal_storage(os.path.abspath(journal)), client=self._executor.client)

    def describe(self) -> str:
        if self.on_workers:
            return f"{self.parallel} trials at once on the Dask workers, one whole trial per worker thread"
        return "trials one after another, each training on the Dask cluster's block tasks (large data)"

    def submit(self, fn: Callable[[TrialSpec], TrialOutcome], spec: TrialSpec) -> None:
        if self.on_workers:
            self._running.add(self._executor.client.submit(_guarded, fn, spec, pure=False))
        else:
            self._running.append(_guarded(fn, spec))

    def finished(self) -> Iterator[TrialOutcome]:
        if self.on_workers:
            return iter([next(self._running).result()])
        done, self._running = self._running, []
        return iter(done)


def _guarded(fn: Callable[[TrialSpec], TrialOutcome], spec: TrialSpec) -> TrialOutcome:
    """A trial whose training diverged fails alone; bad data or configuration stops the search."""
    try:
        return fn(spec)
    except FitError as exc:
        return TrialOutcome(spec.number, float("nan"), False, [], str(exc))


def journal_storage(path: str) -> Any:  # noqa: ANN401
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(path))
