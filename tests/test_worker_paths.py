"""Paths on a real cluster: the job resolves local paths against its own directory before handing them to
workers that run elsewhere, and stops before any work when the workers cannot see the data."""

import os
import subprocess
import sys

import pytest

from tests.cluster import cluster_processes
from tests.conftest import ROOT


def test_paths_relative_flags_become_absolute_and_names_stay_names(tmp_path, monkeypatch):
    from recsys_dist.cli import build_parser, load_config

    monkeypatch.chdir(tmp_path)

    def config(*argv):
        return load_config(build_parser().parse_args(list(argv)), argv[0])

    train = config("train", "--train", "split/train", "--test", "./split/test", "--out", "s3://bucket/model",
                   "--set", "engine.upload=dist/w.whl").train
    assert (train.train, train.test, train.out) == (str(tmp_path / "split/train"), str(tmp_path / "split/test"),
                                                     "s3://bucket/model")
    assert config("train", "--set", "engine.upload=dist/w.whl").engine.upload == str(tmp_path / "dist/w.whl")
    assert config("ingest", "--source", "ml-100k", "--out", "ds").ingest.source == "ml-100k"  # a shorthand
    assert config("ingest", "--source", "raw/u.data", "--out", "ds").ingest.out == str(tmp_path / "ds")
    assert config("ingest", "--source", "raw/u.data").ingest.source == str(tmp_path / "raw/u.data")
    assert config("run").run.source == "synth" and config("run").run.out == str(tmp_path / "runs/quickstart")
    score = config("score", "--model", "m", "--out", "memory://scores", "--users", "~/users.txt").score
    assert (score.model, score.out, score.users) == (str(tmp_path / "m"), "memory://scores",
                                                     os.path.expanduser("~/users.txt"))


@pytest.mark.dask
def test_paths_relative_train_path_works_with_workers_in_another_directory(small_split, tmp_path):
    elsewhere = tmp_path / "worker-home"
    elsewhere.mkdir()
    with cluster_processes() as cluster:
        for _ in range(2):
            cluster.add_worker(cwd=elsewhere)  # where "split/train" means nothing
        cluster.wait_for_workers(2)
        proc = subprocess.run([sys.executable, str(ROOT / "jobs" / "train.py"), "--train", "split/train",
                               "--out", "model", "--scheduler", cluster.address, "--iterations", "2"],
                              capture_output=True, text=True, timeout=180, cwd=small_split.parent)
        assert proc.returncode == 0, proc.stderr
    assert (small_split.parent / "model" / "model.json").exists()


@pytest.mark.dask
def test_paths_workers_that_cannot_see_the_data_stop_the_job_before_any_work(small_split):
    from recsys_dist.config import EngineConfig, ModelConfig, TrainConfig
    from recsys_dist.data.dataset import copy_dataset
    from recsys_dist.errors import DataError
    from recsys_dist.train import fit

    # memory:// lives in this process only: the job sees the dataset, no worker does
    url = copy_dataset(str(small_split / "train"), "memory://h12-paths/train")
    with cluster_processes() as cluster:
        cluster.add_worker()
        cluster.wait_for_workers(1)
        with pytest.raises(DataError) as caught:
            fit(TrainConfig(train=url), ModelConfig(rank=4, n_iter=1),
                EngineConfig(name="dask", scheduler=cluster.address))
    message = str(caught.value)
    assert message.startswith(f"{url}: 1 of 1 Dask workers cannot see this dataset (no manifest.json there for "
                              "tcp://127.0.0.1:"), message
    assert "shared filesystem" in message and "object-store URL" in message


@pytest.mark.dask
def test_paths_relative_path_from_python_on_a_cluster_says_to_give_an_absolute_one(small_split, monkeypatch):
    from recsys_dist.config import EngineConfig, ModelConfig, TrainConfig
    from recsys_dist.errors import DataError
    from recsys_dist.train import fit

    monkeypatch.chdir(small_split.parent)  # the library does not resolve paths: only the CLI does
    with cluster_processes() as cluster:
        cluster.add_worker(cwd=small_split.parent.parent)
        cluster.wait_for_workers(1)
        with pytest.raises(DataError, match=r"^split/train: 1 of 1 Dask workers cannot see this dataset .*"
                                            r"a relative path means each worker's own directory: give an absolute"):
            fit(TrainConfig(train="split/train"), ModelConfig(rank=4, n_iter=1),
                EngineConfig(name="dask", scheduler=cluster.address))
