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

    # Dask runs one task per worker thread; with threads = 0 each task's kernel takes its share of the host's cores.
    return DaskExecutor(scheduler=cfg.scheduler, workers=cfg.workers, threads=cfg.threads,
                        connect_timeout=cfg.connect_timeout, retries=cfg.retries, upload=cfg.upload,
                        pause_timeout=cfg.pause_timeout, routing_mode=cfg.routing,
                        tls=(cfg.tls_ca, cfg.tls_cert, cfg.tls_key) if cfg.tls_ca else None)
