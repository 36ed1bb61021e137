"""Synthetic data: deterministic, MovieLens-shaped, and identical through raw files + ingest."""

import numpy as np
import pytest

from recsys_dist.config import IngestConfig, SynthConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.ingest import ingest
from recsys_dist.data.synth import generate, resolve_shape
from recsys_dist.data.synth_output import synth
from recsys_dist.errors import ConfigError

SMALL = dict(shape="custom", n_users=300, n_items=1000, n_ratings=20_000)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    synth(SynthConfig(**SMALL, out=str(out), partitions=3))
    return Dataset.open(out)


def test_synth_shape_counts_are_exact(small_dataset):
    ds = small_dataset
    assert (ds.n_users, ds.n_items, ds.n_ratings) == (300, 1000, 20_000)
    r = ds.read_all()
    per_user = np.bincount(r.user_idx, minlength=300)
    per_item = np.bincount(r.item_idx, minlength=1000)
    assert per_user.min() >= 20 and per_item.min() >= 1
    assert per_user.max() > 4 * np.median(per_user)  # heavy-tailed activity
    assert per_item.max() > 5 * np.median(per_item)  # heavy-tailed popularity
    keys = r.user_idx.astype(np.int64) * 1000 + r.item_idx
    assert len(np.unique(keys)) == len(keys)


def test_synth_ratings_follow_the_planted_model(small_dataset):
    ds = small_dataset
    r = ds.read_all()
    assert set(np.unique(r.rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert 3.0 < r.rating.mean() < 4.2
    floor = ds.manifest["planted_rmse"]
    assert 0.4 < floor < 0.7  # noise 0.5 plus rounding to whole stars
    items = ds.read_items()
    assert items.genres.map(len).between(1, 3).all() and items.title.str.contains("Synthetic Movie").all()
    assert (r.timestamp > 7e8).all()


def test_synth_is_deterministic_by_seed_and_independent_of_blocks(tmp_path):
    a = synth(SynthConfig(**SMALL, out=str(tmp_path / "a"), partitions=1))
    b = synth(SynthConfig(**SMALL, out=str(tmp_path / "b"), partitions=5))
    c = synth(SynthConfig(**SMALL, out=str(tmp_path / "c"), seed=1))
    ra, rb, rc = (Dataset.open(tmp_path / n).read_all() for n in "abc")
    for field in ("user_idx", "item_idx", "rating", "timestamp"):
        np.testing.assert_array_equal(getattr(ra, field), getattr(rb, field))
    assert not np.array_equal(ra.rating, rc.rating[: len(ra.rating)]) or len(ra) != len(rc)
    assert a["planted_rmse"] == pytest.approx(b["planted_rmse"]) and c["counts"]["ratings"] == 20_000


@pytest.mark.parametrize("fmt, stars", [("ml-csv", "half"), ("ml-100k", "whole"), ("ml-1m", "whole")])
def test_synth_raw_files_ingest_to_the_same_dataset(tmp_path, fmt, stars):
    synth(SynthConfig(**{**SMALL, "stars": stars}, out=str(tmp_path / "direct")))
    synth(SynthConfig(**{**SMALL, "stars": stars}, out=str(tmp_path / "raw"), format=fmt))
    m = ingest(IngestConfig(source=str(tmp_path / "raw"), out=str(tmp_path / "ingested")))
    assert m["source"]["format"] == fmt
    direct, ingested = Dataset.open(tmp_path / "direct"), Dataset.open(tmp_path / "ingested")
    a, b = direct.read_all(), ingested.read_all()
    for field in ("user_idx", "item_idx", "rating", "timestamp"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    ia, ib = direct.read_items(), ingested.read_items()
    assert ia.item_id.tolist() == ib.item_id.tolist() and ia.title.tolist() == ib.title.tolist()
    if fmt != "ml-100k":  # u.item renames "Children" per u.genre; the rest keep genre names
        assert [list(g) for g in ia.genres] == [list(g) for g in ib.genres]


def test_synth_named_shapes_have_the_real_counts():
    assert resolve_shape(SynthConfig(shape="ml-25m"))[:3] == (162_541, 59_047, 25_000_095)
    assert resolve_shape(SynthConfig(shape="ml-32m"))[:3] == (200_948, 84_432, 32_000_204)
    planted = generate(SynthConfig(shape="ml-100k"))
    assert (planted.n_users, planted.n_items, planted.n_ratings) == (943, 1682, 100_000)


@pytest.mark.parametrize("override, key", [({"n_ratings": 100}, "synth.n_ratings"), ({"min_user_ratings": 1500}, "synth.min_user_ratings")])
def test_synth_impossible_shapes_are_rejected(override, key):
    with pytest.raises(ConfigError, match=key):
        resolve_shape(SynthConfig(**{**SMALL, **override}))
