"""Genre-augmented ALS: items nobody rated get the factors their genres predict, on every engine, and on
real ml-100k a cold-item split shows it: cold items better than the bias and genre-mean baselines, warm
items as good as plain ALS."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from recsys_dist.config import EngineConfig, ModelConfig, SplitConfig, TrainConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.split import split
from recsys_dist.errors import DataError
from recsys_dist.evaluate import rmse
from recsys_dist.models.genre_als import genre_features
from recsys_dist.train import fit
from tests.conftest import run_cli

MODEL = ModelConfig(kind="genre_als", rank=6, reg=0.1, n_iter=6, seed=3)


@pytest.fixture(scope="module")
def cold_items_split(tmp_path_factory, small_split):
    out = tmp_path_factory.mktemp("genre") / "split"
    split(SplitConfig(data=str(small_split.parent / "ds"), out=str(out), method="cold-items", fraction=0.15, seed=2))
    return out


@pytest.fixture(scope="module")
def reference(cold_items_split):
    return fit(TrainConfig(train=str(cold_items_split / "train")), MODEL, EngineConfig(name="inprocess"))


def test_genre_als_cold_items_split_holds_out_every_rating_of_the_chosen_items(cold_items_split, small_split):
    train, cold = (Dataset.open(str(cold_items_split / p)) for p in ("train", "cold"))
    n_items = train.n_items
    counts = train.rating_counts()[1]
    unrated = np.flatnonzero(counts == 0)
    assert len(unrated) >= round(0.15 * n_items)  # the chosen ones, plus any whose few ratings all went to test
    assert set(np.unique(cold.read_all().item_idx)) <= set(unrated)
    again = cold_items_split.parent / "again"
    split(SplitConfig(data=str(small_split.parent / "ds"), out=str(again), method="cold-items", fraction=0.15, seed=2))
    assert np.array_equal(Dataset.open(str(again / "train")).rating_counts()[1], counts)  # reproducible


def test_genre_als_each_step_lowers_the_objective_and_unrated_items_get_their_genres_embedding(reference,
                                                                                               cold_items_split):
    steps = [v for r in reference.history for v in (r["objective_after_user"], r["objective_after_genres"],
                                                      r["objective_after_item"])]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(steps, steps[1:]))
    model = reference.model
    train = Dataset.open(str(cold_items_split / "train"))
    genres = train.manifest["genres"]
    g = np.array([model.config["genre_embedding"][name] for name in genres])
    f = genre_features(train.read_items(), genres, train.n_items)
    unrated = model.item_counts_ == 0
    np.testing.assert_allclose(model.item_matrix_[unrated], (f @ g)[unrated], atol=1e-5)
    assert np.abs(model.item_matrix_[unrated, :-1]).sum() > 0  # genre rows, not zeros


@pytest.mark.parametrize("engine", [EngineConfig(name="shm", workers=2, user_blocks=3, item_blocks=2),
                                    pytest.param(EngineConfig(name="dask", workers=2, item_blocks=3),
                                                 marks=pytest.mark.dask)], ids=["shm", "dask"])
def test_genre_als_is_the_same_model_on_every_engine(reference, cold_items_split, engine):
    model = fit(TrainConfig(train=str(cold_items_split / "train")), MODEL, engine).model
    np.testing.assert_allclose(model.user_matrix_, reference.model.user_matrix_, atol=1e-4)
    np.testing.assert_allclose(model.item_matrix_, reference.model.item_matrix_, atol=1e-4)


def test_genre_als_evaluate_predicts_cold_items_from_their_genres(reference, cold_items_split, tmp_path):
    proc = run_cli("train", "--train", str(cold_items_split / "train"), "--model", "genre_als", "--rank", "6",
                   "--reg", "0.1", "--iterations", "6", "--set", "model.seed=3", "--out", str(tmp_path / "m"))
    assert proc.returncode == 0, proc.stderr
    ev = run_cli("evaluate", "--model", str(tmp_path / "m"), "--data", str(cold_items_split / "cold"), "--out",
                 str(tmp_path / "e"))
    assert ev.returncode == 0, ev.stderr
    got = json.loads((tmp_path / "e" / "metrics.json").read_text())["rmse"]
    cold = Dataset.open(str(cold_items_split / "cold")).read_all()
    assert got == pytest.approx(rmse(reference.model.predict_idx(cold.user_idx, cold.item_idx), cold.rating), abs=1e-6)


def test_genre_als_needs_genres(tmp_path, rng):
    import pandas as pd

    from recsys_dist.config import IngestConfig
    from recsys_dist.data.ingest import ingest

    path = tmp_path / "r.csv"
    pd.DataFrame({"user_id": rng.integers(0, 30, 400), "item_id": rng.integers(0, 20, 400),
                  "rating": rng.integers(1, 6, 400)}).drop_duplicates(["user_id", "item_id"]).to_csv(path, index=False)
    ingest(IngestConfig(source=str(path), out=str(tmp_path / "ds"), format="csv", timestamp_col=""))
    with pytest.raises(DataError, match="genre_als needs item genres"):
        fit(TrainConfig(train=str(tmp_path / "ds")), MODEL, EngineConfig(name="inprocess"))


def test_genre_als_on_a_real_ml100k_cold_item_split(ml100k_dataset, tmp_path):
    split(SplitConfig(data=str(ml100k_dataset), out=str(tmp_path / "s"), method="cold-items", fraction=0.1, seed=1))
    train = TrainConfig(train=str(tmp_path / "s" / "train"))
    cold, warm = (Dataset.open(str(tmp_path / "s" / p)).read_all() for p in ("cold", "test"))
    base = ModelConfig(rank=32, reg=0.12, n_iter=12)
    models = {kind: fit(train, dataclasses.replace(base, kind=kind), EngineConfig(name="inprocess")).model
              for kind in ("genre_als", "als", "bias")}
    score = {kind: {part: rmse(m.predict_idx(r.user_idx, r.item_idx), r.rating) for part, r in
                    (("cold", cold), ("warm", warm))} for kind, m in models.items()}
    # the genre-mean baseline: a cold item's bias is the mean bias of the rated items of its genres
    ds = Dataset.open(train.train)
    f = genre_features(ds.read_items(), ds.manifest["genres"], ds.n_items)
    bias = models["bias"]
    rated = bias.item_counts_ > 0
    genre_bias = (f[rated].T @ bias.item_matrix_[rated, -1]) / np.maximum(f[rated].sum(0), 1e-9)
    item = bias.item_matrix_.copy()
    item[~rated, -1] = f[~rated] @ genre_bias
    predicted = np.clip(bias.mu_ + bias.user_matrix_[cold.user_idx, -1] + item[cold.item_idx, -1], 1, 5)
    genre_mean = rmse(predicted, cold.rating)
    assert score["genre_als"]["cold"] < min(score["bias"]["cold"], genre_mean), (score, genre_mean)
    assert score["genre_als"]["warm"] <= score["als"]["warm"] + 0.002, score


def test_genre_als_score_recommends_unrated_items_by_their_genres_and_explains_users(reference, cold_items_split,
                                                                                     tmp_path):
    import pandas as pd

    from recsys_dist.checkpoint import save_model
    from recsys_dist.data.recommendations import read_recommendations

    model = reference.model
    save_model(model, str(tmp_path / "m"))
    unrated = model.item_ids_[model.item_counts_ == 0]
    (tmp_path / "allow.txt").write_text("\n".join(map(str, unrated)) + "\n")
    proc = run_cli("score", "--model", str(tmp_path / "m"), "--k", "3", "--allow", str(tmp_path / "allow.txt"),
                   "--out", str(tmp_path / "s"))
    assert proc.returncode == 0, proc.stderr
    recs = read_recommendations(str(tmp_path / "s"))
    assert len(recs) == 3 * len(model.user_ids_) and recs["item_id"].isin(unrated).all()
    user = recs[recs["user_id"] == recs["user_id"].iloc[0]]
    u = model.user_index(np.array([user["user_id"].iloc[0]]))
    rows = model.item_matrix_[model.item_index(unrated)].astype(np.float64)  # raw scores: ranking never clips
    expected = rows[:, :-1] @ model.user_matrix_[u[0], :-1] + rows[:, -1]
    best = pd.Series(expected, index=unrated).sort_values(ascending=False)  # items of the same genres tie
    assert (best[user["item_id"]] >= best.iloc[2] - 1e-6).all(), (best.head(5), user)
    # the user side is explicit ALS's: explanations and fold-in work as for als
    shown = run_cli("recommend", "--model", str(tmp_path / "m"), "--user", str(user["user_id"].iloc[0]),
                    "--explain", "2", "--allow", str(tmp_path / "allow.txt"))
    assert shown.returncode == 0 and "because you like " in shown.stdout, shown.stdout + shown.stderr


def test_genre_als_estimator_equals_the_driver(reference, cold_items_split):
    from recsys_dist import GenreALS

    est = GenreALS(rank=6, reg=0.1, iterations=6, seed=3).fit(str(cold_items_split / "train"))
    np.testing.assert_array_equal(est.item_factors_, reference.model.item_factors_)
