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

    def add_worker(self, command: Sequence[str] = (DASK, "worker"), extra: Sequence[str] = ("--nthreads", "1"),
                   env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.Popen:
        """Start one worker process: `dask worker ADDRESS` unless ``command`` says otherwise."""
        proc = subprocess.Popen([*command, self.address, "--host", "127.0.0.1", "--no-dashboard", "--no-nanny", *extra],
                                env={**self.env, **(env or {})},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
        self.workers.append(proc)
        return proc

    def start(self, command: Sequence[str]) -> subprocess.Popen:
        """Start any process that belongs to the cluster (killed with it)."""
        proc = subprocess.Popen(list(command), env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=ROOT)
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
def cluster_processes(scheduler: Sequence[str] | None = None, port: int | None = None, scheme: str = "tcp",
                      security: object | None = None) -> Iterator[Cluster]:
    """A scheduler on a loopback port and no workers yet; every process is killed on the way out.
    ``scheduler`` is the full command (it must listen on 127.0.0.1:``port``); default: `dask scheduler`."""
    port = port or free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = scheduler or [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                            "--dashboard-address", "127.0.0.1:0"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    cluster = Cluster(f"{scheme}://127.0.0.1:{port}", proc, env, security)
    try:
        yield cluster
    finally:
        for p in [proc, *cluster.workers]:
            p.kill()
        for p in [proc, *cluster.workers]:
            p.wait(timeout=30)


@contextlib.contextmanager
def real_cluster(n_workers: int = 2, timeout: float = 60) -> Iterator[str]:
    """Yield the address of a scheduler with ``n_workers`` plain workers."""
    with cluster_processes() as cluster:
        for _ in range(n_workers):
            cluster.add_worker()
        cluster.wait_for_workers(n_workers, timeout)
        yield cluster.address
