"""Every output works on any fsspec URL: the whole chain (ingest, split, train, evaluate, score) on
memory:// and file:// URLs, with nothing written to a local directory named after the URL."""

import json
import uuid

import fsspec
import pytest

from tests.conftest import run_cli


def _chain(base, zip_path, cwd):
    steps = [("ingest", "--source", str(zip_path), "--out", f"{base}/ds"),
             ("split", "--data", f"{base}/ds", "--method", "folds", "--fold", "u1", "--out", f"{base}/u1"),
             ("train", "--train", f"{base}/u1/train", "--test", f"{base}/u1/test", "--out", f"{base}/model",
              "--rank", "4", "--iterations", "2"),
             ("evaluate", "--model", f"{base}/model", "--data", f"{base}/u1/test", f"{base}/u1/cold",
              "--out", f"{base}/ev"),
             ("score", "--model", f"{base}/model", "--out", f"{base}/scores", "--k", "5")]
    for step in steps:
        proc = run_cli(*step, cwd=cwd)
        assert proc.returncode == 0, (step, proc.stderr)


@pytest.mark.realdata
def test_url_outputs_file_url_chain(tmp_path, ml100k_zip):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    _chain(f"file://{tmp_path}/out", ml100k_zip, cwd)
    assert not list(cwd.iterdir())  # nothing under a local "file:" directory
    assert json.loads((tmp_path / "out" / "u1" / "split.json").read_text())["counts"]["cold"] == 32
    metrics = json.loads((tmp_path / "out" / "model" / "metrics.json").read_text())
    assert "cold" in metrics  # found beside a file:// test URL
    assert json.loads((tmp_path / "out" / "ev" / "metrics.json").read_text())["n"] == 20_000
    assert (tmp_path / "out" / "scores" / "_SUCCESS").exists()


@pytest.mark.realdata
def test_url_outputs_memory_url_datasets_are_written_through_fsspec(tmp_path, ml100k_zip):
    """memory:// lives in one process, so this runs the jobs in-process (the CLI would start afresh)."""
    from recsys_dist.config import IngestConfig, SplitConfig
    from recsys_dist.data.dataset import Dataset
    from recsys_dist.data.ingest import ingest
    from recsys_dist.data.split import split

    base = f"memory://urls-{uuid.uuid4().hex[:8]}"
    ingest(IngestConfig(source=str(ml100k_zip), out=f"{base}/ds"))
    split(SplitConfig(data=f"{base}/ds", out=f"{base}/u1", method="folds", fold="u1"))
    fs = fsspec.filesystem("memory")
    assert fs.exists(f"{base}/u1/split.json") and Dataset.open(f"{base}/u1/train").n_ratings == 80_000
    Dataset.open(f"{base}/u1/cold").verify()
    split(SplitConfig(data=f"{base}/ds", out=f"{base}/u1", method="folds", fold="u2"))  # replaces its own output
    assert json.loads(fs.cat(f"{base}/u1/split.json"))["config"]["fold"] == "u2"
    fs.pipe(f"{base}/other/notes.txt", b"mine")
    with pytest.raises(Exception, match="refusing to replace"):
        split(SplitConfig(data=f"{base}/ds", out=f"{base}/other", method="folds", fold="u1"))
    assert fs.cat(f"{base}/other/notes.txt") == b"mine"
