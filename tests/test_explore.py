"""The explore app through Streamlit's own harness (AppTest): every page, the new-user flow through
fold-in, and clear messages for an unknown id, an empty search and a model without titles."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from recsys_dist.checkpoint import load_model
from tests.conftest import run_cli

pytest.importorskip("streamlit", reason="the explore extra is not installed")
pytest.importorskip("matplotlib", reason="the explore extra is not installed")
from streamlit.testing.v1 import AppTest  # noqa: E402

import recsys_dist.explore as explore  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(small_split, tmp_path_factory):
    out = tmp_path_factory.mktemp("explore") / "als"
    proc = run_cli("train", "--train", str(small_split / "train"), "--test", str(small_split / "test"), "--out",
                   str(out), "--rank", "6", "--iterations", "4", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def untitled_model(tmp_path_factory):
    """A model trained on a bare CSV of ratings: no titles, no genres, no timestamps."""
    root = tmp_path_factory.mktemp("untitled")
    rng = np.random.default_rng(0)
    rows = [f"{u},{i},{rng.integers(1, 6)}" for u in range(60) for i in rng.choice(40, 15, replace=False)]
    (root / "r.csv").write_text("user_id,item_id,rating\n" + "\n".join(rows) + "\n")
    for args in (["ingest", "--source", str(root / "r.csv"), "--format", "csv", "--timestamp-col", "", "--out",
                  str(root / "ds")], ["train", "--train", str(root / "ds"), "--out", str(root / "m"), "--rank", "4"]):
        proc = run_cli(*args, "--quiet")
        assert proc.returncode == 0, proc.stderr
    return root / "m"


def _app(monkeypatch, model) -> AppTest:
    monkeypatch.setitem(explore.SETTINGS, "model", str(model))
    at = AppTest.from_file(explore.APP, default_timeout=120)
    at.run()
    _clean(at)
    return at


def _clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _page(at: AppTest, name: str) -> AppTest:
    at.sidebar.radio(key="page").set_value(name).run()
    _clean(at)
    return at


def test_explore_user_page_recommends_with_reasons_beside_the_history(monkeypatch, model_dir):
    model = load_model(model_dir)
    user = int(model.user_ids_[0])
    at = _app(monkeypatch, model_dir)
    assert "Enter a user id" in at.info[0].value
    at.text_input(key="user_id").input(str(user)).run()
    _clean(at)
    recs, history = at.table[0].value, at.table[1].value
    assert len(recs) == 10 and (recs["because you rated"] != "-").any()
    assert len(history) == min(30, int(model.user_counts_[0]))
    assert not set(recs["title"]) & set(history["title"])  # rated items are never recommended
    genre = recs["genres"].iloc[0].split(", ")[0]
    at.multiselect(key="user_genres").set_value([genre]).run()
    _clean(at)
    assert all(genre in g.split(", ") for g in at.table[0].value["genres"])


def test_explore_unknown_or_malformed_user_gets_a_message(monkeypatch, model_dir):
    at = _app(monkeypatch, model_dir)
    at.text_input(key="user_id").input("987654").run()
    _clean(at)
    assert "unknown user '987654'" in at.error[0].value and not at.table
    at.text_input(key="user_id").input("abc").run()
    _clean(at)
    assert "integers" in at.error[0].value


def test_explore_new_user_rates_three_movies_and_gets_fold_in_recommendations(monkeypatch, model_dir):
    from recsys_dist.explore.service import Explorer

    at = _app(monkeypatch, model_dir)
    _page(at, "New user")
    ex = Explorer(str(model_dir))
    picked = ex.items.sort_values("ratings", ascending=False)["title"].head(3).tolist()
    for title in picked:
        at.text_input(key="new_search").input(title).run()
        at.slider(key="new_stars").set_value(5.0).run()
        at.button(key="add_rating").click().run()
        _clean(at)
    rated, recs = at.table[0].value, at.table[1].value
    assert rated["title"].tolist() == picked and (rated["rating"] == 5.0).all()
    assert len(recs) == 10 and not set(recs["title"]) & set(picked)
    # the same list the recommend job gives for these ratings folded in (no retraining)
    ids = {ex.items.loc[ex.items["title"] == t, "item_id"].iloc[0]: 5.0 for t in picked}
    expected = ex.recommend_new_user(ids, 10)
    assert recs["title"].tolist() == [i["title"] for i in expected["items"]]
    assert (recs["because you rated"] != "-").any()


def test_explore_similar_movies_and_empty_or_unmatched_search(monkeypatch, model_dir):
    at = _page(_app(monkeypatch, model_dir), "Similar movies")
    assert "Type part of a title" in at.info[0].value
    at.text_input(key="similar_search").input("no such film xyz").run()
    _clean(at)
    assert "No movie matches" in at.warning[0].value
    at.text_input(key="similar_search").input("Synthetic Movie 1").run()
    _clean(at)
    table = at.table[0].value
    assert len(table) == 10 and table["similarity"].is_monotonic_decreasing
    chosen = at.selectbox(key="similar_pick").value
    assert chosen not in table.index


def test_explore_dataset_and_metrics_pages(monkeypatch, model_dir, small_split):
    import json

    at = _page(_app(monkeypatch, model_dir), "Dataset profile")
    summary = at.table[0].value
    n = json.loads((small_split / "train" / "manifest.json").read_text())["counts"]["ratings"]
    assert summary.loc["ratings", "value"] == f"{n:,}"
    assert len(at.get("image")) >= 4  # the report's plots
    _page(at, "Model metrics")
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert at.table[0].value.loc["test", "rmse"] == pytest.approx(metrics["test"]["rmse"])
    assert len(at.get("vega_lite_chart")) >= 2  # RMSE and objective per iteration


def test_explore_model_without_titles_is_searched_by_id(monkeypatch, untitled_model):
    at = _app(monkeypatch, untitled_model)
    assert "no titles" in at.sidebar.warning[0].value
    _page(at, "Similar movies")
    at.text_input(key="similar_search").input("nonsense").run()
    _clean(at)
    assert "No movie matches" in at.warning[0].value
    at.text_input(key="similar_search").input("3").run()
    _clean(at)
    assert len(at.table[0].value) == 10
    for page in ("Dataset profile", "Model metrics", "New user"):
        _page(at, page)
        assert not at.error


def test_explore_job_needs_a_model_and_binds_to_localhost(model_dir, tmp_path):
    missing = run_cli("explore")
    assert missing.returncode == 2 and "--model" in missing.stderr
    bad = run_cli("explore", "--model", str(tmp_path))
    assert bad.returncode == 1 and "not a saved model" in bad.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "recsys_dist", "explore", "--model", str(model_dir), "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        import psutil

        listening = []
        for _ in range(600):  # until the server listens (or the process ends)
            if proc.poll() is not None:
                break
            listening = [c.laddr for c in psutil.Process(proc.pid).net_connections() if c.status == "LISTEN"]
            if listening:
                break
            time.sleep(0.1)
        assert listening and all(a.ip == "127.0.0.1" and a.port == port for a in listening), listening
    finally:
        proc.terminate()
        proc.wait(30)
