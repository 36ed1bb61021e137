"""Batch scoring: complete, equal to the model API, and published atomically."""

import uuid

import numpy as np
import pandas as pd
import pytest

from recsys_dist.batch import run_scoring
from recsys_dist.checkpoint import load_model
from recsys_dist.config import EngineConfig, ModelConfig, ScoreConfig, TrainConfig
from recsys_dist.data import recommendations
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.recommendations import read_recommendations
from recsys_dist.errors import DataError
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def model_dir(small_split, tmp_path_factory):
    from recsys_dist.checkpoint import save_model
    from recsys_dist.train import fit

    out = tmp_path_factory.mktemp("model") / "m"
    result = fit(TrainConfig(train=str(small_split / "train")), ModelConfig(rank=6, n_iter=3), EngineConfig())
    save_model(result.model, str(out))
    return out


def test_score_writes_every_users_top_k_equal_to_the_model_api(model_dir, small_split, tmp_path):
    out = tmp_path / "recs"
    proc = run_cli("score", "--model", str(model_dir), "--out", str(out), "--k", "7", "--set", "score.block_users=70")
    assert proc.returncode == 0, proc.stderr
    recs = read_recommendations(str(out))
    model = load_model(str(model_dir))
    assert len(recs) == 7 * len(model.user_ids_) and set(recs.columns) == {"user_id", "rank", "item_id", "score", "title"}
    assert len(list(out.glob("run-*/user_block=*/part-0.parquet"))) == -(-len(model.user_ids_) // 70)
    train = Dataset.open(small_split / "train").read_all()
    for user in model.user_ids_[[0, 57, 299]]:
        seen = model.item_ids_[train.item_idx[train.user_idx == model.user_index(np.array([user]))[0]]]
        want, scores = model.recommend([user], k=7, exclude=[seen])
        got = recs[recs.user_id == user].sort_values("rank")
        assert got.item_id.tolist() == want[0].tolist() and got["rank"].tolist() == list(range(1, 8))
        np.testing.assert_allclose(got.score, scores[0], rtol=1e-6)
        assert not set(got.item_id) & set(seen.tolist())
    assert recs.title.str.startswith("Synthetic Movie").all()


def test_score_failed_run_leaves_the_previous_output(model_dir, tmp_path, monkeypatch):
    out = str(tmp_path / "recs")
    run_scoring(ScoreConfig(model=str(model_dir), out=out, k=3, block_users=100))
    before = read_recommendations(out)
    marker_before = (tmp_path / "recs" / "_SUCCESS").read_text()
    original = recommendations.RecommendationWriter.write_block
    calls = []

    def failing(self, block, frame):
        calls.append(block)
        if len(calls) == 2:
            raise OSError("disk full")
        original(self, block, frame)

    monkeypatch.setattr(recommendations.RecommendationWriter, "write_block", failing)
    with pytest.raises(OSError, match="disk full"):
        run_scoring(ScoreConfig(model=str(model_dir), out=out, k=5, block_users=100))
    assert (tmp_path / "recs" / "_SUCCESS").read_text() == marker_before
    pd.testing.assert_frame_equal(read_recommendations(out), before)
    assert len(list((tmp_path / "recs").glob("run-*"))) == 1  # the failed run removed its parts


def test_score_killed_run_leftovers_are_ignored_then_cleaned(model_dir, tmp_path):
    out = tmp_path / "recs"
    run_scoring(ScoreConfig(model=str(model_dir), out=str(out), k=2))
    (out / "run-killed" / "user_block=00000").mkdir(parents=True)  # what a SIGKILLed run leaves
    (out / "run-killed" / "user_block=00000" / "part-0.parquet").write_bytes(b"half a file")
    assert len(read_recommendations(str(out))) == 2 * 300
    run_scoring(ScoreConfig(model=str(model_dir), out=str(out), k=4))
    assert not (out / "run-killed").exists() and len(read_recommendations(str(out))) == 4 * 300


def test_score_to_memory_url_and_a_listed_subset_of_users(model_dir, tmp_path):
    (tmp_path / "users.csv").write_text("user_id\n1\n5\n99999\n")
    url = f"memory://recs/{uuid.uuid4().hex}"
    marker = run_scoring(ScoreConfig(model=str(model_dir), out=url, k=3, users=str(tmp_path / "users.csv")))
    recs = read_recommendations(url)
    assert sorted(set(recs.user_id)) == [1, 5, 99999] and marker["unknown_users"] == 1
    with pytest.raises(DataError, match="no _SUCCESS"):
        read_recommendations(f"memory://recs/{uuid.uuid4().hex}")
