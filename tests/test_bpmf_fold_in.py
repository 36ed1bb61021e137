"""bpmf fold-in without retraining: a folded-in copy of a trained user gets (nearly) the trained user's
posterior -- the same predictions and predictive spread -- on real ml-100k; fewer ratings mean a wider
predictive std; the draws are keyed, so a fold-in is reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_dist.config import EngineConfig, ModelConfig, TrainConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.train import fit


@pytest.fixture(scope="module")
def chain(ml100k_dataset):
    cfg = ModelConfig(kind="bpmf", rank=8, n_iter=50, burn_in=15, sample_noise=True, seed=5)
    return fit(TrainConfig(train=str(ml100k_dataset)), cfg, EngineConfig(name="inprocess")).model


def _ratings_of(ml100k_dataset, model, user_id):
    ds = Dataset.open(str(ml100k_dataset))
    r = ds.read_all()
    mine = ds.user_index().to_raw(r.user_idx) == user_id
    return ds.item_index().to_raw(r.item_idx[mine]), r.rating[mine].astype(np.float64)


@pytest.mark.parametrize("user_id", [13, 311])  # 636 and 294 training ratings
def test_bpmf_fold_in_of_a_trained_user_reproduces_its_posterior(chain, ml100k_dataset, user_id):
    items, ratings = _ratings_of(ml100k_dataset, chain, user_id)
    copy = 10_000_000 + user_id
    folded = chain.fold_in(np.full(len(items), copy), items, ratings)
    all_items = chain.item_ids_[chain.item_counts_ > 0]
    trained = chain.predict(np.full(len(all_items), user_id), all_items)
    again = folded.predict(np.full(len(all_items), copy), all_items)
    trained_std = chain.predict_std(np.full(len(all_items), user_id), all_items)
    again_std = folded.predict_std(np.full(len(all_items), copy), all_items)
    # the same posterior up to Monte Carlo error: far below the spread of the user's predictions
    assert np.corrcoef(trained, again)[0, 1] > 0.99
    assert np.mean(np.abs(trained - again)) < 0.1 * np.mean(trained_std)
    assert np.mean(again_std) == pytest.approx(np.mean(trained_std), rel=0.05)
    assert np.array_equal(folded.user_matrix_[folded.user_index(np.array([user_id]))], chain.user_matrix_[
        chain.user_index(np.array([user_id]))])  # other users untouched


def test_bpmf_fold_in_std_widens_with_fewer_ratings_and_is_reproducible(chain, ml100k_dataset):
    items, ratings = _ratings_of(ml100k_dataset, chain, 13)
    all_items = chain.item_ids_[chain.item_counts_ > 0]
    few = chain.fold_in(np.full(5, 777_777), items[:5], ratings[:5])
    many = chain.fold_in(np.full(len(items), 777_777), items, ratings)
    std_few = few.predict_std(np.full(len(all_items), 777_777), all_items)
    std_many = many.predict_std(np.full(len(all_items), 777_777), all_items)
    assert np.mean(std_few) > np.mean(std_many) + 0.02
    again = chain.fold_in(np.full(5, 777_777), items[:5], ratings[:5])
    np.testing.assert_array_equal(again.user_matrix_, few.user_matrix_)


def test_bpmf_fold_in_job_writes_a_model_that_scores_the_new_user_with_a_std(chain, ml100k_dataset, tmp_path):
    from recsys_dist.checkpoint import load_model, save_model
    from recsys_dist.data.recommendations import read_recommendations
    from tests.conftest import run_cli

    save_model(chain, str(tmp_path / "m"))
    items, ratings = _ratings_of(ml100k_dataset, chain, 13)
    (tmp_path / "new.csv").write_text("user_id,item_id,rating\n" + "".join(
        f"5000,{i},{int(r)}\n" for i, r in zip(items[:20], ratings[:20])))
    proc = run_cli("fold-in", "--model", str(tmp_path / "m"), "--ratings", str(tmp_path / "new.csv"), "--out",
                   str(tmp_path / "f"))
    assert proc.returncode == 0, proc.stderr
    folded = load_model(str(tmp_path / "f"))
    expected = chain.fold_in(np.full(20, 5000), items[:20], ratings[:20])
    np.testing.assert_array_equal(folded.user_matrix_, expected.user_matrix_)
    (tmp_path / "users.txt").write_text("5000\n")
    proc = run_cli("score", "--model", str(tmp_path / "f"), "--users", str(tmp_path / "users.txt"), "--k", "3",
                   "--out", str(tmp_path / "s"))
    assert proc.returncode == 0, proc.stderr
    recs = read_recommendations(str(tmp_path / "s"))
    assert recs.user_id.tolist() == [5000] * 3 and (recs["std"] > 0).all()
    assert not set(recs.item_id) & set(items[:20].tolist())  # its folded-in items are excluded
