"""Splits: disjoint, complete, reproducible; each method's rule; cold rows kept apart."""

import dataclasses
import json

import numpy as np
import pytest

from recsys_dist.config import SplitConfig, SynthConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.split import split
from recsys_dist.data.synth_output import synth
from recsys_dist.errors import DataError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("split") / "ds"
    synth(SynthConfig(shape="custom", n_users=400, n_items=300, n_ratings=20_000, partitions=4, out=str(out)))
    return out


def _keys(path):
    r = Dataset.open(path).read_all()
    return r.user_idx.astype(np.int64) << 32 | r.item_idx.astype(np.int64), r


def _parts(out):
    parts = {name: _keys(out / name) for name in ("train", "test", "cold") if (out / name).exists()}
    return {k: v[0] for k, v in parts.items()}, {k: v[1] for k, v in parts.items()}


def _check_partition(out, dataset):
    keys, _ = _parts(out)
    whole, _ = _keys(dataset)
    joined = np.concatenate(list(keys.values()))
    assert len(joined) == len(whole) and set(joined.tolist()) == set(whole.tolist())  # complete and disjoint
    return keys


@pytest.mark.parametrize("method, extra", [("random", {}), ("temporal", {}), ("last-k", {"k": 2}),
                                           ("kfold", {"fold": "1", "n_folds": 4})])
def test_split_is_disjoint_complete_and_reproducible(tmp_path, dataset, method, extra):
    cfg = SplitConfig(data=str(dataset), out=str(tmp_path / "a"), method=method, **extra)
    summary = split(cfg)
    keys = _check_partition(tmp_path / "a", dataset)
    split(dataclasses.replace(cfg, out=str(tmp_path / "b")))
    again, _ = _parts(tmp_path / "b")
    for name in keys:
        np.testing.assert_array_equal(keys[name], again[name])
    on_disk = json.loads((tmp_path / "a" / "split.json").read_text())
    assert on_disk["counts"] == summary["counts"]
    assert summary["counts"]["train"] + summary["counts"]["test"] + summary["counts"]["cold"] == 20_000


def test_split_random_fraction_and_seed(tmp_path, dataset):
    a = split(SplitConfig(data=str(dataset), out=str(tmp_path / "a"), test_fraction=0.25, seed=1))["counts"]
    b = split(SplitConfig(data=str(dataset), out=str(tmp_path / "b"), test_fraction=0.25, seed=2))["counts"]
    for counts in (a, b):
        assert abs((counts["test"] + counts["cold"]) / 20_000 - 0.25) < 0.015
    assert _parts(tmp_path / "a")[0]["test"].tolist() != _parts(tmp_path / "b")[0]["test"].tolist()


def test_split_temporal_cutoff_separates_times(tmp_path, dataset):
    split(SplitConfig(data=str(dataset), out=str(tmp_path / "t"), method="temporal", test_fraction=0.3))
    _, rows = _parts(tmp_path / "t")
    test_times = np.concatenate([rows[n].timestamp for n in ("test", "cold") if n in rows])
    assert rows["train"].timestamp.max() < test_times.min()
    assert abs(len(test_times) / 20_000 - 0.3) < 0.01
    split(SplitConfig(data=str(dataset), out=str(tmp_path / "c"), method="temporal", cutoff="2010-06-01"))
    _, rows = _parts(tmp_path / "c")
    assert rows["train"].timestamp.max() < 1275350400 <= rows["test"].timestamp.min()


def test_split_last_k_holds_out_each_users_latest(tmp_path, dataset):
    split(SplitConfig(data=str(dataset), out=str(tmp_path / "l"), method="last-k", k=3))
    _, rows = _parts(tmp_path / "l")
    train, test = rows["train"], rows["test"]
    held = np.concatenate([test.user_idx, rows["cold"].user_idx]) if "cold" in rows else test.user_idx
    assert np.all(np.bincount(held, minlength=400) == 3)  # every synthetic user has >= 20 ratings
    latest_train = np.full(400, -1)
    np.maximum.at(latest_train, train.user_idx, train.timestamp)
    assert np.all(test.timestamp >= latest_train[test.user_idx])


def test_split_kfold_folds_tile_the_data_and_stratify_users(tmp_path, dataset):
    tests = []
    total = np.bincount(Dataset.open(dataset).read_all().user_idx, minlength=400)
    for fold in range(5):
        split(SplitConfig(data=str(dataset), out=str(tmp_path / f"f{fold}"), method="kfold", fold=str(fold)))
        keys, rows = _parts(tmp_path / f"f{fold}")
        tests.append(np.concatenate([keys[n] for n in ("test", "cold") if n in keys]))
        held = np.concatenate([rows[n].user_idx for n in ("test", "cold") if n in rows])
        assert np.all(np.abs(np.bincount(held, minlength=400) - total / 5) < 1)  # each user split evenly
    joined = np.concatenate(tests)
    assert len(joined) == 20_000 and len(np.unique(joined)) == 20_000


def test_split_cold_rows_go_to_cold_and_are_counted(tmp_path, dataset):
    summary = split(SplitConfig(data=str(dataset), out=str(tmp_path / "t"), method="temporal", cutoff="2020-01-01"))
    _, rows = _parts(tmp_path / "t")
    train = rows["train"]
    trained_users, trained_items = set(train.user_idx.tolist()), set(train.item_idx.tolist())
    assert all(u in trained_users and i in trained_items for u, i in zip(rows["test"].user_idx, rows["test"].item_idx))
    cold = rows["cold"]
    assert all(u not in trained_users or i not in trained_items for u, i in zip(cold.user_idx, cold.item_idx))
    assert summary["counts"]["cold"] == len(cold) > 0
    assert summary["counts"]["cold_users"] == len(set(cold.user_idx.tolist()) - trained_users)


def test_split_parts_share_the_parent_id_maps_and_blocks(tmp_path, dataset):
    split(SplitConfig(data=str(dataset), out=str(tmp_path / "s")))
    parent = Dataset.open(dataset)
    for name in ("train", "test"):
        part = Dataset.open(tmp_path / "s" / name)
        assert (part.n_users, part.n_items, part.n_blocks) == (parent.n_users, parent.n_items, parent.n_blocks)
        assert part.manifest["files"]["users.parquet"] == parent.manifest["files"]["users.parquet"]
        assert part.manifest["split"]["method"] == "random"


@pytest.mark.realdata
@pytest.mark.parametrize("fold", ["u1", "ub"])
def test_split_official_ml100k_folds(tmp_path, ml100k_dataset, ml100k_zip, fold):
    import zipfile

    summary = split(SplitConfig(data=str(ml100k_dataset), out=str(tmp_path / fold), method="folds", fold=fold))
    test_lines = zipfile.ZipFile(ml100k_zip).read(f"ml-100k/{fold}.test").count(b"\n")
    base_lines = zipfile.ZipFile(ml100k_zip).read(f"ml-100k/{fold}.base").count(b"\n")
    c = summary["counts"]
    assert c["train"] == base_lines and c["test"] + c["cold"] == test_lines
    _check_partition(tmp_path / fold, ml100k_dataset)


@pytest.mark.realdata
def test_split_predefined_files_with_original_ids(tmp_path, ml100k_dataset):
    (tmp_path / "train.csv").write_text("userId,movieId,rating,timestamp\n1,1,5,10\n1,2,3,11\n2,1,4,12\n")
    (tmp_path / "test.tsv").write_text("2\t2\t1\t13\n")
    summary = split(SplitConfig(data=str(ml100k_dataset), out=str(tmp_path / "p"), method="predefined",
                                train_file=str(tmp_path / "train.csv"), test_file=str(tmp_path / "test.tsv")))
    assert summary["counts"] == {"train": 3, "test": 1, "cold": 0, "cold_users": 0, "cold_items": 0}
    (tmp_path / "unknown.tsv").write_text("2\t2\t1\t13\n999999\t2\t1\t13\n")
    with pytest.raises(DataError, match=r"unknown.tsv line 2: user 999999 is not in the dataset's id map"):
        split(SplitConfig(data=str(ml100k_dataset), out=str(tmp_path / "q"), method="predefined",
                          train_file=str(tmp_path / "train.csv"), test_file=str(tmp_path / "unknown.tsv")))
    (tmp_path / "leak.tsv").write_text("1\t1\t5\t10\n")
    with pytest.raises(DataError, match="also in the training file"):
        split(SplitConfig(data=str(ml100k_dataset), out=str(tmp_path / "r"), method="predefined",
                          train_file=str(tmp_path / "train.csv"), test_file=str(tmp_path / "leak.tsv")))
    assert not (tmp_path / "q").exists() and not (tmp_path / "r").exists()


@pytest.mark.realdata
def test_split_official_folds_of_a_shorthand_dataset_use_the_cached_archive_offline(tmp_path, ml100k_zip):
    import os
    import shutil
    import subprocess
    import sys

    from tests.conftest import run_cli

    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(ml100k_zip, cache / "ml-100k.zip")
    env = {**os.environ, "RECSYS_DIST_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, "-m", "recsys_dist", "ingest", "--source", "ml-100k", "--out", "ds"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # no cache setting, another directory: the dataset's recorded archive is used, nothing is downloaded
    env.pop("RECSYS_DIST_CACHE")
    env["HOME"] = str(tmp_path / "no-home")
    proc = subprocess.run([sys.executable, "-m", "recsys_dist", "split", "--data", "../ds", "--method", "folds",
                           "--fold", "u3", "--out", "u3"], cwd=elsewhere, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((elsewhere / "u3" / "split.json").read_text())["counts"]["train"] == 80_000
    (cache / "ml-100k.zip").unlink()  # the archive gone: the error names --archive
    proc = run_cli("split", "--data", str(tmp_path / "ds"), "--method", "folds", "--fold", "u3", "--out",
                   str(tmp_path / "u3b"), cwd=elsewhere)
    assert proc.returncode == 1 and "--archive" in proc.stderr, proc.stderr
