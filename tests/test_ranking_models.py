"""Ranking models (implicit ALS, BPR, popular): planted structure, engines, fold-in, estimators, real data."""

import dataclasses
import logging

import numpy as np
import pandas as pd
import pytest

from recsys_dist.config import EngineConfig, EvaluateConfig, ModelConfig, TrainConfig
from recsys_dist.train import fit

IMPLICIT = ModelConfig(kind="implicit_als", rank=8, reg=0.05, n_iter=6, seed=3)
BPR_CFG = ModelConfig(kind="bpr", rank=8, reg=0.01, bias_reg=0.01, learning_rate=0.05, n_iter=4, strata=4, seed=3)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Two taste groups: users 0-39 interact only with items 0-29, users 40-79 only with items 30-59
    (12 random items each); a dataset built from a DataFrame, as the estimators do."""
    from recsys_dist.data.ingest import ingest_arrays

    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(80):
        group = u // 40
        chosen = rng.choice(30, 12, replace=False) + 30 * group
        users += [u] * 12
        items += chosen.tolist()
    frame = pd.DataFrame({"user_id": users, "item_id": items, "rating": 5.0})
    out = tmp_path_factory.mktemp("planted") / "ds"
    ingest_arrays(frame.user_id.to_numpy(), frame.item_id.to_numpy(), frame.rating.to_numpy(), None, str(out), "test")
    return out, frame


@pytest.mark.parametrize("cfg", [dataclasses.replace(IMPLICIT, n_iter=10), dataclasses.replace(BPR_CFG, n_iter=60)],
                         ids=["implicit_als", "bpr"])
def test_ranking_models_recover_planted_groups(planted, cfg):
    url, frame = planted
    model = fit(TrainConfig(train=str(url)), cfg, EngineConfig()).model
    seen = [frame.item_id[frame.user_id == u].to_numpy() for u in range(80)]
    recommended, _ = model.recommend(np.arange(80), 5, exclude=seen)
    same_group = (recommended // 30) == (np.arange(80) // 40)[:, None]
    assert same_group.mean() > 0.95, same_group.mean()


def test_ranking_models_popular_ranks_by_interactions(planted):
    url, frame = planted
    model = fit(TrainConfig(train=str(url)), ModelConfig(kind="popular", threshold=4.0), EngineConfig()).model
    counts = frame.item_id.value_counts()
    top, _ = model.recommend(np.array([0]), 3)
    order = sorted(counts.index, key=lambda i: (-counts[i], i))[:3]
    assert top[0].tolist() == order


@pytest.mark.parametrize("engine", [
    EngineConfig(name="shm", workers=1),
    EngineConfig(name="shm", workers=2, user_blocks=5, item_blocks=3),
    pytest.param(EngineConfig(name="dask", workers=1), marks=pytest.mark.dask),
    pytest.param(EngineConfig(name="dask", workers=3, user_blocks=2, item_blocks=7), marks=pytest.mark.dask),
], ids=["shm-1", "shm-2", "dask-1", "dask-3"])
@pytest.mark.parametrize("cfg", [IMPLICIT, dataclasses.replace(IMPLICIT, solver="cholesky"), BPR_CFG,
                                 dataclasses.replace(BPR_CFG, negatives="popularity", threshold=3.0)],
                         ids=["implicit-cg", "implicit-cholesky", "bpr", "bpr-popularity"])
def test_ranking_models_same_model_on_every_engine_and_worker_count(small_split, cfg, engine):
    """Bit for bit, BPR included: its strata and streams depend on the seed and settings, never on the
    engine, the worker count or engine.user_blocks. (Run on a cold Numba cache too, the state of a fresh
    clone: a cached parallel kernel once rounded differently from a fresh compile; see kernels/row_threads.py.)"""
    train = TrainConfig(train=str(small_split / "train"))
    reference = fit(train, cfg, EngineConfig()).model
    got = fit(train, cfg, engine).model
    np.testing.assert_array_equal(got.user_matrix_, reference.user_matrix_)
    np.testing.assert_array_equal(got.item_matrix_, reference.item_matrix_)


def test_ranking_models_implicit_objective_never_increases(small_split):
    for solver in ("cholesky", "cg"):
        history = fit(TrainConfig(train=str(small_split / "train")), dataclasses.replace(IMPLICIT, solver=solver),
                      EngineConfig()).history
        values = [v for h in history for v in (h["objective_after_user"], h["objective_after_item"])]
        assert all(b <= a * (1 + 1e-6) for a, b in zip(values, values[1:])), (solver, values)


def _dense_implicit_row(items, item_matrix, ratings, cfg):
    """The implicit ALS normal equations of one user, solved densely in float64 (Hu et al. eq. 4)."""
    y = item_matrix[:, :-1].astype(np.float64)
    c = 1.0 + cfg.alpha * np.asarray(ratings, np.float64)
    lam = cfg.reg * len(items)
    a = y.T @ y + (y[items].T * (c - 1.0)) @ y[items] + lam * np.eye(y.shape[1])
    return np.linalg.solve(a, y[items].T @ c)


def test_ranking_models_implicit_fold_in_equals_recalculation(small_split):
    from recsys_dist.data.dataset import Dataset

    trained = fit(TrainConfig(train=str(small_split / "train")), dataclasses.replace(IMPLICIT, rank=16),
                  EngineConfig()).model
    r = Dataset.open(small_split / "train").read_all()
    mine = r.user_idx == 7
    new_id = trained.user_ids_.max() + 1
    folded = trained.fold_in(np.full(mine.sum(), new_id), trained.item_ids_[r.item_idx[mine]], r.rating[mine])
    row = folded.user_matrix_[folded.user_index(np.array([new_id]))[0]]
    want = _dense_implicit_row(r.item_idx[mine], trained.item_matrix_, r.rating[mine], IMPLICIT)
    np.testing.assert_allclose(row[:-1], want, rtol=1e-4, atol=1e-5)
    assert row[-1] == 0.0


def test_ranking_models_bpr_fold_in_learns_the_new_users_taste(planted):
    url, frame = planted
    model = fit(TrainConfig(train=str(url)), dataclasses.replace(BPR_CFG, n_iter=60), EngineConfig()).model
    liked = np.arange(30, 40)  # group-2 items
    folded = model.fold_in(np.full(len(liked), 999), liked, np.full(len(liked), 5.0))
    top, _ = folded.recommend(np.array([999]), 5, exclude=[liked])
    assert ((top[0] >= 30) & (top[0] < 60)).all(), top
    again = model.fold_in(np.full(len(liked), 999), liked, np.full(len(liked), 5.0))
    np.testing.assert_array_equal(again.user_matrix_, folded.user_matrix_)  # seeded: the same every time


def test_ranking_models_bpr_resume_continues_the_same_run(small_split, tmp_path):
    train = str(small_split / "train")
    straight = fit(TrainConfig(train=train), BPR_CFG, EngineConfig()).model
    fit(TrainConfig(train=train, out=str(tmp_path), checkpoint_every=2), dataclasses.replace(BPR_CFG, n_iter=2),
        EngineConfig())
    resumed = fit(TrainConfig(train=train, out=str(tmp_path), resume=True), BPR_CFG, EngineConfig(name="shm"))
    assert [h["iteration"] for h in resumed.history] == [1, 2, 3, 4]
    np.testing.assert_array_equal(resumed.model.item_matrix_, straight.item_matrix_)


def test_ranking_models_estimator_and_cli_give_the_same_model(small_split, tmp_path):
    from recsys_dist import ImplicitALS
    from recsys_dist.checkpoint import load_model
    from recsys_dist.data.dataset import Dataset
    from tests.conftest import run_cli

    proc = run_cli("train", "--train", str(small_split / "train"), "--out", str(tmp_path / "m"),
                   "--set", "model.kind=implicit_als", "--set", "model.rank=8", "--set", "model.reg=0.05",
                   "--set", "model.seed=3", "--iterations", "6", "--engine", "shm")
    assert proc.returncode == 0, proc.stderr
    cli = load_model(str(tmp_path / "m"))
    est = ImplicitALS(factors=8, reg=0.05, iterations=6, seed=3).fit(str(small_split / "train"))
    np.testing.assert_array_equal(est.item_factors_, cli.item_factors_)
    np.testing.assert_array_equal(est.user_factors_, cli.user_factors_)
    ds = Dataset.open(small_split / "train")
    r = ds.read_all()
    frame = pd.DataFrame({"user_id": ds.user_index().ids[r.user_idx], "item_id": ds.item_index().ids[r.item_idx],
                          "rating": r.rating})
    from_frame = ImplicitALS(factors=8, reg=0.05, iterations=6, seed=3).fit(frame)
    users = np.unique(frame.user_id)  # every training user; ids absent from the frame have no row there
    np.testing.assert_allclose(from_frame.user_factors_[from_frame.model_.user_index(users)],
                               est.user_factors_[est.model_.user_index(users)], atol=1e-6)


def test_ranking_models_estimator_api(planted, tmp_path):
    import scipy.sparse as sp

    from recsys_dist import BPR, ImplicitALS, Popular, Recommender
    from recsys_dist.estimators import NotFittedError

    url, frame = planted
    with pytest.raises(NotFittedError, match="fit"):
        ImplicitALS().recommend([1])
    with pytest.raises(Exception, match="unknown parameter 'factor'"):
        ImplicitALS(factor=3)
    matrix = sp.csr_matrix((np.ones(len(frame)), (frame.user_id, frame.item_id)))
    model = ImplicitALS(factors=8, iterations=8).fit(matrix, engine="shm")
    assert repr(model) == "ImplicitALS(alpha=1.0, n_iter=8, rank=8, reg=0.05)"
    ids, scores = model.recommend([0, 45], k=5)
    for row, user in zip(ids, (0, 45)):
        assert not set(row) & set(frame.item_id[frame.user_id == user])  # already liked: filtered by default
    unfiltered, _ = model.recommend([0], k=60, filter_already_liked=False)
    assert set(frame.item_id[frame.user_id == 0]) <= set(unfiltered[0])
    model.save(str(tmp_path / "saved"))
    back = Recommender.load(str(tmp_path / "saved"))
    assert isinstance(back, ImplicitALS)
    np.testing.assert_array_equal(back.recommend([0, 45], k=5)[0], ids)
    folded = model.fold_in([500] * 3, [31, 32, 33])
    assert folded.recommend([500], k=3)[0].min() >= 30 and 500 not in model.user_ids_
    assert len(BPR(factors=4, epochs=2).fit(frame).similar_items([3], k=4)[0][0]) == 4
    pop = Popular().fit(frame)
    assert pop.recommend([10_000], k=1)[0][0][0] == frame.item_id.value_counts().sort_index().idxmax()


def test_ranking_models_estimator_fitted_on_a_frame_is_scored_by_the_cli(planted, tmp_path):
    from recsys_dist import BPR
    from recsys_dist.data.recommendations import read_recommendations
    from tests.conftest import run_cli

    _, frame = planted
    BPR(factors=4, epochs=5).fit(frame).save(str(tmp_path / "bpr"))  # the estimator (and its scratch data) go
    proc = run_cli("score", "--model", str(tmp_path / "bpr"), "--out", str(tmp_path / "scores"), "--k", "5")
    assert proc.returncode == 0, proc.stderr
    got = read_recommendations(str(tmp_path / "scores"))
    assert len(got) == 80 * 5
    rated = set(zip(frame.user_id, frame.item_id))
    assert not any((u, i) in rated for u, i in zip(got.user_id, got.item_id))  # training items excluded


def test_ranking_models_estimator_after_fold_in_saves_a_model_every_job_reads(planted, tmp_path):
    from recsys_dist import ImplicitALS
    from recsys_dist.data.recommendations import read_recommendations
    from tests.conftest import run_cli

    _, frame = planted
    new_items = frame.item_id.unique()[:3]
    model = ImplicitALS(factors=4, iterations=3).fit(frame).fold_in([-1] * 3, new_items)
    model.save(str(tmp_path / "m"))
    proc = run_cli("score", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "scores"), "--k", "5")
    assert proc.returncode == 0, proc.stderr
    got = read_recommendations(str(tmp_path / "scores"))
    assert len(set(got.user_id)) == 81 and not set(got[got.user_id == -1].item_id) & set(new_items)


@pytest.mark.realdata
def test_ranking_models_beat_the_peers_on_ml100k_u1(ml100k_dataset, ml100k_zip, tmp_path):
    """The acceptance protocol on real fold u1: relevant = rating >= 4, training items excluded, K = 10.
    Peers on this protocol: popularity 0.245, implicit's BPR 0.312, implicit's ALS 0.360, LensKit's
    biased MF 0.131 (explicit)."""
    import tomllib

    from recsys_dist.batch import run_evaluation
    from recsys_dist.checkpoint import save_model
    from recsys_dist.config import SplitConfig
    from recsys_dist.data.split import split
    from tests.conftest import ROOT

    split(SplitConfig(data=str(ml100k_dataset), out=str(tmp_path / "u1"), method="folds", fold="u1",
                      archive=str(ml100k_zip)))
    conf = tomllib.loads((ROOT / "conf" / "ml-100k-ranking.toml").read_text())["model"]
    explicit = tomllib.loads((ROOT / "conf" / "ml-100k.toml").read_text())["model"]
    cases = {"popular": (ModelConfig(kind="popular"), 0.245, 0.246),
             "implicit_als": (ModelConfig(**conf), 0.45, 1.0),
             "bpr": (dataclasses.replace(BPR_CFG, rank=64, n_iter=20, strata=8, seed=0), 0.36, 1.0),
             "als": (ModelConfig(**explicit), 0.131, 1.0)}
    logging.disable(logging.INFO)
    try:
        for name, (cfg, low, high) in cases.items():
            model = fit(TrainConfig(train=str(tmp_path / "u1" / "train")), cfg, EngineConfig()).model
            save_model(model, str(tmp_path / name))
            got = run_evaluation(EvaluateConfig(model=str(tmp_path / name), data=str(tmp_path / "u1" / "test")))
            ndcg = got["ranking"]["at"]["10"]["ndcg"]
            assert got["ranking"]["users"] == 456 and low <= ndcg < high, (name, ndcg)
    finally:
        logging.disable(logging.NOTSET)


def test_ranking_models_evaluate_without_relevant_ratings_is_an_error(small_split, tmp_path):
    from recsys_dist.batch import run_evaluation
    from recsys_dist.checkpoint import save_model
    from recsys_dist.errors import DataError

    model = fit(TrainConfig(train=str(small_split / "train")), ModelConfig(kind="popular"), EngineConfig()).model
    save_model(model, str(tmp_path / "m"))
    with pytest.raises(DataError, match="lower --relevance"):
        run_evaluation(EvaluateConfig(model=str(tmp_path / "m"), data=str(small_split / "test"), relevance=6.0))


def test_ranking_models_unknown_users_get_popular_items_from_implicit_als(planted):
    url, frame = planted
    model = fit(TrainConfig(train=str(url)), IMPLICIT, EngineConfig()).model
    counts = frame.item_id.value_counts()
    top, _ = model.recommend(np.array([10_000]), 3)
    assert top[0].tolist() == sorted(counts.index, key=lambda i: (-counts[i], i))[:3]


def test_ranking_models_rating_models_rank_with_support_shrunk_scores():
    """By hand: item 0 has one rating and deviation +2, item 1 fifty ratings and deviation +1.
    Unshrunk, item 0 wins; with damping 5 its deviation counts 1/6 (0.33) against 50/55 (0.91)."""
    from recsys_dist.model import ALSModel

    items = np.array([[2.0], [1.0]], np.float32)  # rank 0: the bias column only
    model = ALSModel("als", 3.0, np.zeros((1, 1), np.float32), items, np.array([7]), np.array([10, 11]),
                     {"model": {"rank_damping": 5.0}}, np.array([51]), np.array([1, 50]))
    np.testing.assert_allclose(model.ranking_item_matrix()[:, 0], [2.0 / 6.0, 50.0 / 55.0], rtol=1e-6)
    assert model.recommend(np.array([7]), 2)[0][0].tolist() == [11, 10]
    undamped = ALSModel("als", 3.0, model.user_matrix_, items, model.user_ids_, model.item_ids_,
                        {"model": {"rank_damping": 0.0}}, model.user_counts_, model.item_counts_)
    assert undamped.recommend(np.array([7]), 2)[0][0].tolist() == [10, 11]
    assert model.predict(np.array([7]), np.array([10]))[0] == pytest.approx(5.0)  # predictions stay unshrunk


def test_ranking_models_bpr_fold_in_of_a_user_does_not_depend_on_the_others(planted):
    url, _ = planted
    model = fit(TrainConfig(train=str(url)), BPR_CFG, EngineConfig()).model
    alone = model.fold_in(np.full(4, 900), np.arange(30, 34), np.full(4, 5.0))
    together = model.fold_in(np.r_[np.full(4, 900), np.full(3, 901)], np.r_[np.arange(30, 34), [1, 2, 3]],
                             np.full(7, 5.0))
    row = lambda m: m.user_matrix_[m.user_index(np.array([900]))[0]]  # noqa: E731
    np.testing.assert_array_equal(row(alone), row(together))
