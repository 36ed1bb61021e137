"""make_executor: the single place that turns an engine configuration into an executor."""

from __future__ import annotations

import os

from recsys_dist.config import EngineConfig
from recsys_dist.executors.base import Executor


def make_executor(cfg: EngineConfig) -> Executor:
    cores = os.cpu_count() or 1
    if cfg.name == "inprocess":
        from recsys_dist.executors.inprocess import InProcessExecutor

        return InProcessExecutor(threads=cfg.threads)
    if cfg.name == "shm":
        from recsys_dist.executors.shared_memory import SharedMemoryExecutor

        return SharedMemoryExecutor(workers=cfg.workers, threads=cfg.threads or max(1, cores // cfg.workers))
    from recsys_dist.executors.dask import DaskExecutor

    # Dask runs one task per worker thread; each task's kernel uses one thread unless told otherwise.
    return DaskExecutor(scheduler=cfg.scheduler, workers=cfg.workers, threads=cfg.threads or 1,
                        connect_timeout=cfg.connect_timeout)
