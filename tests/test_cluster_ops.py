"""Cluster operations with real `dask scheduler` / `dask worker` processes on 127.0.0.1."""

import os
import re
import subprocess
import sys

import pytest

from tests.cluster import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.dask


def _train_job(small_split, *args, env=None, timeout=120):
    """`python jobs/train.py ...` as a user submits it, with a short connect timeout."""
    return subprocess.run([sys.executable, str(ROOT / "jobs" / "train.py"), "--train", str(small_split / "train"),
                           "--out", "unused", "--set", "engine.connect_timeout=1", *args],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_ops_scheduler_address_precedence_flag_then_environment_then_dask_config(small_split, tmp_path):
    flag, env, yaml = (f"tcp://127.0.0.1:{free_port()}" for _ in range(3))
    (tmp_path / "dask.yaml").write_text(f"scheduler-address: {yaml}\n")
    from_file = {"DASK_CONFIG": str(tmp_path)}
    # nobody listens on these ports, so each job names the address it chose and stops (exit 2)
    for args, extra, chosen in [((), from_file, yaml),
                                ((), {**from_file, "DASK_SCHEDULER_ADDRESS": env}, env),
                                (("--scheduler", flag), {**from_file, "DASK_SCHEDULER_ADDRESS": env}, flag)]:
        proc = _train_job(small_split, *args, env=extra)
        assert proc.returncode == 2 and f"cannot reach the Dask scheduler at {chosen}" in proc.stderr, proc.stderr
    # an engine named explicitly wins over an address in the environment
    proc = _train_job(small_split, "--engine", "inprocess", "--iterations", "1", "--out", str(tmp_path / "m"),
                      env={"DASK_SCHEDULER_ADDRESS": env})
    assert proc.returncode == 0, proc.stderr


def _bare_worker(cluster, tmp_path):
    """A worker whose Python has every dependency but not recsys_dist (no .pth files, no source tree)."""
    import site

    site_packages = site.getsitepackages()[0]
    return cluster.add_worker([sys.executable, "-S", "-m", "distributed.cli.dask_worker"],
                              env={"PYTHONPATH": site_packages}, cwd=tmp_path)


def test_ops_worker_without_the_package_is_named_then_fixed_by_uploading_a_wheel(small_split, tmp_path):
    from tests.cluster import cluster_processes

    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                            "-w", str(wheels), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next(wheels.glob("recsys_dist-*.whl"))
    with cluster_processes() as cluster:
        cluster.add_worker()
        _bare_worker(cluster, tmp_path)
        cluster.wait_for_workers(2)
        proc = _train_job(small_split, "--scheduler", cluster.address, "--iterations", "2")
        assert proc.returncode == 2, proc.stderr
        assert "1 of 2 Dask workers cannot run recsys_dist" in proc.stderr and "missing (ModuleNotFoundError" in proc.stderr
        assert "tcp://127.0.0.1:" in proc.stderr.split("cannot run")[1]  # the worker is named
        proc = _train_job(small_split, "--scheduler", cluster.address, "--iterations", "2", "--out", str(tmp_path / "m"),
                          "--set", f"engine.upload={wheel}")
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "m" / "model.json").exists()


def test_ops_worker_killed_mid_training_does_not_fail_the_job(small_split, tmp_path):
    import signal

    import numpy as np

    from recsys_dist.checkpoint import load_model
    from recsys_dist.config import EngineConfig, ModelConfig, TrainConfig
    from recsys_dist.train import fit
    from tests.cluster import cluster_processes

    settings = ["--set", "model.rank=8", "--set", "model.reg=0.05", "--set", "model.seed=3", "--iterations", "60"]
    with cluster_processes() as cluster:
        for _ in range(3):
            cluster.add_worker()
        cluster.wait_for_workers(3)
        job = subprocess.Popen([sys.executable, str(ROOT / "jobs" / "train.py"), "--train", str(small_split / "train"),
                                "--scheduler", cluster.address, "--out", str(tmp_path / "m"), *settings],
                               stderr=subprocess.PIPE, text=True)
        log = []
        for line in job.stderr:  # kill a worker once training is under way
            log.append(line)
            if line.startswith("iteration 5:"):
                os.kill(cluster.workers[0].pid, signal.SIGKILL)
                break
        _, rest = job.communicate(timeout=300)  # (stdout, stderr): the rest of the log
        assert job.returncode == 0, "".join(log) + (rest or "")
    undisturbed = fit(TrainConfig(train=str(small_split / "train")), ModelConfig(rank=8, reg=0.05, seed=3, n_iter=60),
                      EngineConfig(name="inprocess")).model
    model = load_model(str(tmp_path / "m"))
    np.testing.assert_allclose(model.user_matrix_, undisturbed.user_matrix_, atol=1e-4, rtol=0)
    np.testing.assert_allclose(model.item_matrix_, undisturbed.item_matrix_, atol=1e-4, rtol=0)


def test_ops_memory_limit_too_small_stops_with_what_is_needed(small_split, tmp_path):
    from tests.cluster import cluster_processes

    with cluster_processes() as cluster:
        for _ in range(2):
            cluster.add_worker(extra=("--nthreads", "1", "--memory-limit", "600MB"))
        cluster.wait_for_workers(2)
        # rank 150000 on 300 users x 200 items: the broadcast matrices alone are 300 MB a worker
        proc = _train_job(small_split, "--scheduler", cluster.address, "--iterations", "1",
                          "--set", "model.rank=150000", "--set", "model.solver=cg")
        assert proc.returncode == 1, proc.stderr
        assert "training needs about" in proc.stderr and "memory limit is 0.56 GiB" in proc.stderr
        assert "engine.user_blocks / engine.item_blocks (now 4 / 4)" in proc.stderr
        fits = _train_job(small_split, "--scheduler", cluster.address, "--iterations", "1", "--out", str(tmp_path / "m"))
        assert fits.returncode == 0, fits.stderr


def _pause_for_memory(dask_worker) -> None:  # noqa: ANN001
    """Run on a worker: drop Dask's pause threshold to 1 % of its limit, so its own memory monitor pauses it."""
    dask_worker.memory_manager.memory_pause_fraction = 0.01


def test_ops_worker_paused_for_memory_mid_training_stops_the_job_with_what_to_do(small_split, tmp_path):
    from distributed import Client

    from tests.cluster import cluster_processes

    with cluster_processes() as cluster:
        cluster.add_worker(extra=("--nthreads", "1", "--memory-limit", "1GB"))
        cluster.wait_for_workers(1)
        job = subprocess.Popen([sys.executable, str(ROOT / "jobs" / "train.py"), "--train", str(small_split / "train"),
                                "--scheduler", cluster.address, "--out", str(tmp_path / "m"), "--iterations", "100000",
                                "--set", "engine.pause_timeout=3"], stderr=subprocess.PIPE, text=True)
        try:
            log = []
            for line in job.stderr:
                log.append(line)
                if line.startswith("iteration 3:"):
                    break
            with Client(cluster.address, timeout=10) as client:
                client.run(_pause_for_memory)
            rest = job.communicate(timeout=120)[1]
        finally:
            job.kill()
    assert job.returncode == 1, "".join(log) + rest
    # stopped while waiting for blocks, for their stats, or for the scatter of the fixed matrix (which needs a
    # running worker): whichever the pause caught
    assert re.search(r"half-step(?:'s stats)?: waited over 3 s \(engine\.pause_timeout\) and Dask has paused 1 of 1 "
                     r"workers for memory", rest), rest
    assert "GiB of its 0.93 GiB limit" in rest and "engine.user_blocks / engine.item_blocks" in rest
    assert not (tmp_path / "m" / "model.json").exists()


def test_ops_job_killed_on_a_cluster_resumes_from_its_checkpoint(small_split, tmp_path):
    import json
    import signal

    import numpy as np

    from recsys_dist.checkpoint import load_model
    from recsys_dist.config import EngineConfig, ModelConfig, TrainConfig
    from recsys_dist.train import fit
    from tests.cluster import cluster_processes

    out = tmp_path / "m"
    settings = ["--set", "model.rank=8", "--set", "model.reg=0.05", "--set", "model.seed=3", "--iterations", "40",
                "--checkpoint-every", "1", "--out", str(out)]
    with cluster_processes() as cluster:
        for _ in range(2):
            cluster.add_worker()
        cluster.wait_for_workers(2)
        job = subprocess.Popen([sys.executable, str(ROOT / "jobs" / "train.py"), "--train", str(small_split / "train"),
                                "--scheduler", cluster.address, *settings], stderr=subprocess.PIPE, text=True)
        try:
            for line in job.stderr:  # the checkpoint of iteration 3 is written before iteration 4 is logged
                if line.startswith("iteration 4:"):
                    os.kill(job.pid, signal.SIGKILL)
                    break
        finally:
            job.kill()
            job.wait(timeout=30)
        assert job.returncode == -signal.SIGKILL and not (out / "model.json").exists()
        # the same cluster, a new job process: it continues from the newest checkpoint
        resumed = _train_job(small_split, "--scheduler", cluster.address, *settings, "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert "resuming after iteration" in resumed.stderr
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == list(range(1, 41)) and {r["engine"] for r in log} == {"dask"}
    undisturbed = fit(TrainConfig(train=str(small_split / "train")), ModelConfig(rank=8, reg=0.05, seed=3, n_iter=40),
                      EngineConfig(name="inprocess")).model
    model = load_model(str(out))
    np.testing.assert_allclose(model.user_matrix_, undisturbed.user_matrix_, atol=1e-4, rtol=0)
    np.testing.assert_allclose(model.item_matrix_, undisturbed.item_matrix_, atol=1e-4, rtol=0)
