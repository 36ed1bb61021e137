"""Bayesian MF by Gibbs sampling: recovers planted factors, one chain on every engine and block
count, resume continues the chain, and its predictive intervals cover the truth as often as they say."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from recsys_dist import BPMF
from recsys_dist.batch import run_evaluation
from recsys_dist.scoring import run_scoring
from recsys_dist.checkpoint import save_model
from recsys_dist.config import EngineConfig, EvaluateConfig, JobConfig, ModelConfig, ScoreConfig, TrainConfig
from recsys_dist.data.recommendations import read_recommendations
from recsys_dist.errors import ConfigError, DataError
from recsys_dist.train import fit

NOISE = 0.3
CHAIN = ModelConfig(kind="bpmf", rank=4, n_iter=6, burn_in=2, sample_noise=True, seed=3)


@pytest.fixture(scope="module")
def planted():
    """Unrounded ratings of a planted rank-3 model with biases plus N(0, NOISE^2), split 85/15 at random."""
    rng = np.random.default_rng(5)
    n_users, n_items, rank = 300, 200, 3
    p, q = rng.normal(0, 0.7, (n_users, rank)), rng.normal(0, 0.7, (n_items, rank))
    bu, bi = rng.normal(0, 0.3, n_users), rng.normal(0, 0.3, n_items)
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.3)
    truth = 3.0 + bu[users] + bi[items] + np.einsum("ij,ij->i", p[users], q[items])
    frame = pd.DataFrame({"user_id": users, "item_id": items, "rating": truth + rng.normal(0, NOISE, len(truth)),
                          "truth": truth})
    test = rng.random(len(frame)) < 0.15
    return frame[~test], frame[test]


@pytest.fixture(scope="module")
def fitted(planted):
    train, _ = planted
    return BPMF(rank=3, n_iter=60, burn_in=15, sample_noise=True, seed=1).fit(train[["user_id", "item_id", "rating"]])


def test_bpmf_recovers_planted_low_rank_ratings(planted, fitted):
    _, test = planted
    predicted = fitted.predict(test["user_id"], test["item_id"])
    assert np.sqrt(np.mean((predicted - test["truth"]) ** 2)) < 0.15  # close to the noiseless planted ratings
    assert np.sqrt(np.mean((predicted - test["rating"]) ** 2)) < 1.15 * NOISE  # held-out error near the noise
    assert fitted.history_[-1]["noise_precision"] == pytest.approx(1 / NOISE ** 2, rel=0.25)  # beta is learned


def test_bpmf_predictive_intervals_are_calibrated(planted, fitted):
    _, test = planted
    predicted = fitted.predict(test["user_id"], test["item_id"])
    std = fitted.predict_std(test["user_id"], test["item_id"])
    inside = np.abs(test["rating"].to_numpy() - predicted) / std
    assert 0.63 <= np.mean(inside <= 1.0) <= 0.74
    assert 0.92 <= np.mean(inside <= 1.96) <= 0.98
    assert std.min() > NOISE * 0.8  # never below the noise the sampler estimated


def test_bpmf_prediction_is_the_average_over_kept_samples(small_split):
    model = fit(TrainConfig(train=str(small_split / "train")), CHAIN, EngineConfig()).model
    post = model.posterior
    assert post["samples"] == CHAIN.n_iter - CHAIN.burn_in and post["rank"] == CHAIN.rank
    users, items = np.array([0, 5, 7, -1]), np.array([3, 3, -1, 2])
    from recsys_dist.models.bpmf import sample_predictions

    per_sample = sample_predictions(model.user_matrix_, model.item_matrix_, model.mu_, post["samples"], post["rank"],
                                    users, items)
    raw = dataclasses.replace(model, config={**model.config, "model": {**model.config["model"], "clip": False}})
    np.testing.assert_allclose(raw.predict_idx(users, items), per_sample.mean(axis=1), rtol=1e-5)
    assert (per_sample.std(axis=1)[:3] > 0).all()  # the samples differ: it is a chain, not a point estimate


@pytest.fixture(scope="module")
def reference_chain(small_split):
    return fit(TrainConfig(train=str(small_split / "train")), CHAIN, EngineConfig(name="inprocess")).model


@pytest.mark.parametrize("engine", [
    EngineConfig(name="inprocess", user_blocks=5, item_blocks=3),
    EngineConfig(name="shm", workers=2, user_blocks=3, item_blocks=4),
    pytest.param(EngineConfig(name="dask", workers=2, user_blocks=4, item_blocks=2), marks=pytest.mark.dask),
], ids=["inprocess-5x3", "shm-2", "dask-local-2"])
def test_bpmf_chain_is_identical_on_every_engine_and_block_count(small_split, reference_chain, engine):
    model = fit(TrainConfig(train=str(small_split / "train")), CHAIN, engine).model
    np.testing.assert_array_equal(model.user_matrix_, reference_chain.user_matrix_)
    np.testing.assert_array_equal(model.item_matrix_, reference_chain.item_matrix_)


def test_bpmf_resumed_chain_equals_the_uninterrupted_one(small_split, reference_chain, tmp_path):
    train = str(small_split / "train")
    out = str(tmp_path / "m")
    # stopped after sweep 4 (two samples kept), then resumed to sweep 6 from the checkpoint
    fit(TrainConfig(train=train, out=out, checkpoint_every=2), dataclasses.replace(CHAIN, n_iter=4), EngineConfig())
    resumed = fit(TrainConfig(train=train, out=out, checkpoint_every=2, resume=True), CHAIN, EngineConfig())
    assert [h["iteration"] for h in resumed.history] == list(range(1, 7))
    np.testing.assert_array_equal(resumed.model.user_matrix_, reference_chain.user_matrix_)
    np.testing.assert_array_equal(resumed.model.item_matrix_, reference_chain.item_matrix_)


def test_bpmf_evaluate_reports_calibration_and_score_writes_std(small_split, reference_chain, tmp_path):
    save_model(reference_chain, str(tmp_path / "m"))
    metrics = run_evaluation(EvaluateConfig(model=str(tmp_path / "m"), data=[str(small_split / "test")]))
    assert 0.5 < metrics["calibration"]["inside_68"] < metrics["calibration"]["inside_95"] <= 1.0
    run_scoring(ScoreConfig(model=str(tmp_path / "m"), out=str(tmp_path / "scores"), k=5))
    scores = read_recommendations(str(tmp_path / "scores"))
    assert len(scores) == 5 * len(reference_chain.user_ids_)
    assert (scores["std"] > 0).all() and np.isfinite(scores["std"]).all()
    # similar-items compares the sample factors only, never the bias-sample columns
    post = reference_chain.posterior
    assert reference_chain.similarity_matrix().shape[1] == post["samples"] * post["rank"] + 1


@pytest.mark.parametrize("model, key", [
    ({"kind": "bpmf", "n_iter": 10, "burn_in": 10}, "model.burn_in"),
    ({"kind": "bpmf", "burn_in": -1}, "model.burn_in"),
    ({"kind": "bpmf", "noise_precision": 0.0}, "model.noise_precision"),
    ({"kind": "bpmf", "burnin": 5}, "model.burnin"),
    ({"kind": "bpmf", "sample_noise": "maybe"}, "model.sample_noise"),
])
def test_bpmf_bad_config_names_the_key(model, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        JobConfig.from_mapping({"model": model})


def test_bpmf_als_has_no_predictive_std(small_split):
    als = fit(TrainConfig(train=str(small_split / "train")), ModelConfig(rank=2, n_iter=1), EngineConfig()).model
    with pytest.raises(DataError, match="no predictive distribution"):
        als.predict_std_idx(np.array([0]), np.array([0]))


def test_bpmf_keys_leave_other_kinds_checkpoints_resumable(small_split):
    from recsys_dist.data.dataset import Dataset
    from recsys_dist.train import fingerprint

    train = Dataset.open(str(small_split / "train"))
    als = ModelConfig(rank=4)
    assert fingerprint(train, als) == fingerprint(train, dataclasses.replace(als, burn_in=3, sample_noise=False))
    assert fingerprint(train, CHAIN) != fingerprint(train, dataclasses.replace(CHAIN, burn_in=1))
