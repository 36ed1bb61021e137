"""The report job: one self-contained HTML file (structure, embedded images, no external URL), and
the dataset profile's reductions against whole-data answers."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from recsys_dist.data.dataset import Dataset
from recsys_dist.report.profile import power_law_exponent, top_share
from tests.conftest import run_cli

pytest.importorskip("matplotlib", reason="the report extra is not installed")


class _Structure(HTMLParser):
    """Sections, images and every URL-bearing attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections, self.images, self.urls, self.tags = [], [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs["src"])
        self.urls += [v for k, v in attrs.items() if k in ("src", "href") and v]


def _parse(path) -> _Structure:
    page = _Structure()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def three_models(small_split, tmp_path_factory):
    """Bias-only, explicit ALS and implicit ALS (a ranking model) trained by the train job."""
    root = tmp_path_factory.mktemp("models")
    train, test = str(small_split / "train"), str(small_split / "test")
    for name, args in (("bias", ["--model", "bias"]), ("als", ["--rank", "6", "--iterations", "4"]),
                       ("ranking", ["--model", "implicit_als", "--rank", "6", "--iterations", "3"])):
        proc = run_cli("train", "--train", train, "--test", test, "--out", str(root / name), "--quiet", *args)
        assert proc.returncode == 0, proc.stderr
    return [root / name for name in ("bias", "als", "ranking")]


def test_report_three_models_is_one_self_contained_file(three_models, small_split, tmp_path):
    out, figures = tmp_path / "report.html", tmp_path / "figures"
    proc = run_cli("report", "--data", str(small_split / "train"), "--model", *map(str, three_models),
                   "--out", str(out), "--figures", str(figures))
    assert proc.returncode == 0, proc.stderr
    assert f"report -> {out}" in proc.stdout
    page = _parse(out)
    assert page.sections == ["dataset", "model-1", "model-2", "model-3", "comparison"]
    assert len(page.images) >= 20 and all(src.startswith("data:image/png;base64,") for src in page.images)
    for src in page.images:  # each one a whole PNG
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[-8:-4] == b"IEND"
    assert all(u.startswith(("data:", "#")) for u in page.urls), [u for u in page.urls if not u.startswith("data:")]
    assert not {"script", "link", "iframe"} & page.tags  # nothing to fetch, nothing to run
    assert out.stat().st_size < 10_000_000
    text = out.read_text()
    for heading in ("Dataset profile", "Convergence", "Popularity bias", "Item factors", "Example users", "Comparison"):
        assert heading in text
    # the figures directory holds each embedded plot in the three formats
    names = {p.stem for p in figures.iterdir()}
    assert len(names) == len(page.images)
    assert {p.suffix for p in figures.iterdir()} == {".png", ".svg", ".pdf"}


def test_report_needs_data_or_a_model_and_names_the_flags(tmp_path):
    proc = run_cli("report", "--out", str(tmp_path / "r.html"))
    assert proc.returncode == 1
    assert "--data" in proc.stderr and "--model" in proc.stderr and "Traceback" not in proc.stderr
    bad = run_cli("report", "--model", str(tmp_path), "--out", str(tmp_path / "r.html"))
    assert bad.returncode == 1 and "not a saved model" in bad.stderr


def test_report_profile_reductions_equal_the_whole_data(small_split):
    from recsys_dist.report.profile import profile_dataset

    ds = Dataset.open(small_split / "train")
    assert ds.n_blocks > 1  # a reduction over several partitions
    p = profile_dataset(ds)
    whole = ds.read_all()
    assert p["ratings"] == len(whole)
    assert np.array_equal(p["user_counts"], np.bincount(whole.user_idx, minlength=ds.n_users))
    assert np.array_equal(p["item_counts"], np.bincount(whole.item_idx, minlength=ds.n_items))
    values, counts = np.unique(whole.rating, return_counts=True)
    assert p["rating_values"] == values.tolist() and p["rating_counts"] == counts.tolist()
    months = whole.timestamp.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)
    assert sum(p["month_counts"]) == len(whole) and p["months"] == np.unique(months).tolist()
    assert p["genres"] and sum(p["genre_items"]) == int(np.trace(p["genre_cooccurrence"]))


def test_report_power_law_exponent_and_long_tail_known_answers():
    rng = np.random.default_rng(0)
    counts = rng.zipf(2.5, 200_000)  # p(x) ~ x^-2.5
    assert power_law_exponent(counts, x_min=5) == pytest.approx(2.5, abs=0.1)
    assert top_share(np.array([70, 10, 10, 5, 5, 0]), 0.2) == pytest.approx(0.7)  # the top 1 of 5 rated items


@pytest.mark.realdata
def test_report_profile_of_real_ml100k(ml100k_dataset):
    from recsys_dist.report.profile import profile_dataset

    p = profile_dataset(Dataset.open(ml100k_dataset))
    assert (p["ratings"], p["users"], p["items"]) == (100_000, 943, 1682)
    assert p["rating_values"] == [1.0, 2.0, 3.0, 4.0, 5.0] and sum(p["rating_counts"]) == 100_000
    assert str(np.datetime64(p["months"][0], "M")) == "1997-09" and str(np.datetime64(p["months"][-1], "M")) == "1998-04"
    assert len(p["genres"]) == 19 and p["genre_items"][p["genres"].index("Drama")] == 725
    assert 0.6 < p["top_item_share"] < 0.7


def test_report_run_writes_its_report(tmp_path):
    proc = run_cli("run", "--out", str(tmp_path / "run"), "--quiet", "--set", "synth.shape=custom",
                   "--set", "synth.n_users=120", "--set", "synth.n_items=80", "--set", "synth.n_ratings=3000",
                   "--set", "model.n_iter=2")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^report -> .*report\.html", proc.stdout, re.M), proc.stdout
    page = _parse(tmp_path / "run" / "report.html")
    assert page.sections == ["dataset", "model-1"] and page.images


def test_report_of_a_tune_search_has_its_leaderboard_and_scores_per_parameter(small_split, tmp_path):
    pytest.importorskip("optuna")
    space = tmp_path / "space.toml"
    space.write_text("[model.rank]\nchoices = [1, 4]\n[model.reg]\nlow = 0.05\nhigh = 1.0\nlog = true\n")
    assert run_cli("tune", "--data", str(small_split / "train"), "--space", str(space), "--trials", "4", "--cv",
                   "kfold:2", "--iterations", "4", "--pruner", "none", "--out", str(tmp_path / "t")).returncode == 0
    out = tmp_path / "r.html"
    proc = run_cli("report", "--tune", str(tmp_path / "t"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    page = _parse(out)
    assert page.sections == ["tuning"] and len(page.images) == 1
    text = out.read_text()
    assert "Hyperparameter search" in text and "mean rmse" in text and text.count("<tr>") == 1 + 4  # 4 trials
    bad = run_cli("report", "--tune", str(tmp_path), "--out", str(out))
    assert bad.returncode == 1 and "no tune.json there" in bad.stderr


def test_report_convergence_of_a_gibbs_chain_plots_its_noise_precision_without_warnings():
    import warnings

    from recsys_dist.report import figures

    history = [{"iteration": i, "noise_precision": 1.5 + 0.1 * (i % 2), "train_rmse": 0.8, "test_rmse": 0.9}
               for i in range(1, 6)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty legend warned for bpmf models before
        fig = figures.convergence({"history": history, "label": "bpmf"})
    left = fig.axes[0]
    assert [list(line.get_ydata()) for line in left.get_lines()] == [[r["noise_precision"] for r in history]]
    assert "Gibbs" in left.get_title()
