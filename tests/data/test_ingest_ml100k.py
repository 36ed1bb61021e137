"""The real MovieLens 100K archive."""

import numpy as np
import pytest

from recsys_dist.data.dataset import Dataset

pytestmark = pytest.mark.realdata


def test_ingest_ml100k_counts_are_exact(ml100k_dataset):
    ds = Dataset.open(ml100k_dataset)
    assert (ds.n_ratings, ds.n_users, ds.n_items) == (100_000, 943, 1682)
    assert ds.manifest["source"]["format"] == "ml-100k"
    assert ds.manifest["rating_scale"] == {"min": 1.0, "max": 5.0, "step": 1.0}
    assert ds.manifest["counts"]["duplicates_dropped"] == 0
    r = ds.read_all()
    assert len(r) == 100_000
    assert r.user_idx.dtype == np.int32 and r.item_idx.dtype == np.int32
    assert r.rating.dtype == np.float32 and r.timestamp.dtype == np.int64
    assert abs(r.rating.mean() - 3.52986) < 1e-5


def test_ingest_ml100k_items_carry_titles_years_and_genres(ml100k_dataset):
    items = Dataset.open(ml100k_dataset).read_items().set_index("item_id")
    assert items.loc[1, "title"] == "Toy Story (1995)" and items.loc[1, "year"] == 1995
    assert list(items.loc[1, "genres"]) == ["Animation", "Children's", "Comedy"]
    assert items.loc[543, "title"] == "Misérables, Les (1995)"  # latin-1 in the archive
    assert list(items.loc[267, "genres"]) == ["unknown"]
    assert items["genres"].map(len).min() >= 1
    assert items["title"].notna().all()


def test_ingest_ml100k_ids_round_trip_against_the_raw_file(ml100k_dataset, ml100k_zip):
    import zipfile

    raw = np.loadtxt(zipfile.ZipFile(ml100k_zip).open("ml-100k/u.data"), dtype=np.int64)
    ds = Dataset.open(ml100k_dataset)
    users, items = ds.user_index(), ds.item_index()
    r = ds.read_all()
    got = np.column_stack([users.to_raw(r.user_idx), items.to_raw(r.item_idx), r.rating.astype(np.int64), r.timestamp])
    want = raw[np.lexsort((raw[:, 1], raw[:, 0]))]
    got = got[np.lexsort((got[:, 1], got[:, 0]))]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(users.to_index(users.ids), np.arange(943))


def test_ingest_ml100k_blocks_hold_contiguous_user_ranges_sorted(ml100k_dataset):
    ds = Dataset.open(ml100k_dataset)
    assert ds.n_blocks > 1
    for block, r in ds.iter_blocks():
        lo, hi = ds.manifest["blocks"][block]["user_range"]
        assert r.user_idx.min() >= lo and r.user_idx.max() < hi
        key = r.user_idx.astype(np.int64) * ds.n_items + r.item_idx
        assert np.all(np.diff(key) > 0)
    part = ds.read_user_range(100, 300)
    assert set(np.unique(part.user_idx)) == set(range(100, 300))


def test_ingest_ml100k_manifest_checksums_detect_corruption(ml100k_dataset, tmp_path):
    import shutil

    from recsys_dist.errors import DataError

    copy = tmp_path / "copy"
    shutil.copytree(ml100k_dataset, copy)
    Dataset.open(copy).verify()
    target = copy / "items.parquet"
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DataError, match="items.parquet: checksum mismatch"):
        Dataset.open(copy).verify()
