"""Numba's threading layer on Dask workers with several task threads: thread-safe by construction, and
a worker that cannot be is named before any work (its kernels would abort the worker)."""

import subprocess
import sys

import pytest

from tests.cluster import cluster_processes
from tests.conftest import ROOT
from tests.executors.faults import parallel_kernels_task
from tests.executors.toy import toy_block

pytestmark = pytest.mark.dask

# Numba would try workqueue first: the layer that aborts on concurrent use
WORKQUEUE_FIRST = {"NUMBA_THREADING_LAYER_PRIORITY": "workqueue omp tbb"}


def _layers(address):
    import numba
    from distributed import Client

    with Client(address, timeout=10) as client:
        return set(client.run(numba.threading_layer).values())


def test_threading_layer_two_threads_run_parallel_kernels_at_once_without_aborting():
    from recsys_dist.executors.dask import DaskExecutor

    with cluster_processes() as cluster:
        worker = cluster.add_worker(extra=("--nthreads", "2"), env=WORKQUEUE_FIRST)
        cluster.wait_for_workers(1)
        with DaskExecutor(scheduler=cluster.address, threads=2) as ex:
            ex.load_blocks("user", toy_block, [(b, 2 * b, 2 * b + 2) for b in range(4)])
            results = ex.map_blocks("user", parallel_kernels_task, None, None, (200,))
        assert results == [6.5] * 4  # 0.5 + two biases of 1 + a dot product of 4
        assert worker.poll() is None  # the worker did not abort
        assert _layers(cluster.address) <= {"omp", "tbb"}


def test_threading_layer_forced_to_workqueue_names_the_worker_and_what_to_do(small_split):
    with cluster_processes() as cluster:
        cluster.add_worker(extra=("--nthreads", "1"), env={"NUMBA_THREADING_LAYER": "workqueue"})  # one slot: safe
        cluster.add_worker(extra=("--nthreads", "2"), env={"NUMBA_THREADING_LAYER": "workqueue"})
        cluster.wait_for_workers(2)
        proc = subprocess.run([sys.executable, str(ROOT / "jobs" / "train.py"), "--train", str(small_split / "train"),
                               "--out", "unused", "--scheduler", cluster.address, "--iterations", "1"],
                              capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr
    message = proc.stderr
    assert "1 of 2 Dask workers cannot run parallel kernels safely: tcp://127.0.0.1:" in message, message
    assert "its 2 task threads share Numba's workqueue threading layer" in message
    assert "apt-get install libgomp1" in message and "pip install tbb" in message and "--nthreads 1" in message
