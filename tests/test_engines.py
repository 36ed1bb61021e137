"""The same config and seed give the same model on every engine and worker count."""

import dataclasses

import numpy as np
import pytest

from recsys_dist.config import EngineConfig, ModelConfig, TrainConfig
from recsys_dist.train import fit
from tests.cluster import real_cluster

MODEL = ModelConfig(rank=8, reg=0.05, n_iter=5, seed=7)


@pytest.fixture(scope="module")
def reference(small_split):
    return fit(TrainConfig(train=str(small_split / "train")), MODEL, EngineConfig(name="inprocess")).model


def _assert_same(model, reference):
    np.testing.assert_allclose(model.user_matrix_, reference.user_matrix_, atol=1e-4, rtol=0)
    np.testing.assert_allclose(model.item_matrix_, reference.item_matrix_, atol=1e-4, rtol=0)


@pytest.mark.parametrize("engine", [
    EngineConfig(name="shm", workers=1),
    EngineConfig(name="shm", workers=2, user_blocks=5, item_blocks=3),
    pytest.param(EngineConfig(name="dask", workers=1), marks=pytest.mark.dask),
    pytest.param(EngineConfig(name="dask", workers=3, user_blocks=4, item_blocks=7), marks=pytest.mark.dask),
], ids=["shm-1", "shm-2", "dask-local-1", "dask-local-3"])
def test_engines_give_the_reference_model(small_split, reference, engine):
    _assert_same(fit(TrainConfig(train=str(small_split / "train")), MODEL, engine).model, reference)


@pytest.mark.parametrize("engine", [EngineConfig(name="shm", workers=2, user_blocks=3),
                                    pytest.param(EngineConfig(name="dask", workers=2), marks=pytest.mark.dask)],
                         ids=["shm", "dask"])
@pytest.mark.parametrize("rank, gather_dtype", [(8, "float32"), (20, "float16")])  # float16 rows from rank 16
def test_engines_agree_with_the_cg_solver(small_split, engine, rank, gather_dtype):
    cg = dataclasses.replace(MODEL, solver="cg", cg_steps=3, rank=rank, gather_dtype=gather_dtype)
    a = fit(TrainConfig(train=str(small_split / "train")), cg, EngineConfig(name="inprocess")).model
    _assert_same(fit(TrainConfig(train=str(small_split / "train")), cg, engine).model, a)


@pytest.mark.dask
def test_engines_real_cluster_of_separate_processes(small_split, reference, tmp_path):
    from recsys_dist.checkpoint import load_model
    from tests.conftest import ROOT

    with real_cluster(n_workers=2) as address:
        model = fit(TrainConfig(train=str(small_split / "train")), MODEL,
                    EngineConfig(name="dask", scheduler=address, user_blocks=3)).model
        _assert_same(model, reference)
        # the same through the job script a user submits
        import subprocess
        import sys

        proc = subprocess.run([sys.executable, str(ROOT / "jobs" / "train.py"), "--train", str(small_split / "train"),
                               "--engine", "dask", "--scheduler", address, "--out", str(tmp_path / "m"),
                               "--set", "model.rank=8", "--set", "model.reg=0.05", "--iterations", "5",
                               "--set", "model.seed=7"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    _assert_same(load_model(str(tmp_path / "m")), reference)
