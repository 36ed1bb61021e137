"""Batch scoring: complete, equal to the model API, and published atomically."""

import uuid

import numpy as np
import pandas as pd
import pytest

from recsys_dist import scoring
from recsys_dist.scoring import run_scoring
from recsys_dist.checkpoint import load_model
from recsys_dist.config import EngineConfig, ModelConfig, ScoreConfig, TrainConfig
from recsys_dist.data import recommendations
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.recommendations import read_recommendations
from recsys_dist.errors import DataError
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def model_dir(small_split, tmp_path_factory):
    from recsys_dist.checkpoint import save_model
    from recsys_dist.train import fit

    out = tmp_path_factory.mktemp("model") / "m"
    result = fit(TrainConfig(train=str(small_split / "train")), ModelConfig(rank=6, n_iter=3), EngineConfig())
    save_model(result.model, str(out))
    return out


def test_score_writes_every_users_top_k_equal_to_the_model_api(model_dir, small_split, tmp_path):
    out = tmp_path / "recs"
    proc = run_cli("score", "--model", str(model_dir), "--out", str(out), "--k", "7", "--set", "score.block_users=70")
    assert proc.returncode == 0, proc.stderr
    recs = read_recommendations(str(out))
    model = load_model(str(model_dir))
    assert len(recs) == 7 * len(model.user_ids_) and set(recs.columns) == {"user_id", "rank", "item_id", "score", "title"}
    assert len(list(out.glob("run-*/user_block=*/part-0.parquet"))) == -(-len(model.user_ids_) // 70)
    train = Dataset.open(small_split / "train").read_all()
    for user in model.user_ids_[[0, 57, 299]]:
        seen = model.item_ids_[train.item_idx[train.user_idx == model.user_index(np.array([user]))[0]]]
        want, scores = model.recommend([user], k=7, exclude=[seen])
        got = recs[recs.user_id == user].sort_values("rank")
        assert got.item_id.tolist() == want[0].tolist() and got["rank"].tolist() == list(range(1, 8))
        np.testing.assert_allclose(got.score, scores[0], rtol=1e-6)
        assert not set(got.item_id) & set(seen.tolist())
    assert recs.title.str.startswith("Synthetic Movie").all()


def test_score_failed_run_leaves_the_previous_output(model_dir, tmp_path, monkeypatch):
    out = str(tmp_path / "recs")
    run_scoring(ScoreConfig(model=str(model_dir), out=out, k=3, block_users=100))
    before = read_recommendations(out)
    marker_before = (tmp_path / "recs" / "_SUCCESS").read_text()
    original = recommendations.write_part
    calls = []

    def failing(target, block, frame):  # the second block task's write fails
        calls.append(block)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(target, block, frame)

    monkeypatch.setattr(scoring, "write_part", failing)
    with pytest.raises(OSError, match="disk full"):
        run_scoring(ScoreConfig(model=str(model_dir), out=out, k=5, block_users=100))
    assert (tmp_path / "recs" / "_SUCCESS").read_text() == marker_before
    pd.testing.assert_frame_equal(read_recommendations(out), before)
    assert len(list((tmp_path / "recs").glob("run-*"))) == 1  # the failed run removed its parts


def test_score_killed_run_leftovers_are_ignored_then_cleaned(model_dir, tmp_path):
    out = tmp_path / "recs"
    run_scoring(ScoreConfig(model=str(model_dir), out=str(out), k=2))
    (out / "run-killed" / "user_block=00000").mkdir(parents=True)  # what a SIGKILLed run leaves
    (out / "run-killed" / "user_block=00000" / "part-0.parquet").write_bytes(b"half a file")
    assert len(read_recommendations(str(out))) == 2 * 300
    run_scoring(ScoreConfig(model=str(model_dir), out=str(out), k=4))
    assert not (out / "run-killed").exists() and len(read_recommendations(str(out))) == 4 * 300


def test_score_to_memory_url_and_a_listed_subset_of_users(model_dir, tmp_path):
    (tmp_path / "users.csv").write_text("user_id\n1\n5\n99999\n")
    url = f"memory://recs/{uuid.uuid4().hex}"
    marker = run_scoring(ScoreConfig(model=str(model_dir), out=url, k=3, users=str(tmp_path / "users.csv")))
    recs = read_recommendations(url)
    assert sorted(set(recs.user_id)) == [1, 5, 99999] and marker["unknown_users"] == 1
    with pytest.raises(DataError, match="no _SUCCESS"):
        read_recommendations(f"memory://recs/{uuid.uuid4().hex}")


@pytest.mark.parametrize("engine", [EngineConfig(name="shm", workers=2),
                                    pytest.param(EngineConfig(name="dask", workers=2), marks=pytest.mark.dask)],
                         ids=["shm", "dask"])
def test_score_gives_the_same_recommendations_on_every_engine(model_dir, tmp_path, engine):
    reference, other = str(tmp_path / "a"), str(tmp_path / "b")
    run_scoring(ScoreConfig(model=str(model_dir), out=reference, k=10, block_users=50))
    run_scoring(ScoreConfig(model=str(model_dir), out=other, k=10, block_users=50), engine)
    key = ["user_id", "rank"]
    a = read_recommendations(reference).sort_values(key, ignore_index=True)
    b = read_recommendations(other).sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(a, b)


def test_score_filters_by_genre_popularity_and_lists(model_dir, small_split, tmp_path):
    from recsys_dist.config import FilterConfig

    train = Dataset.open(small_split / "train")
    items = train.read_items()
    genre = train.manifest["genres"][0]
    counts = train.item_counts()
    (tmp_path / "deny.txt").write_text("\n".join(str(i) for i in items.item_id[:20]) + "\n")
    rules = FilterConfig(genres=[genre.upper()], min_ratings=int(np.median(counts)), deny=str(tmp_path / "deny.txt"))
    run_scoring(ScoreConfig(model=str(model_dir), out=str(tmp_path / "r"), k=5), rules=rules)
    recs = read_recommendations(str(tmp_path / "r"))
    passing = {iid for iid, gs, n in zip(items.item_id, items.genres, counts)
               if genre in gs and n >= np.median(counts)} - set(items.item_id[:20])
    model = load_model(str(model_dir))
    r = train.read_all()
    left = [len(passing - set(model.item_ids_[r.item_idx[r.user_idx == u]].tolist())) for u in range(300)]
    assert set(recs.item_id) <= passing and len(recs) == sum(min(5, n) for n in left) > 4 * 300
    user = model.user_ids_[11]
    seen = model.item_ids_[train.read_user_range(11, 12).item_idx]
    want, _ = model.recommend([user], k=5, exclude=[seen], items=np.array(sorted(passing)))
    assert recs[recs.user_id == user].sort_values("rank").item_id.tolist() == want[0].tolist()
    with pytest.raises(DataError, match="Nonesuch not in .*its genres: "):
        run_scoring(ScoreConfig(model=str(model_dir), out=str(tmp_path / "x"), k=5),
                    rules=FilterConfig(genres=["Nonesuch"]))


def test_score_refuses_another_folds_training_data(small_split, tmp_path):
    """Two splits of one dataset share id maps and sizes; only the fingerprint tells them apart."""
    from recsys_dist.config import SplitConfig
    from recsys_dist.data.split import split
    from tests.conftest import run_cli

    other = tmp_path / "other"
    split(SplitConfig(data=str(small_split.parent / "ds"), out=str(other), test_fraction=0.2, seed=7))
    train = run_cli("train", "--train", "train", "--out", str(tmp_path / "m"), "--iterations", "2",
                    cwd=small_split)  # a relative path, recorded as an absolute one
    assert train.returncode == 0, train.stderr
    wrong = run_cli("score", "--model", str(tmp_path / "m"), "--train", str(other / "train"), "--out", str(tmp_path / "s"))
    assert wrong.returncode == 1 and "not the data" in wrong.stderr and str(small_split / "train") in wrong.stderr
    # the recorded location is absolute: the model works from any directory
    ok = run_cli("score", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "s"), cwd=other)
    assert ok.returncode == 0, ok.stderr


def test_score_a_bad_id_in_the_users_file_names_its_line(model_dir, tmp_path):
    (tmp_path / "users.csv").write_text("user_id\n1\n\n5\nx7\n")
    with pytest.raises(DataError, match=r"users.csv line 5: user id 'x7' is not an integer"):
        run_scoring(ScoreConfig(model=str(model_dir), out=str(tmp_path / "o"), k=3, users=str(tmp_path / "users.csv")))
    assert not (tmp_path / "o").exists()


def test_score_an_id_list_can_come_from_a_pipe(tmp_path):
    import os
    import threading

    from recsys_dist.data.recommendations import read_ids

    fifo = tmp_path / "ids"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("item_id\n50\n181\n"))
    writer.start()
    try:
        assert read_ids(str(fifo), True, "item").tolist() == [50, 181]
    finally:
        writer.join()


@pytest.mark.dask
def test_score_on_dask_reads_a_block_written_model_and_writes_its_parts_on_the_workers(small_split, tmp_path,
                                                                                        monkeypatch):
    """A model saved block by block, scored on a 2-worker cluster: the lists the in-process engine gives, each
    part written where its block lives (the client gets back records, not frames) and no factor row, not even
    a block's, ever in the client."""
    import contextlib

    from recsys_dist.executors.dask import DaskExecutor
    from recsys_dist.train import fit
    from tests.test_dask_sharding import _arrays_reachable_from

    dask = EngineConfig(name="dask", workers=2)
    model = tmp_path / "model"
    fit(TrainConfig(train=str(small_split / "train")), ModelConfig(rank=6, n_iter=3), dask, save_to=str(model),
        in_memory=False)
    reference = str(tmp_path / "reference")
    run_scoring(ScoreConfig(model=str(model), out=reference, k=5, block_users=40))

    held, returned, real = [], [], scoring.make_executor

    @contextlib.contextmanager
    def watched(engine):
        with real(engine) as ex:
            mapped = ex.map_blocks

            def map_blocks(*args):
                results = mapped(*args)
                returned.extend(results)
                return results

            ex.map_blocks = map_blocks
            yield ex
            held.extend(_arrays_reachable_from(ex))

    def refuse(self, name):
        raise AssertionError(f"the client fetched {name}")

    monkeypatch.setattr(scoring, "make_executor", watched)
    monkeypatch.setattr(DaskExecutor, "fetch", refuse)
    out = str(tmp_path / "recs")
    marker = run_scoring(ScoreConfig(model=str(model), out=out, k=5, block_users=40), dask)
    key = ["user_id", "rank"]
    pd.testing.assert_frame_equal(read_recommendations(out).sort_values(key, ignore_index=True),
                                  read_recommendations(reference).sort_values(key, ignore_index=True))
    assert marker["users"] == Dataset.open(str(small_split / "train")).n_users
    assert returned and all(isinstance(r["part"], dict) for r in returned)
    assert [a.shape for a in held if a.ndim == 2 and a.shape[1] == 6 + 1] == []
