"""A model written by fold-in works with every job: its training data is the original plus the folded-in
ratings, written beside it in the new id maps, so exclusions and cold users are right for it too."""

import json

import numpy as np
import pandas as pd
import pytest

from recsys_dist.checkpoint import load_model
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.recommendations import read_recommendations
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def folded(ml100k_dataset, ml100k_zip, tmp_path_factory):
    """u1 model; fold-in of new user 500000 (ids sort after all: no shift) and new user 0 (sorts first:
    every known user's index moves by one) and a re-fold of known user 42 from 3 ratings."""
    root = tmp_path_factory.mktemp("foldjobs")
    assert run_cli("split", "--data", str(ml100k_dataset), "--method", "folds", "--fold", "u1", "--out",
                   str(root / "u1"), "--archive", str(ml100k_zip)).returncode == 0
    proc = run_cli("train", "--train", str(root / "u1" / "train"), "--out", str(root / "m"), "--rank", "8",
                   "--iterations", "3")
    assert proc.returncode == 0, proc.stderr
    rows = [(500000, 50, 5), (500000, 172, 5), (500000, 181, 4), (0, 1, 5), (0, 2, 1), (42, 7, 5), (42, 8, 4),
            (42, 9, 1)]
    (root / "new.csv").write_text("user_id,item_id,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows))
    proc = run_cli("fold-in", "--model", str(root / "m"), "--ratings", str(root / "new.csv"), "--out", str(root / "f"))
    assert proc.returncode == 0, proc.stderr
    return root, rows


def test_fold_in_model_records_training_data_that_matches_it(folded):
    root, rows = folded
    model = load_model(str(root / "f"))
    train = Dataset.open(model.config["train_data"])
    original = Dataset.open(root / "u1" / "train")
    assert train.n_users == len(model.user_ids_) == 945 and train.fingerprint() == model.config["train_fingerprint"]
    got = train.read_all()
    frame = pd.DataFrame({"u": train.user_index().to_raw(got.user_idx), "i": train.item_index().to_raw(got.item_idx),
                          "r": got.rating})
    base = original.read_all()
    new_pairs = {(u, i) for u, i, _ in rows} - {(u, i) for u, i in zip(original.user_index().to_raw(base.user_idx),
                                                                         original.item_index().to_raw(base.item_idx))}
    assert len(frame) == original.n_ratings + len(new_pairs)
    assert frame.set_index(["u", "i"]).r.loc[(42, 9)] == 1.0 and frame.set_index(["u", "i"]).r.loc[(0, 1)] == 5.0
    assert sorted(frame[frame.u == 500000].i) == [50, 172, 181]


def test_fold_in_model_works_with_score_evaluate_recommend_and_another_fold_in(folded):
    root, rows = folded
    proc = run_cli("score", "--model", str(root / "f"), "--out", str(root / "scores"), "--k", "10")
    assert proc.returncode == 0, proc.stderr
    recs = read_recommendations(str(root / "scores"))
    assert len(set(recs.user_id)) == 945
    for user in (500000, 0, 42):  # never an item the user rated, folded in or in training
        rated = {i for u, i, _ in rows if u == user}
        assert not rated & set(recs[recs.user_id == user].item_id)
    proc = run_cli("evaluate", "--model", str(root / "f"), "--data", str(root / "u1" / "test"), "--out",
                   str(root / "ev"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((root / "ev" / "metrics.json").read_text())["ranking"]["users"] > 400
    proc = run_cli("recommend", "--model", str(root / "f"), "--user", "500000", "--k", "5")
    assert proc.returncode == 0, proc.stderr
    (root / "more.csv").write_text("user_id,item_id,rating\n600000,50,5\n")
    proc = run_cli("fold-in", "--model", str(root / "f"), "--ratings", str(root / "more.csv"), "--out",
                   str(root / "f2"))
    assert proc.returncode == 0, proc.stderr
    twice = load_model(str(root / "f2"))
    assert len(twice.user_ids_) == 946 and Dataset.open(twice.config["train_data"]).n_users == 946
    np.testing.assert_array_equal(twice.user_index(np.array([500000, 600000])) >= 0, [True, True])
