"""genre_als with user demographics: users nobody has heard from get the row their gender, age group and
occupation predict, and evaluate, score and recommend use it; on a real ml-100k cold-user split it beats
the bias-only model and the demographic-mean baseline on the cold users, and plain ALS is no better on
the warm ones."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recsys_dist.batch import run_evaluation
from recsys_dist.scoring import run_scoring
from recsys_dist.checkpoint import save_model
from recsys_dist.config import EngineConfig, EvaluateConfig, ModelConfig, RecommendConfig, ScoreConfig, SplitConfig, TrainConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.recommendations import read_recommendations
from recsys_dist.data.split import split
from recsys_dist.models.genre_als import demographic_features
from recsys_dist.evaluate import rmse
from recsys_dist.train import fit
from recsys_dist.user_jobs import run_recommend

BASE = ModelConfig(rank=32, reg=0.12, bias_reg=0.1, n_iter=12)


@pytest.fixture(scope="module")
def cold_users(ml100k_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("cold-users") / "s"
    split(SplitConfig(data=str(ml100k_dataset), out=str(out), method="cold-users", fraction=0.1, seed=1))
    return out


@pytest.fixture(scope="module")
def models(cold_users):
    train = TrainConfig(train=str(cold_users / "train"))
    return {kind: fit(train, dataclasses.replace(BASE, kind=kind), EngineConfig(name="inprocess"))
            for kind in ("genre_als", "als", "bias")}


def test_genre_als_users_each_step_lowers_the_objective_and_cold_users_get_their_demographics_row(models,
                                                                                                  cold_users):
    result = models["genre_als"]
    steps = [v for r in result.history for v in (r["objective_after_user"], r["objective_after_genres"],
                                                   r["objective_after_item"])]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(steps, steps[1:]))
    model = result.model
    train = Dataset.open(str(cold_users / "train"))
    f, names = demographic_features(train.read_users(), train.n_users)
    d = np.array([model.config["demographic_embedding"][n] for n in names])
    cold = model.user_counts_ == 0
    assert cold.sum() >= 94
    np.testing.assert_allclose(model.user_matrix_[cold], (f @ d)[cold], atol=1e-5)
    assert np.abs(model.user_matrix_[cold, :-1]).sum() > 0 and not model.is_cold(np.flatnonzero(cold)).any()
    assert model.is_cold(np.array([-1]))[0]  # an id the model never saw has no demographics: still cold


def test_genre_als_users_beat_the_bias_and_demographic_mean_baselines_on_real_ml100k(models, cold_users):
    cold, warm = (Dataset.open(str(cold_users / p)).read_all() for p in ("cold", "test"))
    score = {kind: {part: rmse(r.model.predict_idx(d.user_idx, d.item_idx), d.rating)
                    for part, d in (("cold", cold), ("warm", warm))} for kind, r in models.items()}
    # the demographic-mean baseline: a cold user's bias is the mean over their groups of the rated users' biases
    bias = models["bias"].model
    train = Dataset.open(str(cold_users / "train"))
    f, _ = demographic_features(train.read_users(), train.n_users)
    rated = bias.user_counts_ > 0
    groups = (f[rated] > 0).astype(float)
    group_bias = groups.T @ bias.user_matrix_[rated, -1] / np.maximum(groups.sum(0), 1e-9)
    predicted = np.clip(bias.mu_ + (f @ group_bias)[cold.user_idx] + bias.item_matrix_[cold.item_idx, -1], 1, 5)
    demographic_mean = rmse(predicted, cold.rating)
    assert score["genre_als"]["cold"] < min(score["bias"]["cold"], demographic_mean), (score, demographic_mean)
    assert score["genre_als"]["warm"] <= score["als"]["warm"] + 0.002, score
    # evaluate scores the cold part with the demographic rows, as predict does
    got = run_evaluation(EvaluateConfig(model=_saved(models["genre_als"].model, cold_users), data=[str(cold_users / "cold")]))
    assert got["rmse"] == pytest.approx(score["genre_als"]["cold"], abs=1e-6)


def _saved(model, root):
    path = root.parent / "model"
    if not (path / "model.json").exists():
        save_model(model, str(path))
    return str(path)


def test_genre_als_users_score_and_recommend_give_cold_users_their_own_list(models, cold_users):
    model = models["genre_als"].model
    path = _saved(model, cold_users)
    cold = np.flatnonzero(model.user_counts_ == 0)
    summary = run_scoring(ScoreConfig(model=path, out=str(cold_users.parent / "scores"), k=5))
    assert summary["cold_users"] == 0
    recs = read_recommendations(str(cold_users.parent / "scores"))
    lists = {u: recs[recs.user_id == model.user_ids_[u]].sort_values("rank").item_id.tolist() for u in cold[:20]}
    expected = model.recommend(model.user_ids_[cold[:20]], k=5)[0]
    assert [lists[u] for u in cold[:20]] == expected.tolist()
    assert len({tuple(v) for v in lists.values()}) > 1  # not one popularity list for all
    r = run_recommend(RecommendConfig(model=path, user=str(model.user_ids_[cold[0]]), k=5))
    assert r["rated"] == 0 and [i["item_id"] for i in r["items"]] == lists[cold[0]]


def test_genre_als_users_same_model_on_the_shm_engine(models, cold_users):
    engine = EngineConfig(name="shm", workers=2, user_blocks=3, item_blocks=2)
    model = fit(TrainConfig(train=str(cold_users / "train")), dataclasses.replace(BASE, kind="genre_als", n_iter=3),
                engine).model
    reference = fit(TrainConfig(train=str(cold_users / "train")), dataclasses.replace(BASE, kind="genre_als", n_iter=3),
                    EngineConfig(name="inprocess")).model
    np.testing.assert_allclose(model.user_matrix_, reference.user_matrix_, atol=1e-4)
    np.testing.assert_allclose(model.item_matrix_, reference.item_matrix_, atol=1e-4)
