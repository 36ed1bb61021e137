"""Cold means "no training ratings", one policy everywhere: a user the split keeps in the id maps but
who has no training rating gets the same cold-start list from score, recommend and the Python API."""

import zipfile

import numpy as np
import pytest

from recsys_dist.scoring import run_scoring
from recsys_dist.checkpoint import load_model, save_model
from recsys_dist.config import EngineConfig, ModelConfig, RecommendConfig, ScoreConfig, SplitConfig, TrainConfig
from recsys_dist.data.recommendations import read_recommendations
from recsys_dist.data.split import split
from recsys_dist.errors import DataError
from recsys_dist.train import fit
from recsys_dist.user_jobs import run_recommend


@pytest.fixture(scope="module", params=["als", "implicit_als"])
def test_only_user(request, ml100k_dataset, ml100k_zip, tmp_path_factory):
    """u1.base without user 1 as training data, user 1's u1.base ratings as the test part."""
    root = tmp_path_factory.mktemp("cold")
    lines = zipfile.ZipFile(ml100k_zip).read("ml-100k/u1.base").decode().splitlines()
    (root / "train.tsv").write_text("".join(line + "\n" for line in lines if line.split("\t")[0] != "1"))
    (root / "test.tsv").write_text("".join(line + "\n" for line in lines if line.split("\t")[0] == "1"))
    split(SplitConfig(data=str(ml100k_dataset), out=str(root / "split"), method="predefined",
                      train_file=str(root / "train.tsv"), test_file=str(root / "test.tsv")))
    model = fit(TrainConfig(train=str(root / "split" / "train")), ModelConfig(kind=request.param, rank=8, n_iter=3),
                EngineConfig()).model
    save_model(model, str(root / "model"))
    counts = np.bincount([int(line.split("\t")[1]) for line in lines if line.split("\t")[0] != "1"], minlength=1683)
    most_rated = sorted(range(1, 1683), key=lambda i: (-counts[i], i))[:10]
    return root, most_rated


def test_cold_users_in_the_id_map_get_the_most_rated_items_everywhere(test_only_user):
    root, most_rated = test_only_user
    model = load_model(str(root / "model"))
    assert model.user_index(np.array([1]))[0] == 0 and model.is_cold(np.array([0, 1])).tolist() == [True, False]
    assert model.recommend(np.array([1]), k=10)[0][0].tolist() == most_rated
    summary = run_scoring(ScoreConfig(model=str(root / "model"), out=str(root / "scores"), k=10))
    assert summary["cold_users"] == 1 and summary["unknown_users"] == 0
    recs = read_recommendations(str(root / "scores"))
    mine = recs[recs.user_id == 1].sort_values("rank")
    assert mine.item_id.tolist() == most_rated and len(set(recs.user_id)) == 943
    r = run_recommend(RecommendConfig(model=str(root / "model"), user="1", k=10, cold_start="popular"))
    assert not r["known"] and [i["item_id"] for i in r["items"]] == most_rated
    assert [i["score"] for i in r["items"]] == mine.score.tolist()  # the count of training ratings
    with pytest.raises(DataError, match="user '1' has no training ratings in the model.*--cold-start popular"):
        run_recommend(RecommendConfig(model=str(root / "model"), user="1", k=10))
