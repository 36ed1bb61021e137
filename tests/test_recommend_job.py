"""One user's recommendations with reasons, unknown users, and folding a new user in first."""

import numpy as np
import pytest

from recsys_dist.config import EngineConfig, FilterConfig, ModelConfig, RecommendConfig, TrainConfig
from recsys_dist.errors import DataError
from recsys_dist.user_jobs import run_recommend
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def model_dir(small_split, tmp_path_factory):
    from recsys_dist.checkpoint import save_model
    from recsys_dist.train import fit

    out = tmp_path_factory.mktemp("model") / "m"
    save_model(fit(TrainConfig(train=str(small_split / "train")), ModelConfig(rank=6, n_iter=3), EngineConfig()).model,
               str(out))
    return out


def test_recommend_one_user_with_three_reasons_each(model_dir, small_split):
    from recsys_dist.checkpoint import load_model
    from recsys_dist.data.dataset import Dataset

    r = run_recommend(RecommendConfig(model=str(model_dir), user="7", k=5))
    model = load_model(str(model_dir))
    train = Dataset.open(small_split / "train").read_user_range(6, 7)
    assert model.user_ids_[6] == 7
    seen = model.item_ids_[train.item_idx]
    want, scores = model.recommend([7], k=5, exclude=[seen])
    assert [i["item_id"] for i in r["items"]] == want[0].tolist()
    np.testing.assert_allclose([i["score"] for i in r["items"]], scores[0], rtol=1e-6)
    for item in r["items"]:
        assert 1 <= len(item["because"]) <= 3 and {b["item_id"] for b in item["because"]} <= set(seen.tolist())
        assert [b["weight"] for b in item["because"]] == sorted((b["weight"] for b in item["because"]), reverse=True)
    proc = run_cli("recommend", "--model", str(model_dir), "--user", "7", "--k", "3")
    assert proc.returncode == 0, proc.stderr
    # every recommendation gets a reason line: liked items near it, items rated low far from it, or none
    lines = proc.stdout.count("because you rated") + proc.stdout.count("unlike what you rated low") - \
        proc.stdout.count("and unlike what you rated low") + proc.stdout.count("no rated item pulls toward this")
    assert lines == 3 and "Synthetic Movie" in proc.stdout


def test_recommend_unknown_user_is_an_error_or_gets_popular_items(model_dir):
    proc = run_cli("recommend", "--model", str(model_dir), "--user", "424242")
    assert proc.returncode == 1 and "424242" in proc.stderr and "--cold-start popular" in proc.stderr
    r = run_recommend(RecommendConfig(model=str(model_dir), user="424242", k=4, cold_start="popular"),
                      FilterConfig(min_ratings=1))
    assert not r["known"] and len(r["items"]) == 4
    counts = [i["score"] for i in r["items"]]  # the items' training ratings, most first
    assert counts == sorted(counts, reverse=True) and counts[0] > 0


def test_recommend_after_folding_in_a_new_user(model_dir, tmp_path):
    from recsys_dist.checkpoint import load_model

    model = load_model(str(model_dir))
    liked = model.item_ids_[:6]
    lines = "".join(f"999,{i},{5 if n < 3 else 1}\n" for n, i in enumerate(liked))
    (tmp_path / "new.csv").write_text("user_id,item_id,rating\n" + lines)
    r = run_recommend(RecommendConfig(model=str(model_dir), user="999", k=5, fold_in=str(tmp_path / "new.csv")))
    assert r["known"] and r["rated"] == 6
    assert not {i["item_id"] for i in r["items"]} & set(liked.tolist())
    reasons = {b["item_id"] for i in r["items"] for b in i["because"]}
    assert reasons and reasons <= set(liked.tolist())
    with pytest.raises(DataError, match="integers"):
        run_recommend(RecommendConfig(model=str(model_dir), user="abc"))


def test_recommend_fold_in_says_which_ratings_it_ignored(model_dir, tmp_path, caplog):
    from recsys_dist.checkpoint import load_model

    known = load_model(str(model_dir)).item_ids_[:3]
    lines = "".join(f"999,{i},5\n" for i in [*known.tolist(), 99_999_999])
    (tmp_path / "new.csv").write_text("user_id,item_id,rating\n" + lines)
    with caplog.at_level("WARNING"):
        r = run_recommend(RecommendConfig(model=str(model_dir), user="999", k=5, fold_in=str(tmp_path / "new.csv")))
    assert r["known"] and r["rated"] == 3
    assert f"{tmp_path / 'new.csv'}: 1 of its 4 ratings are of items the model does not know, ignored" in caplog.text
