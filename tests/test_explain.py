"""Explanations through the model: each rated item's share of the score, by hand and on real ml-100k."""

import logging
import tomllib

import numpy as np
import pandas as pd
import pytest

from recsys_dist.checkpoint import load_model, save_model
from recsys_dist.config import EngineConfig, FilterConfig, ModelConfig, RecommendConfig, SplitConfig, TrainConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.explain import contributions, strongest
from recsys_dist.train import fit
from recsys_dist.user_jobs import run_recommend
from tests.conftest import ROOT, run_cli

SETTINGS = {"reg": 0.1, "bias_reg": 0.1, "reg_mode": "weighted"}


def test_explain_splits_a_hand_solved_score():
    # rank 1, mu 3, zero item biases: items A = +1, B = -1, C = +1, D = -1; the user rated A 5 and B 1.
    # System [[q.q + 0.2, q.1], [1.q, 2 + 0.2]] = diag(2.2, 2.2), rhs [2 + 2, 2 - 2]: p_u = 4/2.2, b_u = 0,
    # so C gets 1/2.2 * 1 * 2 from A (liked, C is near it) and 1/2.2 * -1 * -2 from B (disliked, C is far from it).
    items = np.array([[1, 0], [-1, 0], [1, 0], [-1, 0]], np.float32)
    rated, ratings = np.array([0, 1]), np.array([5.0, 1.0])
    contrib, toward = contributions("als", items, items[[2, 3], :1], rated, ratings, 3.0, SETTINGS)
    np.testing.assert_allclose(contrib, [[2 / 2.2, 2 / 2.2], [-2 / 2.2, -2 / 2.2]])
    assert toward.tolist() == [True, False]
    found, weights = strongest(contrib, rated, 3)
    assert found[0].tolist() == [0, 1, -1] and np.isnan(weights[0, 2])
    assert found[1].tolist() == [-1, -1, -1]  # nothing pulls D up: no reason rather than a negative one


def test_explain_kinds_without_a_user_solve():
    items = np.array([[1, 0, 0.5], [0.8, 0.6, 0], [0, 1, 0]], np.float32)
    sim, toward = contributions("bpr", items, items[[0], :2], np.array([1, 2]), np.array([5.0, 2.0]), 0.0,
                                {"threshold": 4.0})
    np.testing.assert_allclose(sim, [[0.8, 0.0]])  # q_i . q_j over the positives only (rating >= threshold)
    assert toward.tolist() == [True, False]
    for kind in ("popular", "bias", "mean"):
        assert contributions(kind, items, items[[0], :2], np.array([1]), np.array([5.0]), 0.0, {}) is None


@pytest.fixture(scope="module")
def ml100k_models(ml100k_dataset, ml100k_zip, tmp_path_factory):
    """conf/ml-100k.toml's explicit model and conf/ml-100k-ranking.toml's implicit model, trained on fold u1."""
    from recsys_dist.data.split import split

    root = tmp_path_factory.mktemp("explain")
    split(SplitConfig(data=str(ml100k_dataset), out=str(root / "u1"), method="folds", fold="u1",
                      archive=str(ml100k_zip)))
    models = {}
    logging.disable(logging.INFO)
    try:
        for name, conf in (("als", "ml-100k.toml"), ("implicit_als", "ml-100k-ranking.toml")):
            cfg = ModelConfig(**tomllib.loads((ROOT / "conf" / conf).read_text())["model"])
            save_model(fit(TrainConfig(train=str(root / "u1" / "train")), cfg, EngineConfig()).model,
                       str(root / name))
            models[name] = str(root / name)
    finally:
        logging.disable(logging.NOTSET)
    return root, models


@pytest.mark.realdata
@pytest.mark.parametrize("kind", ["als", "implicit_als"])
def test_explain_contributions_sum_to_the_score_minus_the_biases_on_ml100k(ml100k_models, kind, tmp_path):
    root, models = ml100k_models
    model = load_model(models[kind])
    train = Dataset.open(root / "u1" / "train").read_all()
    query = model.ranking_item_matrix()[:, :-1].astype(np.float64)  # every item, as recommend scores them
    for user in range(0, 943, 37):
        mine = train.user_idx == user
        rated, ratings = train.item_idx[mine].astype(np.int64), train.rating[mine].astype(np.float64)
        # the user's row by the model's own solve (fold-in: the kernels, float32 rows), independent of explain
        folded = model.fold_in(model.user_ids_[np.full(len(rated), user)], model.item_ids_[rated], ratings)
        row = folded.user_matrix_[folded.user_index(model.user_ids_[[user]])[0], :-1].astype(np.float64)
        contrib, _ = contributions(model.kind, model.item_matrix_, query, rated, ratings, model.mu_,
                                   model.config["model"])
        np.testing.assert_allclose(contrib.sum(axis=1), query @ row, rtol=0, atol=1e-6)
    # the recommend job on a user folded in from their training ratings: nothing left unexplained
    user = model.user_ids_[99]
    mine = train.user_idx == 99
    pd.DataFrame({"user_id": user, "item_id": model.item_ids_[train.item_idx[mine]],
                  "rating": train.rating[mine]}).to_csv(tmp_path / "mine.csv", index=False)
    got = run_recommend(RecommendConfig(model=models[kind], user=str(user), k=10, fold_in=str(tmp_path / "mine.csv")))
    assert len(got["items"]) == 10 and all(abs(i["rest"]) <= 1e-6 for i in got["items"])
    assert all(b["weight"] > 0 for i in got["items"] for b in i["because"])


@pytest.mark.realdata
def test_explain_reasons_of_ml100k_users_1_to_199(ml100k_models):
    """Explicit model: a rating below what the biases predict is never a "because you rated" (toward)
    reason; implicit model (threshold 3): a 1-2 star rating is no interaction and never a reason."""
    _, models = ml100k_models
    counts = {}
    for kind, path in models.items():
        low = toward = toward_low = total = 0
        for user in range(1, 200):
            for item in run_recommend(RecommendConfig(model=path, user=str(user), k=10, explain=3))["items"]:
                total += len(item["because"])
                low += sum(b["rating"] <= 2 for b in item["because"])
                toward += sum(b["toward"] for b in item["because"])
                toward_low += sum(b["toward"] and b["rating"] <= 2 for b in item["because"])
                assert all(b["weight"] > 0 for b in item["because"])
        counts[kind] = (low, toward_low, toward, total)
        print(f"{kind}: {low} of {total} reasons are 1-2 star items; {toward_low} of the {toward} "
              "'because you rated' (toward) ones")
    assert counts["implicit_als"][0] == 0
    low, toward_low, toward, total = counts["als"]
    assert toward_low <= 0.002 * toward and total > 5000


def test_explain_job_says_when_no_rated_item_pulls_toward_a_recommendation(small_split, tmp_path):
    model = fit(TrainConfig(train=str(small_split / "train")), ModelConfig(rank=4, n_iter=4), EngineConfig()).model
    save_model(model, str(tmp_path / "m"))
    liked = int(np.argmax(model.item_counts_))
    (tmp_path / "new.csv").write_text(f"user_id,item_id,rating\n5555,{model.item_ids_[liked]},5\n")
    folded = model.fold_in(np.array([5555]), model.item_ids_[[liked]], np.array([5.0]))
    contrib, toward = contributions("als", folded.item_matrix_, folded.ranking_item_matrix()[:, :-1],
                                    np.array([liked]), np.array([5.0]), folded.mu_, folded.config["model"])
    far, near = int(np.argmin(contrib[:, 0])), int(np.argsort(contrib[:, 0])[-2])  # [-1] is the rated item
    assert toward[0] and contrib[far, 0] < 0 < contrib[near, 0]
    for item, line in ((far, "no rated item pulls toward this"), (near, "because you rated")):
        (tmp_path / "allow.txt").write_text(f"{model.item_ids_[item]}\n")
        proc = run_cli("recommend", "--model", str(tmp_path / "m"), "--user", "5555", "--k", "1", "--fold-in",
                       str(tmp_path / "new.csv"), "--allow", str(tmp_path / "allow.txt"))
        assert proc.returncode == 0, proc.stderr
        assert line in proc.stdout, proc.stdout
    popular = fit(TrainConfig(train=str(small_split / "train")), ModelConfig(kind="popular"), EngineConfig()).model
    save_model(popular, str(tmp_path / "p"))
    r = run_recommend(RecommendConfig(model=str(tmp_path / "p"), user=str(model.user_ids_[0]), k=3), FilterConfig())
    assert r["explanation"] is None and all(not i["because"] and i["rest"] is None for i in r["items"])
