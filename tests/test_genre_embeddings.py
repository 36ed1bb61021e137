"""What genre_als learned, shown: each genre's (and demographic feature's) nearest others by cosine of
their embeddings, in the report of a genre_als model trained on real ml-100k."""

from __future__ import annotations

import pytest

from recsys_dist.models.genre_als import nearest_features
from tests.conftest import run_cli


def test_nearest_features_known_answer():
    embedding = {"A": [1.0, 0.0, 0.5], "B": [0.9, 0.1, -0.2], "C": [0.0, 1.0, 0.0], "D": [-1.0, 0.0, 0.1],
                 "E": [0.0, 0.0, 0.3]}  # E: no factors (a genre no rated item carries), so nobody's neighbour
    got = {name: (bias, near) for name, bias, near in nearest_features(embedding, n=2)}
    assert got["A"] == (0.5, ["B", "C"]) and got["C"] == (0.0, ["B", "A"]) and got["D"][1] == ["C", "B"]
    assert got["E"] == (0.3, [])


def test_genre_embeddings_in_the_report_of_an_ml100k_model(ml100k_dataset, tmp_path):
    pytest.importorskip("matplotlib", reason="the report extra is not installed")
    proc = run_cli("train", "--train", str(ml100k_dataset), "--model", "genre_als", "--rank", "16", "--reg", "0.12",
                   "--iterations", "8", "--quiet", "--out", str(tmp_path / "m"))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("report", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "r.html"))
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Learned genre embedding" in page and "Learned demographic feature embedding" in page
    for name in ("Sci-Fi", "Film-Noir", "occupation=programmer", "age_group=56+"):
        assert f"<td>{name}</td>" in page
