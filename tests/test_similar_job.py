"""The similar-items job: every item's list equals the Python API's, on every engine, published like score's."""

import numpy as np
import pandas as pd
import pytest

from recsys_dist.checkpoint import load_model, save_model
from recsys_dist.config import EngineConfig, ModelConfig, SimilarItemsConfig, TrainConfig
from recsys_dist.data.recommendations import read_recommendations
from recsys_dist.errors import DataError
from recsys_dist.similar_job import run_similar_items


@pytest.fixture(scope="module")
def model_dir(small_split, tmp_path_factory):
    from recsys_dist.train import fit

    out = tmp_path_factory.mktemp("similar") / "m"
    model = fit(TrainConfig(train=str(small_split / "train")), ModelConfig(rank=6, n_iter=3), EngineConfig()).model
    model.item_matrix_[[3, 70]] = 0.0  # as items without training ratings are: no list of their own, in none
    save_model(model, str(out))
    return out


@pytest.mark.parametrize("engine", ["inprocess", "shm", pytest.param("dask", marks=pytest.mark.dask)])
def test_similar_items_lists_equal_the_model_api_on_every_engine(model_dir, tmp_path, engine):
    model = load_model(str(model_dir))
    out = str(tmp_path / "similar")
    marker = run_similar_items(SimilarItemsConfig(model=str(model_dir), out=out, k=4, block_items=30),
                               EngineConfig(name=engine, workers=2))
    has_factors = np.abs(model.item_matrix_[:, :-1]).sum(axis=1) > 0
    assert marker["items"] == int(has_factors.sum()) < len(model.item_ids_)  # some items have no factors
    got = read_recommendations(out).sort_values(["item_id", "rank"], ignore_index=True)
    expected_items, expected_scores = model.similar_items(model.item_ids_[has_factors], k=4)
    assert sorted(set(got.item_id)) == sorted(model.item_ids_[has_factors])
    for item, items, scores in zip(model.item_ids_[has_factors], expected_items, expected_scores):
        rows = got[got.item_id == item]
        assert rows.similar_item_id.tolist() == items.tolist()
        np.testing.assert_allclose(rows.score.to_numpy(), scores, rtol=1e-6)
    assert not (got.item_id == got.similar_item_id).any()
    assert not set(got.similar_item_id) & set(model.item_ids_[~has_factors])
    assert got.title.notna().all()


def test_similar_items_for_listed_items_and_an_unknown_one_named(model_dir, tmp_path):
    model = load_model(str(model_dir))
    listed = model.item_ids_[[5, 1, 5]]
    (tmp_path / "items.csv").write_text("item_id\n" + "\n".join(map(str, listed)) + "\n")
    out = str(tmp_path / "similar")
    marker = run_similar_items(SimilarItemsConfig(model=str(model_dir), out=out, k=3, items=str(tmp_path / "items.csv")))
    got = read_recommendations(out)
    assert marker["items"] == 2 and sorted(set(got.item_id)) == sorted(set(listed))
    (tmp_path / "bad.csv").write_text("item_id\n1\n987654321\n")
    with pytest.raises(DataError, match="987654321.*not in the model"):
        run_similar_items(SimilarItemsConfig(model=str(model_dir), out=out, k=3, items=str(tmp_path / "bad.csv")))
    pd.testing.assert_frame_equal(read_recommendations(out), got)  # the failed run left the output as it was
