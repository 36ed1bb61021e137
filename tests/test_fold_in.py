"""Fold-in: a user's row is the full solver's row; on real ml-100k it matches a retrain."""

import numpy as np
import pandas as pd
import pytest

from recsys_dist.als import solve_block
from recsys_dist.checkpoint import load_model, save_model
from recsys_dist.config import EngineConfig, IngestConfig, ModelConfig, TrainConfig
from recsys_dist.data.blocks import load_user_block
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.ingest import ingest
from recsys_dist.evaluate import rating_metrics
from recsys_dist.train import fit
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def trained(small_split):
    return fit(TrainConfig(train=str(small_split / "train")), ModelConfig(rank=5, n_iter=4, reg=0.08, bias_reg=0.3),
               EngineConfig()).model


def test_fold_in_of_known_users_equals_the_full_solver_row(trained, small_split):
    url = str(small_split / "train")
    block = load_user_block(url, 0, 0, len(trained.user_ids_))
    m = trained.config["model"]
    want, _ = solve_block(block, trained.item_matrix_, None, trained.mu_, m["reg"], m["bias_reg"], True, 0, 0)
    r = Dataset.open(url).read_all()
    chosen = np.isin(r.user_idx, [3, 77, 250])
    folded = trained.fold_in(trained.user_ids_[r.user_idx[chosen]], trained.item_ids_[r.item_idx[chosen]],
                             r.rating[chosen])
    np.testing.assert_array_equal(folded.user_matrix_[[3, 77, 250]], want[[3, 77, 250]])
    untouched = np.setdiff1d(np.arange(len(trained.user_ids_)), [3, 77, 250])
    np.testing.assert_array_equal(folded.user_matrix_[untouched], trained.user_matrix_[untouched])


def test_fold_in_adds_new_users_in_id_order_and_ignores_unknown_items(trained):
    new_ids = np.array([100_000, 100_000, 100_000, -5, -5])
    items = trained.item_ids_[[0, 1, 2, 3, 4]].copy()
    items[4] = 999_999  # not in the model: ignored
    folded = trained.fold_in(new_ids, items, np.array([5.0, 4.0, 1.0, 3.0, 2.0]))
    assert len(folded.user_ids_) == len(trained.user_ids_) + 2
    assert np.all(np.diff(folded.user_ids_) > 0)
    np.testing.assert_array_equal(folded.predict(trained.user_ids_[:5], items[:5]),
                                  trained.predict(trained.user_ids_[:5], items[:5]))
    # the user who liked items 0 and 1 and disliked 2 is predicted in that order
    p = folded.predict(np.full(3, 100_000), items[:3])
    assert p[0] > p[2] and p[1] > p[2]
    assert np.isfinite(folded.predict(np.array([-5]), items[:1])).all()


def test_fold_in_job_writes_an_updated_model_and_leaves_the_input(trained, tmp_path):
    save_model(trained, str(tmp_path / "m"))
    (tmp_path / "new.csv").write_text(f"user_id,item_id,rating\n777777,{trained.item_ids_[0]},5\n"
                                      f"777777,{trained.item_ids_[1]},2\n")
    proc = run_cli("fold-in", "--model", str(tmp_path / "m"), "--ratings", str(tmp_path / "new.csv"),
                   "--out", str(tmp_path / "m2"))
    assert proc.returncode == 0, proc.stderr
    assert "2 ratings" in proc.stdout and "1 users (1 new)" in proc.stdout
    assert 777777 in load_model(str(tmp_path / "m2")).user_ids_
    assert 777777 not in load_model(str(tmp_path / "m")).user_ids_
    (tmp_path / "bad.csv").write_text("user_id,item_id,rating\n1,2,five\n")
    bad = run_cli("fold-in", "--model", str(tmp_path / "m"), "--ratings", str(tmp_path / "bad.csv"),
                  "--out", str(tmp_path / "m3"))
    assert bad.returncode == 1 and "bad.csv" in bad.stderr and "line 2" in bad.stderr


ML100K = ModelConfig(rank=64, reg=0.12, bias_reg=0.1, n_iter=20, solver="cholesky")


def _ingest_frame(frame: pd.DataFrame, path, out) -> str:
    frame.to_csv(path, index=False)
    ingest(IngestConfig(source=str(path), out=str(out)))
    return str(out)


def test_fold_in_50_held_out_ml100k_users_is_within_2_percent_of_a_retrain(ml100k_dataset, tmp_path):
    ds = Dataset.open(ml100k_dataset)
    r = ds.read_all()
    frame = pd.DataFrame({"user_id": ds.user_index().to_raw(r.user_idx), "item_id": ds.item_index().to_raw(r.item_idx),
                          "rating": r.rating, "timestamp": r.timestamp})
    held = np.random.default_rng(0).choice(frame.user_id.unique(), 50, replace=False)
    mine = frame.user_id.isin(held)
    # each held-out user's latest 20% of ratings is their test set, the rest what they bring to fold in
    order = frame[mine].groupby("user_id").timestamp.rank(method="first", pct=True)
    test = frame[mine][order > 0.8]
    history = frame[mine][order <= 0.8]
    without = _ingest_frame(frame[~mine], tmp_path / "a.csv", tmp_path / "without")
    with_history = _ingest_frame(pd.concat([frame[~mine], history]), tmp_path / "b.csv", tmp_path / "with")
    base = fit(TrainConfig(train=without), ML100K, EngineConfig()).model
    retrained = fit(TrainConfig(train=with_history), ML100K, EngineConfig()).model
    folded = base.fold_in(history.user_id.to_numpy(), history.item_id.to_numpy(), history.rating.to_numpy())
    truth = test.rating.to_numpy()
    rmse_fold = rating_metrics(folded.predict(test.user_id.to_numpy(), test.item_id.to_numpy()), truth)["rmse"]
    rmse_retrain = rating_metrics(retrained.predict(test.user_id.to_numpy(), test.item_id.to_numpy()), truth)["rmse"]
    print(f"50 held-out users, {len(test)} test ratings: fold-in RMSE {rmse_fold:.4f}, retrain {rmse_retrain:.4f}")
    assert abs(rmse_fold - rmse_retrain) <= 0.02 * rmse_retrain


def test_fold_in_reads_ratings_in_any_ingest_format(trained, small_split, tmp_path):
    from recsys_dist.checkpoint import save_model

    save_model(trained, str(tmp_path / "m"))
    item = trained.item_ids_[0]
    (tmp_path / "r.tsv").write_text(f"userId\tmovieId\trating\n90001\t{item}\t5\n")
    plain = run_cli("fold-in", "--model", str(tmp_path / "m"), "--ratings", str(tmp_path / "r.tsv"), "--out",
                    str(tmp_path / "f"))
    assert plain.returncode == 1 and "--user-col" in plain.stderr  # says how to describe the file
    told = run_cli("fold-in", "--model", str(tmp_path / "m"), "--ratings", str(tmp_path / "r.tsv"), "--out",
                   str(tmp_path / "f"), "--format", "csv", "--user-col", "userId", "--item-col", "movieId",
                   "--delimiter", "\t")
    assert told.returncode == 0, told.stderr
    assert 90001 in load_model(str(tmp_path / "f")).user_ids_


@pytest.mark.realdata
def test_fold_in_at_rank_64_with_the_default_solver_is_within_the_readme_tolerance(ml100k_dataset, ml100k_zip,
                                                                                    tmp_path):
    """README "fold-in": with the default solver training's user half-step is 3 CG steps from the user's row and
    fold-in the exact solve they converge to; from a trained model's rows the two give predictions
    within 0.005 on every training rating, and fold-in is the Cholesky half-step bit for bit."""
    import dataclasses

    from recsys_dist.config import SplitConfig
    from recsys_dist.data.split import split

    split(SplitConfig(data=str(ml100k_dataset), out=str(tmp_path / "u1"), method="folds", fold="u1",
                      archive=str(ml100k_zip)))
    url = str(tmp_path / "u1" / "train")
    cfg = dataclasses.replace(ML100K, solver="auto")  # conf/ml-100k.toml with the default solver
    assert cfg.effective_solver() == "cg" and cfg.rank == 64
    model = fit(TrainConfig(train=url), cfg, EngineConfig()).model
    m = model.config["model"]
    block = load_user_block(url, 0, 0, len(model.user_ids_))
    assert np.diff(block.indptr).max() > 64  # rows longer than one gather chunk
    args = (model.mu_, m["reg"], m["bias_reg"], True, 0)
    half_step, _ = solve_block(block, model.item_matrix_, model.user_matrix_, *args, m["cg_steps"])
    cholesky, _ = solve_block(block, model.item_matrix_, None, *args, 0)
    r = Dataset.open(url).read_all()
    folded = model.fold_in(model.user_ids_[r.user_idx], model.item_ids_[r.item_idx], r.rating)
    np.testing.assert_array_equal(folded.user_matrix_, cholesky)

    def predictions(rows):
        return model.mu_ + rows[r.user_idx, -1] + model.item_matrix_[r.item_idx, -1] + np.einsum(
            "ij,ij->i", rows[r.user_idx, :-1].astype(np.float64), model.item_matrix_[r.item_idx, :-1])

    gap = np.abs(predictions(folded.user_matrix_) - predictions(half_step))
    print(f"rank 64, CG half-step vs fold-in on {len(gap)} training ratings: max {gap.max():.2g}, "
          f"rms {np.sqrt(np.mean(gap ** 2)):.2g}")
    assert gap.max() <= 0.005
