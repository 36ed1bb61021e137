"""Shared fixtures: the real ml-100k archive, tiny raw files, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
# beside the checkout by default; RECSYS_ML100K_ZIP points elsewhere (a clone in another directory)
ML100K_ZIP = Path(os.environ.get("RECSYS_ML100K_ZIP") or ROOT.parent / "shared" / "data" / "ml-100k.zip")


@pytest.fixture(scope="session")
def ml100k_zip() -> Path:
    if not ML100K_ZIP.exists():
        pytest.skip(f"real MovieLens archive not found at {ML100K_ZIP}")
    return ML100K_ZIP


@pytest.fixture(scope="session")
def ml100k_dataset(tmp_path_factory, ml100k_zip) -> Path:
    from recsys_dist.config import IngestConfig
    from recsys_dist.data.ingest import ingest

    out = tmp_path_factory.mktemp("ml100k") / "dataset"
    ingest(IngestConfig(source=str(ml100k_zip), out=str(out)))
    return out


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m recsys_dist ARGS`` in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "recsys_dist", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def spark_example():
    """The 7 x 8 worked example of blocking.py: users {0, 3, 6} x items {1, 4, 7}."""
    users, items = np.meshgrid([0, 3, 6], [1, 4, 7], indexing="ij")
    ratings = (1 + users + items).astype(np.float32) % 5 + 1
    return users.ravel(), items.ravel(), ratings.ravel()


@pytest.fixture(scope="session")
def small_split(tmp_path_factory) -> Path:
    """A small synthetic dataset (planted rank 4) split 80/20: SPLITDIR with train/ and test/."""
    from recsys_dist.config import SplitConfig, SynthConfig
    from recsys_dist.data.split import split
    from recsys_dist.data.synth_output import synth

    root = tmp_path_factory.mktemp("small")
    synth(SynthConfig(shape="custom", n_users=300, n_items=200, n_ratings=9000, rank=4, noise=0.3,
                      out=str(root / "ds"), partitions=3))
    split(SplitConfig(data=str(root / "ds"), out=str(root / "split"), test_fraction=0.2, seed=1))
    return root / "split"
