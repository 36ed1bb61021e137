"""Metric functions against hand-computed examples."""

import math

import numpy as np
import pytest

from recsys_dist.evaluate import mae, ranking_metrics, rmse


def test_evaluate_rating_metrics_by_hand():
    assert rmse(np.array([3.0, 4.0]), np.array([4.0, 2.0])) == pytest.approx(math.sqrt((1 + 4) / 2))
    assert mae(np.array([3.0, 4.0]), np.array([4.0, 2.0])) == pytest.approx(1.5)


def test_evaluate_ranking_metrics_by_hand():
    # user 0: relevant {1, 3}; list [1, 2, 3] -> hits at ranks 1 and 3
    # user 1: relevant {5};    list [4, 5, -1] -> hit at rank 2, one empty slot
    # user 2: nothing relevant -> left out of the averages
    recommended = np.array([[1, 2, 3], [4, 5, -1], [0, 1, 2]])
    m = ranking_metrics(recommended, [np.array([1, 3]), np.array([5]), np.array([], np.int64)], [1, 3], n_items=10)
    d = [1 / math.log2(j + 2) for j in range(3)]
    assert m["1"] == pytest.approx({"precision": (1 + 0) / 2, "recall": (0.5 + 0) / 2, "ndcg": (1 + 0) / 2,
                                    "map": (1 + 0) / 2, "hit_rate": 0.5, "coverage": 3 / 10, "users": 2})
    u0 = {"p": 2 / 3, "r": 1.0, "ndcg": (d[0] + d[2]) / (d[0] + d[1]), "ap": (1 + 2 / 3) / 2}
    u1 = {"p": 1 / 3, "r": 1.0, "ndcg": d[1] / d[0], "ap": (1 / 2) / 1}
    assert m["3"] == pytest.approx({"precision": (u0["p"] + u1["p"]) / 2, "recall": 1.0,
                                    "ndcg": (u0["ndcg"] + u1["ndcg"]) / 2, "map": (u0["ap"] + u1["ap"]) / 2,
                                    "hit_rate": 1.0, "coverage": 6 / 10, "users": 2})
    with pytest.raises(ValueError, match="K=5"):
        ranking_metrics(recommended, [np.array([1])] * 3, [5], n_items=10)


def _reference_ranking(model, train, test, k, relevance):
    """Plain loops: every user with a relevant test item, all items scored (with the model's ranking
    scores), train items removed; also whole-list AUC (ties count half) and reciprocal rank."""
    import dataclasses

    model = dataclasses.replace(model, item_matrix_=model.ranking_item_matrix(), rating_scale_=None)  # raw scores
    seen = {}
    for u, i in zip(train.user_idx, train.item_idx):
        seen.setdefault(int(u), set()).add(int(i))
    rel = {}
    for u, i, r in zip(test.user_idx, test.item_idx, test.rating):
        if r >= relevance:
            rel.setdefault(int(u), set()).add(int(i))
    n_items = len(model.item_ids_)
    sums = dict(precision=0.0, recall=0.0, ndcg=0.0, map=0.0, hit_rate=0.0, auc=0.0, mrr=0.0)
    shown = set()
    for u in sorted(rel):
        scores = model.predict_idx(np.full(n_items, u), np.arange(n_items))
        full = [i for i in np.lexsort((np.arange(n_items), -scores)) if i not in seen.get(u, set())]
        ranked = full[:k]
        sums["mrr"] += 1 / (1 + min(j for j, i in enumerate(full) if i in rel[u]))
        neg = [scores[i] for i in full if i not in rel[u]]
        sums["auc"] += np.mean([np.mean([1.0 if scores[i] > s else 0.5 if scores[i] == s else 0.0 for s in neg])
                                for i in rel[u]])
        shown.update(ranked)
        hits = [1.0 if i in rel[u] else 0.0 for i in ranked]
        ideal = sum(1 / math.log2(j + 2) for j in range(min(k, len(rel[u]))))
        sums["precision"] += sum(hits) / k
        sums["recall"] += sum(hits) / len(rel[u])
        sums["ndcg"] += sum(h / math.log2(j + 2) for j, h in enumerate(hits)) / ideal
        sums["map"] += sum(sum(hits[: j + 1]) / (j + 1) * h for j, h in enumerate(hits)) / min(k, len(rel[u]))
        sums["hit_rate"] += float(sum(hits) > 0)
    out = {name: v / len(rel) for name, v in sums.items()}
    out["coverage"] = len(shown) / n_items
    out["users"] = len(rel)
    return out


def test_evaluate_job_equals_a_single_process_reference(small_split, tmp_path):
    import json

    from recsys_dist.checkpoint import load_model
    from recsys_dist.data.dataset import Dataset
    from tests.conftest import run_cli

    proc = run_cli("train", "--train", str(small_split / "train"), "--out", str(tmp_path / "m"), "--iterations", "3")
    assert proc.returncode == 0, proc.stderr
    ev = run_cli("evaluate", "--model", str(tmp_path / "m"), "--data", str(small_split / "test"), "--k", "5", "10",
                 "--relevance", "3.5", "--out", str(tmp_path / "ev"))
    assert ev.returncode == 0, ev.stderr
    assert "precision" in ev.stdout and "ndcg" in ev.stdout
    got = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    model = load_model(str(tmp_path / "m"))
    train, test = Dataset.open(small_split / "train").read_all(), Dataset.open(small_split / "test").read_all()
    for k in (5, 10):
        want = _reference_ranking(model, train, test, k, 3.5)
        assert {"auc": got["ranking"]["auc"], "mrr": got["ranking"]["mrr"]} == pytest.approx(
            {"auc": want.pop("auc"), "mrr": want.pop("mrr")}, rel=1e-9)
        assert got["ranking"]["at"][str(k)] == pytest.approx(want, rel=1e-9)
    pred = model.predict_idx(test.user_idx, test.item_idx)
    assert got["rmse"] == pytest.approx(rmse(pred, test.rating)) and got["n"] == len(test)
    assert got["ranking"]["relevant_in_training"] == 0 and "training data" not in ev.stderr
    # the classic mistake, the training part given as --data: every relevant rating is a training one
    wrong = run_cli("evaluate", "--model", str(tmp_path / "m"), "--data", str(small_split / "train"), "--k", "5",
                    "--relevance", "3.5", "--out", str(tmp_path / "wrong"))
    assert wrong.returncode == 0, wrong.stderr
    relevant = int((train.rating >= 3.5).sum())
    assert json.loads((tmp_path / "wrong" / "metrics.json").read_text())["ranking"]["relevant_in_training"] == relevant
    assert f"{relevant} of its {relevant} relevant ratings are of items the same user rated in" in wrong.stderr


@pytest.mark.realdata
def test_evaluate_cold_means_no_training_ratings(ml100k_dataset, ml100k_zip, tmp_path):
    """u1's cold part: 32 test ratings of items with no training rating, which the split keeps in the
    parent's id maps; cold must come from the model's training counts, not from the map."""
    from recsys_dist.batch import run_evaluation
    from recsys_dist.checkpoint import save_model
    from recsys_dist.config import EngineConfig, EvaluateConfig, ModelConfig, SplitConfig, TrainConfig
    from recsys_dist.data.split import split
    from recsys_dist.train import fit

    split(SplitConfig(data=str(ml100k_dataset), out=str(tmp_path / "u1"), method="folds", fold="u1",
                      archive=str(ml100k_zip)))
    model = fit(TrainConfig(train=str(tmp_path / "u1" / "train")), ModelConfig(rank=4, n_iter=2), EngineConfig()).model
    save_model(model, str(tmp_path / "m"))
    cold = dict(model=str(tmp_path / "m"), data=str(tmp_path / "u1" / "cold"))
    excluded = run_evaluation(EvaluateConfig(**cold, cold="exclude"))
    assert excluded["cold_ratings"] == 32 and excluded["n"] == 0 and excluded["unknown_items"] > 0
    assert excluded["ranking"]["users"] == 0 and "cold" in excluded["ranking"]["note"]
    kept = run_evaluation(EvaluateConfig(**cold))  # scored by the bias fallback: mu + b_u
    assert kept["n"] == 32 and np.isfinite(kept["rmse"])


@pytest.mark.realdata
def test_evaluate_several_parts_at_once_reproduces_the_training_test_with_cold_figure(ml100k_dataset, ml100k_zip,
                                                                                      tmp_path):
    import json

    from tests.conftest import run_cli

    u1 = tmp_path / "u1"
    assert run_cli("split", "--data", str(ml100k_dataset), "--method", "folds", "--fold", "u1", "--out", str(u1),
                   "--archive", str(ml100k_zip)).returncode == 0
    proc = run_cli("train", "--train", str(u1 / "train"), "--test", str(u1 / "test"), "--out", str(tmp_path / "m"),
                   "--rank", "8", "--iterations", "3")
    assert proc.returncode == 0, proc.stderr
    want = json.loads((tmp_path / "m" / "metrics.json").read_text())["test_with_cold"]
    ev = run_cli("evaluate", "--model", str(tmp_path / "m"), "--data", str(u1 / "test"), str(u1 / "cold"),
                 "--out", str(tmp_path / "ev"))
    assert ev.returncode == 0, ev.stderr
    got = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert got["n"] == want["n"] == 20_000 and got["cold_ratings"] == 32
    assert got["rmse"] == pytest.approx(want["rmse"], rel=1e-12) and got["mae"] == pytest.approx(want["mae"], rel=1e-12)


@pytest.mark.realdata
@pytest.mark.dask
def test_evaluate_rating_metrics_are_block_sums_and_the_driver_never_reads_a_matrix(ml100k_dataset, ml100k_zip,
                                                                                     tmp_path, monkeypatch):
    """u1's test and cold parts plus ratings of users and items the model has never seen (all four mixes):
    RMSE and MAE on the shm and Dask engines equal predict_idx in memory, while this process, where the job
    runs, cannot read a factor row (each block task reads its own where it runs)."""
    from recsys_dist.batch import run_evaluation
    from recsys_dist.checkpoint import SavedModel, load_model, save_model
    from recsys_dist.config import EngineConfig, EvaluateConfig, ModelConfig, SplitConfig, TrainConfig
    from recsys_dist.data.dataset import Dataset
    from recsys_dist.data.ingest import ingest_arrays
    from recsys_dist.data.split import split
    from recsys_dist.train import fit

    u1 = tmp_path / "u1"
    split(SplitConfig(data=str(ml100k_dataset), out=str(u1), method="folds", fold="u1", archive=str(ml100k_zip)))
    save_model(fit(TrainConfig(train=str(u1 / "train")), ModelConfig(rank=8, n_iter=3, rank_damping=30.0),
                   EngineConfig()).model, str(tmp_path / "m"))
    # known user 1 and item 50; user 5000 and item 9000 unknown to the model
    ingest_arrays(np.array([1, 1, 5000, 5000, 5000]), np.array([50, 9000, 50, 9000, 1]),
                  np.array([5.0, 1.0, 2.0, 4.0, 3.0], np.float32), None, str(tmp_path / "new"), "test")
    parts = [str(u1 / "test"), str(u1 / "cold"), str(tmp_path / "new")]
    model = load_model(str(tmp_path / "m"))
    predicted, actual = [], []
    for url in parts:
        ds = Dataset.open(url)
        r = ds.read_all()
        predicted.append(model.predict_idx(model.user_index(ds.user_index().to_raw(r.user_idx)),
                                           model.item_index(ds.item_index().to_raw(r.item_idx))))
        actual.append(r.rating)
    errors = np.concatenate(predicted) - np.concatenate(actual)
    want = {"rmse": float(np.sqrt(np.mean(errors ** 2))), "mae": float(np.mean(np.abs(errors))), "n": len(errors)}
    assert want["n"] == 20_005

    reference = run_evaluation(EvaluateConfig(model=str(tmp_path / "m"), data=parts))  # in process

    def no_rows(*args, **kwargs):
        raise AssertionError("the job's process read a factor matrix")

    monkeypatch.setattr(SavedModel, "rows", no_rows)  # the workers are other processes: they still can
    for engine in (EngineConfig(name="shm", workers=2), EngineConfig(name="dask", workers=2)):
        got = run_evaluation(EvaluateConfig(model=str(tmp_path / "m"), data=parts), engine)
        assert {k: got[k] for k in want} == pytest.approx(want, rel=1e-12), engine.name
        assert got["unknown_users"] == 1 and got["cold_ratings"] == 32 + 4
        ranking, want_ranking = got["ranking"], reference["ranking"]
        assert ranking["users"] == want_ranking["users"] > 400
        assert ranking["relevant_in_training"] == 1  # user 1 rated item 50 in u1's training data too
        assert ranking["auc"] == pytest.approx(want_ranking["auc"], rel=1e-9), engine.name
        assert ranking["mrr"] == pytest.approx(want_ranking["mrr"], rel=1e-9)
        assert ranking["at"]["10"] == pytest.approx(want_ranking["at"]["10"], rel=1e-9)
