"""The tune job: a search over real folds of real Parquet that finds known answers, resumes, prunes and
hands its best configuration to train; the same search on every engine."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recsys_dist.checkpoint import load_model
from recsys_dist.errors import ConfigError
from tests.conftest import run_cli

pytest.importorskip("optuna")

GRID = """
[model.rank]
choices = [1, 4]
[model.reg]
choices = [0.05, 30.0]
"""


def _search(tmp_path, split, *extra, space=GRID, name="s", iterations=6):
    path = tmp_path / f"{name}.toml"
    path.write_text(space)
    return run_cli("tune", "--data", str(split / "train"), "--space", str(path), "--out", str(tmp_path / name),
                   "--iterations", str(iterations), *extra)


def test_tune_grid_on_planted_rank_4_data_finds_rank_4_and_a_small_reg(small_split, tmp_path):
    proc = _search(tmp_path, small_split, "--search", "grid", "--trials", "0", "--cv", "kfold:3", "--pruner", "none")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "s" / "tune.json").read_text())
    assert summary["best"]["model.rank"] == 4 and summary["best"]["model.reg"] == 0.05
    assert summary["trials"] == 4 and "rmse" in proc.stdout and "best.toml" in proc.stdout
    table = pd.read_csv(tmp_path / "s" / "results.csv")
    assert len(table) == 4 * 3 and set(table["fold"]) == {0, 1, 2}  # one row per trial and fold
    assert {"model.rank", "model.reg", "rmse", "mae", "ndcg@10", "iterations", "seconds", "pruned"} <= set(table)
    assert pd.read_parquet(tmp_path / "s" / "results.parquet").shape == table.shape
    # the folds tile the training data: the held-out parts of the three folds are disjoint and complete
    from recsys_dist.data.dataset import Dataset

    held = sum(Dataset.open(str(tmp_path / "s" / "cv" / str(f) / part)).n_ratings
               for f in range(3) for part in ("test", "cold") if (tmp_path / "s" / "cv" / str(f) / part).exists())
    assert held == Dataset.open(str(small_split / "train")).n_ratings


def test_tune_best_toml_trains_the_best_configuration(small_split, tmp_path):
    assert _search(tmp_path, small_split, "--search", "grid", "--trials", "0", "--cv", "holdout:0.2").returncode == 0
    best = json.loads((tmp_path / "s" / "tune.json").read_text())["best"]
    proc = run_cli("train", "--config", str(tmp_path / "s" / "best.toml"), "--train", str(small_split / "train"),
                   "--out", str(tmp_path / "m"))
    assert proc.returncode == 0, proc.stderr
    model = load_model(str(tmp_path / "m"))
    assert model.n_factors == best["model.rank"] and model.config["model"]["reg"] == best["model.reg"]
    assert model.config["model"]["n_iter"] == 6


def test_tune_resumed_search_skips_finished_trials(small_split, tmp_path):
    space = "[model.reg]\nlow = 0.02\nhigh = 1.0\nlog = true\n"
    assert _search(tmp_path, small_split, "--trials", "3", "--cv", "kfold:2", space=space).returncode == 0
    first = pd.read_csv(tmp_path / "s" / "results.csv")
    refused = _search(tmp_path, small_split, "--trials", "5", "--cv", "kfold:2", space=space)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    other = _search(tmp_path, small_split, "--trials", "5", "--cv", "kfold:3", "--resume", space=space)
    assert other.returncode == 2 and "other cv" in other.stderr
    proc = _search(tmp_path, small_split, "--trials", "5", "--cv", "kfold:2", "--resume", space=space)
    assert proc.returncode == 0, proc.stderr
    assert "3 of 5 trials already finished, 2 to go" in proc.stderr
    after = pd.read_csv(tmp_path / "s" / "results.csv")
    assert sorted(set(after["trial"])) == [0, 1, 2, 3, 4]
    # the finished trials were not run again: their rows (timings included) are as they were
    pd.testing.assert_frame_equal(after[after["trial"] < 3].reset_index(drop=True), first)


def test_tune_pruned_trials_stop_early_and_are_recorded_as_pruned(small_split, tmp_path):
    space = "[model.reg]\nlow = 0.01\nhigh = 10.0\nlog = true\n"
    proc = _search(tmp_path, small_split, "--search", "random", "--trials", "10", "--cv", "kfold:2", "--set",
                   "model.rank=4", space=space, iterations=12)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(tmp_path / "s" / "results.csv")
    pruned = table[table["state"] == "pruned"]
    assert len(pruned) >= 1 and pruned["pruned"].all()
    assert (pruned["iterations"] < 12).all() and (pruned["fold"] == 0).all()  # stopped within the first fold
    done = table[table["state"] == "complete"]
    assert (done["iterations"] == 12).all()
    assert pruned["rmse"].min() > done.groupby("trial")["rmse"].mean().min()  # the pruned ones were worse


@pytest.mark.parametrize("engine", ["shm", "dask"])
def test_tune_the_same_search_on_every_engine(small_split, tmp_path, engine):
    grid = ("--search", "grid", "--trials", "0", "--cv", "kfold:2", "--pruner", "none")
    assert _search(tmp_path, small_split, *grid, name="here").returncode == 0
    proc = _search(tmp_path, small_split, *grid, "--engine", engine, "--workers", "2", name="there")
    assert proc.returncode == 0, proc.stderr
    assert "2 trials at once" in proc.stderr

    def by_config(name):
        t = pd.read_csv(tmp_path / name / "results.csv")
        return t.groupby(["model.rank", "model.reg"])["rmse"].mean().round(6).to_dict()

    assert by_config("there") == by_config("here")


def test_tune_refit_scores_the_held_out_part_for_a_nested_figure(small_split, tmp_path):
    proc = _search(tmp_path, small_split, "--search", "grid", "--trials", "0", "--cv", "kfold:2", "--refit",
                   "--test", str(small_split / "test"), "--metric", "ndcg@5")
    assert proc.returncode == 0, proc.stderr
    refit = json.loads((tmp_path / "s" / "tune.json").read_text())["refit"]
    evaluated = run_cli("evaluate", "--model", refit["model"], "--data", str(small_split / "test"), "--k", "5")
    ndcg = float(evaluated.stdout.strip().splitlines()[-1].split()[3])
    assert abs(refit["ndcg@5"] - ndcg) < 1e-4 and "refit model" in proc.stdout


def test_tune_from_python_takes_the_space_as_a_mapping_and_equals_the_job(small_split, tmp_path):
    import recsys_dist

    summary = recsys_dist.tune(str(small_split / "train"), {"model": {"rank": {"choices": [1, 4]}}}, str(tmp_path / "p"),
                               model={"n_iter": 5, "reg": 0.15}, search="grid", trials=0, cv="kfold:2")
    assert summary["trials"] == 2
    proc = _search(tmp_path, small_split, "--search", "grid", "--trials", "0", "--cv", "kfold:2", "--set", "model.reg=0.15",
                   space="[model.rank]\nchoices = [1, 4]\n", iterations=5)
    assert proc.returncode == 0, proc.stderr
    job = json.loads((tmp_path / "s" / "tune.json").read_text())
    assert job["best"] == summary["best"] and summary["best"]["model.rank"] == 4


@pytest.mark.parametrize("space, flags, message", [
    ("[model.rnak]\nchoices = [1]\n", (), "s.toml: model.rnak: unknown model key"),
    ("[model.reg]\nlow = 1.0\nhigh = 0.1\n", (), "low must be below high"),
    ("[model.reg]\nlow = 0.0\nhigh = 1.0\nlog = true\n", (), "a log range needs low > 0"),
    ("[model.rank]\nchoices = [0, 4]\n", (), "model.rank = 0 is not a valid setting"),
    ("[model.reg]\nlow = 0.1\nhigh = 1.0\n", ("--search", "grid"), "a grid search needs `choices` or `points`"),
    ("[train.out]\nchoices = ['x']\n", (), "only [model.KEY] tables can be searched"),
    (GRID, ("--model", "implicit_als"), "tune.metric: rmse needs rating predictions"),
    (GRID, ("--metric", "ndcg"), "(tune.metric): expected rmse, mae or one of"),
    (GRID, ("--cv", "kfold:1"), "(tune.cv): kfold needs at least 2 folds"),
    (GRID, ("--cv", "folds:u1..u9"), "tune.cv: expected folds:u1..u5"),
])
def test_tune_bad_spaces_and_flags_name_what_is_wrong(small_split, tmp_path, space, flags, message):
    proc = _search(tmp_path, small_split, *flags, space=space)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "s" / "study.journal").exists()


def test_tune_space_grid_points_follow_the_scale():
    from recsys_dist.tuning.space import SearchSpace

    space = SearchSpace.from_toml("[model.reg]\nlow = 0.01\nhigh = 1.0\nlog = true\npoints = 3\n"
                                  "[model.rank]\nlow = 2\nhigh = 10\npoints = 3\n", "s.toml", {"kind": "als"})
    assert space.grid() == {"model.reg": [0.01, 0.1, 1.0], "model.rank": [2, 6, 10]}
    with pytest.raises(ConfigError, match="the seed is not a hyperparameter"):
        SearchSpace.from_toml("[model.seed]\nchoices = [1, 2]\n", "s.toml", {})
