"""Start a real Dask cluster as separate `dask scheduler` / `dask worker` processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

ROOT = Path(__file__).resolve().parents[1]
DASK = str(Path(sys.executable).with_name("dask"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Handles on the processes of a running test cluster."""

    def __init__(self, address: str, scheduler: subprocess.Popen, env: dict[str, str],
                 security: object | None) -> None:
        self.address, self.scheduler, self.env, self.security = address, scheduler, env, security
        self.workers: list[subprocess.Popen] = []

    def add_worker(self, command: Sequence[str] = (DASK, "worker"), extra: Sequence[str] = (),
                   env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.Popen:
        """Start one worker process: `dask worker` unless ``command`` says otherwise."""
        proc = subprocess.Popen([*command, self.address, "--nthreads", "1", "--host", "127.0.0.1",
                                 "--no-dashboard", "--no-nanny", *extra], env={**self.env, **(env or {})},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, n: int, timeout: float = 60) -> None:
        from distributed import Client

        deadline = time.monotonic() + timeout
        while True:
            try:
                with Client(self.address, timeout=5, security=self.security) as client:
                    client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


@contextlib.contextmanager
def cluster_processes(scheduler_args: Sequence[str] = (), scheme: str = "tcp", security: object | None = None,
                      env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """A scheduler on a free loopback port and no workers yet; every process is killed on the way out."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--protocol", scheme,
                                  "--dashboard-address", "127.0.0.1:0", *scheduler_args], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cluster = Cluster(f"{scheme}://127.0.0.1:{port}", scheduler, env, security)
    try:
        yield cluster
    finally:
        for p in [scheduler, *cluster.workers]:
            p.kill()
        for p in [scheduler, *cluster.workers]:
            p.wait(timeout=30)


@contextlib.contextmanager
def real_cluster(n_workers: int = 2, timeout: float = 60) -> Iterator[str]:
    """Yield the address of a scheduler with ``n_workers`` plain workers."""
    with cluster_processes() as cluster:
        for _ in range(n_workers):
            cluster.add_worker()
        cluster.wait_for_workers(n_workers, timeout)
        yield cluster.address
