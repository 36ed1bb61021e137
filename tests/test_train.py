"""Training: the objective law, recovery of a planted model, baselines, engines, resume, bad configs."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from recsys_dist.checkpoint import load_model
from recsys_dist.config import EngineConfig, JobConfig, ModelConfig, TrainConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.errors import ConfigError
from recsys_dist.train import fit
from recsys_dist.train_metrics import evaluate_on
from tests.conftest import run_cli

INPROCESS = EngineConfig(name="inprocess")


def _fit(split, engine=INPROCESS, **model):
    cfg = ModelConfig(**{"rank": 6, "reg": 0.05, "n_iter": 6, **model})
    return fit(TrainConfig(train=str(split / "train"), test=str(split / "test")), cfg, engine)


@pytest.mark.parametrize("model", [dict(), dict(reg_mode="plain", reg=0.5, bias_reg=0.5), dict(kind="bias", bias_reg=5.0),
                                   dict(rank=12, reg=0.01), dict(solver="cg", cg_steps=2)])
def test_train_objective_never_increases_across_half_steps(small_split, model):
    history = _fit(small_split, **{"n_iter": 8, **model}).history
    steps = [v for h in history for v in (h["objective_after_user"], h["objective_after_item"])]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(steps, steps[1:])), steps


def test_train_recovers_a_planted_low_rank_model_to_its_noise_floor(tmp_path):
    from recsys_dist.config import SplitConfig, SynthConfig
    from recsys_dist.data.split import split
    from recsys_dist.data.synth_output import synth

    m = synth(SynthConfig(shape="custom", n_users=600, n_items=300, n_ratings=60_000, rank=3, noise=0.3,
                          stars="half", out=str(tmp_path / "ds")))
    split(SplitConfig(data=str(tmp_path / "ds"), out=str(tmp_path / "s"), test_fraction=0.1))
    result = _fit(tmp_path / "s", rank=3, reg=0.02, n_iter=15)
    floor = m["planted_rmse"]
    test_rmse = result.history[-1]["test_rmse"]
    assert floor < test_rmse < 1.1 * floor, (floor, test_rmse)


@pytest.mark.realdata
def test_train_bias_only_beats_global_mean_on_ml100k(tmp_path, ml100k_dataset):
    from recsys_dist.config import SplitConfig
    from recsys_dist.data.split import split

    split(SplitConfig(data=str(ml100k_dataset), out=str(tmp_path / "u1"), method="folds", fold="u1"))
    test = Dataset.open(tmp_path / "u1" / "test").read_all()
    scores = {}
    for kind in ("mean", "bias", "als"):
        model = _fit(tmp_path / "u1", kind=kind, rank=20, reg=0.1, bias_reg=5.0 if kind == "bias" else 0.1,
                     n_iter=10).model
        scores[kind] = evaluate_on(model, test)["rmse"]
    assert scores["bias"] < scores["mean"] - 0.08  # about 0.96 against 1.15
    assert scores["als"] < scores["bias"]


def test_train_same_model_for_any_block_count(small_split):
    a = _fit(small_split, EngineConfig(name="inprocess", user_blocks=1, item_blocks=1)).model
    b = _fit(small_split, EngineConfig(name="inprocess", user_blocks=7, item_blocks=3)).model
    np.testing.assert_allclose(a.user_matrix_, b.user_matrix_, atol=1e-4)
    np.testing.assert_allclose(a.item_matrix_, b.item_matrix_, atol=1e-4)


def test_train_resume_after_an_exception_equals_an_uninterrupted_run(small_split, tmp_path):
    whole = _fit(small_split, n_iter=6).model
    out = str(tmp_path / "model")

    def crash_after_three(record):
        if record["iteration"] == 3:
            raise KeyboardInterrupt

    train = TrainConfig(train=str(small_split / "train"), out=out, checkpoint_every=1)
    with pytest.raises(KeyboardInterrupt):
        fit(train, ModelConfig(rank=6, reg=0.05, n_iter=6), INPROCESS, callbacks=(crash_after_three,))
    resumed = fit(TrainConfig(train=str(small_split / "train"), out=out, checkpoint_every=1, resume=True),
                  ModelConfig(rank=6, reg=0.05, n_iter=6), INPROCESS)
    assert [h["iteration"] for h in resumed.history] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(resumed.model.user_matrix_, whole.user_matrix_, atol=1e-4)
    np.testing.assert_allclose(resumed.model.item_matrix_, whole.item_matrix_, atol=1e-4)


def test_train_resume_refuses_a_checkpoint_of_other_settings(small_split, tmp_path):
    from recsys_dist.errors import CheckpointError

    out = str(tmp_path / "m")
    fit(TrainConfig(train=str(small_split / "train"), out=out, checkpoint_every=1), ModelConfig(rank=4, n_iter=2), INPROCESS)
    with pytest.raises(CheckpointError, match="other data or model settings"):
        fit(TrainConfig(train=str(small_split / "train"), out=out, resume=True), ModelConfig(rank=5, n_iter=3), INPROCESS)


def test_train_job_killed_mid_run_and_resumed_equals_an_uninterrupted_run(small_split, tmp_path):
    import json

    args = ["train", "--train", str(small_split / "train"), "--set", "model.rank=24", "--set", "model.reg=0.05",
            "--iterations", "400", "--checkpoint-every", "1"]
    straight = run_cli(*args, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "recsys_dist", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def checkpointed_past_three():  # older checkpoints are pruned, so look for any at or after iteration 3
        done = [p.parent.name for p in (out / "checkpoints").glob("iter-*/state.json")]
        return any(name >= "iter-00003" for name in done)

    deadline = time.monotonic() + 120
    while not checkpointed_past_three():
        assert proc.poll() is None and time.monotonic() < deadline, "job ended before its third checkpoint"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "model.json").exists()
    resumed = run_cli(*args, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after iteration" in resumed.stderr
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    straight_log = (tmp_path / "straight" / "train_log.jsonl").read_text().splitlines()
    assert [r["iteration"] for r in log] == list(range(1, len(straight_log) + 1))  # one line per iteration, none twice
    assert {"objective", "train_rmse", "seconds", "engine", "workers"} <= set(log[-1])
    a, b = load_model(str(tmp_path / "straight")), load_model(str(out))
    np.testing.assert_allclose(a.user_matrix_, b.user_matrix_, atol=1e-4)
    np.testing.assert_allclose(a.item_matrix_, b.item_matrix_, atol=1e-4)


def test_train_job_writes_model_and_metrics(small_split, tmp_path):
    import json

    out = tmp_path / "model"
    proc = run_cli("train", "--train", str(small_split / "train"), "--test", str(small_split / "test"), "--out", str(out),
                   "--iterations", "4")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["iteration"] for h in metrics["iterations"]] == [1, 2, 3, 4]
    assert {"rmse", "mae"} <= set(metrics["train"]) and {"rmse", "mae"} <= set(metrics["test"])
    assert metrics["test"]["rmse"] == pytest.approx(metrics["iterations"][-1]["test_rmse"], rel=1e-6)
    model = load_model(str(out))
    assert model.n_factors == 10 and model.user_matrix_.shape == (300, 11)
    ev = run_cli("evaluate", "--model", str(out), "--data", str(small_split / "test"), "--out", str(tmp_path / "ev"))
    assert ev.returncode == 0, ev.stderr
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["rmse"] == pytest.approx(metrics["test"]["rmse"], rel=1e-6)


@pytest.mark.parametrize("override, key", [({"model": {"rank": 0}}, "model.rank"), ({"model": {"reg": -0.1}}, "model.reg"),
                                           ({"engine": {"name": "spark"}}, "engine.name"),
                                           ({"engine": {"name": "dask", "scheduler": "nowhere"}}, "engine.scheduler")])
def test_train_bad_configs_fail_fast(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        JobConfig.from_mapping(override)


@pytest.mark.dask
def test_train_unreachable_scheduler_fails_within_bounded_time(small_split):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    proc = run_cli("train", "--train", str(small_split / "train"), "--out", "unused", "--engine", "dask",
                   "--scheduler", f"tcp://127.0.0.1:{port}", "--set", "engine.connect_timeout=2", timeout=60)
    assert proc.returncode == 2
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in proc.stderr
    assert time.monotonic() - started < 30


def test_train_finds_the_cold_part_beside_a_test_url(ml100k_dataset, ml100k_zip, tmp_path):
    """file:// URLs: the cold part of SPLITDIR/test is SPLITDIR/cold (Path once made it file:/...)."""
    from recsys_dist.config import JobConfig, ModelConfig, SplitConfig, TrainConfig
    from recsys_dist.data.split import split
    from recsys_dist.pipeline import run_training

    split(SplitConfig(data=str(ml100k_dataset), out=str(tmp_path / "u1"), method="folds", fold="u1",
                      archive=str(ml100k_zip)))
    url = (tmp_path / "u1").as_uri()
    cfg = JobConfig(train=TrainConfig(train=f"{url}/train", test=f"{url}/test", out=str(tmp_path / "m")),
                    model=ModelConfig(rank=4, n_iter=2))
    metrics = run_training(cfg)
    assert metrics["cold"]["n"] == 32 and metrics["test_with_cold"]["n"] == 20_000


def test_train_sigterm_stops_cleanly_and_says_how_to_resume(small_split, tmp_path):
    """What docker stop / kubectl delete send: one line, exit 143, shared memory released, --resume named."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from recsys_dist.executors.shared_memory import PREFIX

    def ours():
        return {n for n in os.listdir("/dev/shm") if n.startswith(PREFIX)} if os.path.isdir("/dev/shm") else set()

    before = ours()
    out = tmp_path / "m"
    proc = subprocess.Popen([sys.executable, "-m", "recsys_dist", "train", "--train", str(small_split / "train"),
                             "--out", str(out), "--engine", "shm", "--iterations", "100000", "--checkpoint-every", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = out / "train_log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)  # the whole group, as a container runtime does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    said = [line for line in err.splitlines() if line.startswith("recsys_dist train:")]
    assert len(said) == 1 and "terminated (SIGTERM); nothing was published" in said[0], err
    assert "--resume continues from" in said[0] and "/checkpoints/iter-" in said[0]
    # (multiprocessing's tracker may still note an already-unlinked queue semaphore of a killed worker)
    assert "Traceback" not in err and "leaked shared_memory" not in err, err
    assert ours() == before
    assert not (out / "model.json").exists() and json.loads(log.read_text().splitlines()[-1])["iteration"] >= 3


def test_train_into_an_earlier_model_without_resume_starts_clean(small_split, tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "m"
    first = run_cli("train", "--train", str(small_split / "train"), "--out", str(out), "--iterations", "4",
                    "--checkpoint-every", "2")
    assert first.returncode == 0 and (out / "checkpoints").exists(), first.stderr
    again = run_cli("train", "--train", str(small_split / "train"), "--out", str(out), "--iterations", "1")
    assert again.returncode == 0 and "removed the earlier run's checkpoints/" in again.stderr, again.stderr
    assert not (out / "checkpoints").exists() and len((out / "train_log.jsonl").read_text().splitlines()) == 1
    refused = run_cli("score", "--model", str(out), "--out", str(small_split / "train"))
    assert refused.returncode == 1 and "is a dataset directory" in refused.stderr


@pytest.mark.realdata
def test_train_predictions_are_clipped_to_the_rating_scale_and_rankings_keep_raw_scores(tmp_path, ml100k_dataset):
    import dataclasses

    from recsys_dist.checkpoint import save_model
    from recsys_dist.config import SplitConfig
    from recsys_dist.data.split import split

    split(SplitConfig(data=str(ml100k_dataset), out=str(tmp_path / "u1"), method="folds", fold="u1"))
    test = Dataset.open(tmp_path / "u1" / "test").read_all()
    model = _fit(tmp_path / "u1", rank=20, reg=0.05, n_iter=8).model
    save_model(model, str(tmp_path / "model"))
    model = load_model(str(tmp_path / "model"))  # the scale is part of the saved model
    raw = dataclasses.replace(model, config={**model.config, "model": {**model.config["model"], "clip": False}})
    users = np.repeat(np.arange(943), 1682)
    items = np.tile(np.arange(1682), 943)
    clipped, unclipped = model.predict_idx(users, items), raw.predict_idx(users, items)
    assert unclipped.max() > 5.0 and unclipped.min() < 1.0  # a real model does overshoot the scale
    assert clipped.min() == 1.0 and clipped.max() == 5.0
    np.testing.assert_array_equal(clipped, np.clip(unclipped, 1.0, 5.0))
    assert evaluate_on(model, test)["rmse"] < evaluate_on(raw, test)["rmse"]
    np.testing.assert_array_equal(model.recommend(np.arange(1, 50), k=10)[0],
                                  raw.recommend(np.arange(1, 50), k=10)[0])
