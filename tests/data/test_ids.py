"""One id lookup for datasets, models and jobs: an id is found whatever form it is spelled in."""

import numpy as np
import pytest

from recsys_dist.data.ids import IdIndex
from recsys_dist.model import ALSModel


def _model(user_ids, item_ids):
    rng = np.random.default_rng(0)
    return ALSModel("als", 3.0, rng.normal(size=(len(user_ids), 3)).astype(np.float32),
                    rng.normal(size=(len(item_ids), 3)).astype(np.float32), user_ids, item_ids)


@pytest.mark.parametrize("ids", [np.array([3, 42, 1000], np.int64), np.array(["3", "42", "1000"], dtype=object)])
@pytest.mark.parametrize("raw", [np.array([42, 7]), np.array(["42", "7"], dtype=object), np.array([42.0, 7.0])],
                         ids=["int", "str", "float"])
def test_ids_model_and_dataset_lookups_agree_for_any_spelling(ids, raw):
    want = [1, -1]
    np.testing.assert_array_equal(IdIndex(ids).to_index(raw), want)
    model = _model(ids, ids)
    np.testing.assert_array_equal(model.user_index(raw), want)
    np.testing.assert_array_equal(model.item_index(raw), want)


def test_ids_int_id_against_a_string_id_model_is_known_through_the_model():
    model = _model(np.array(["7", "42"], dtype=object), np.array(["a", "b", "c"], dtype=object))
    ids, _ = model.recommend(np.array([42]), k=2)
    assert ids.shape == (1, 2)
    np.testing.assert_allclose(model.predict(np.array([42]), np.array(["b"])),
                               model.predict(np.array(["42"]), np.array(["b"])))
    assert model.user_index(np.array([42]))[0] == 1


@pytest.mark.parametrize("bad", [np.array(["x42"], dtype=object), np.array([4.5])])
def test_ids_a_value_that_cannot_be_an_integer_id_is_an_error_not_unknown(bad):
    model = _model(np.array([3, 42], np.int64), np.array([1, 2], np.int64))
    with pytest.raises(TypeError, match="integer ids expected"):
        model.user_index(bad)
    with pytest.raises(TypeError, match="integer ids expected"):
        IdIndex(np.array([3, 42])).to_index(bad)
