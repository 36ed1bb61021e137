"""What the report says about one trained model: its convergence history, metrics, error by
activity and popularity bucket, ranking metrics at several K, the popularity bias of its
recommendations, a 2-D map of its item factors and example users with explanations. Numbers
only: ``figures`` draws them and ``explore`` shows them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recsys_dist.batch import run_evaluation, training_data
from recsys_dist.checkpoint import load_model, read_json, read_json_lines
from recsys_dist.config import RANKING_KINDS, EvaluateConfig, RecommendConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.errors import RecsysError
from recsys_dist.model import ALSModel
from recsys_dist.user_jobs import run_recommend

KS = [1, 5, 10, 20, 50]  # ranking cut-offs the report plots
BUCKET_EDGES = [1, 10, 25, 50, 100, 250, 500]  # training ratings per user or item; the last bucket is open
BIAS_USERS = 1000  # users whose top-K the popularity-bias figures are computed from
BIAS_K = 10
MAP_ITEMS = 1500  # the most-rated items drawn on the factor map


def model_label(url: str, model: ALSModel) -> str:
    rank = f", rank {model.n_factors}" if model.n_factors else ""
    path = Path(str(url).rstrip("/"))
    name = path.name if path.name != "model" else f"{path.parent.name}/{path.name}"  # run's RUN/model
    return f"{name} ({model.kind}{rank})"


def summarize_model(url: str, evaluations: list[dict[str, Any]], examples: int = 3) -> dict[str, Any]:
    """Everything the report shows for the model directory ``url``; ``evaluations`` are the
    metrics.json of evaluate runs (those of this model are used for its ranking metrics)."""
    model = load_model(url)
    saved = read_json(url, "metrics.json") or {}
    train = training_data(model, url, "")
    history = saved.get("iterations") or read_json_lines(url, "train_log.jsonl")
    test_url = (saved.get("config", {}).get("train", {}) or {}).get("test", "")
    s: dict[str, Any] = {"url": str(url), "label": model_label(url, model), "kind": model.kind,
                         "n_factors": model.n_factors, "settings": model.config.get("model", {}),
                         "history": history, "setup_seconds": saved.get("setup_seconds"),
                         "rating": {k: saved[k] for k in ("train", "test", "cold", "test_with_cold") if k in saved},
                         "test_data": test_url}
    s["ranking"] = _ranking(url, model, saved, evaluations, test_url)
    if test_url and model.kind not in RANKING_KINDS:
        s["buckets"] = bucket_errors(model, Dataset.open(test_url))
    s["bias"] = popularity_bias(model, train)
    s["item_map"] = item_map(model, train)
    s["examples"] = example_users(url, model, examples)
    s["embeddings"] = learned_embeddings(model)
    return s


def learned_embeddings(model: ALSModel) -> dict[str, list[tuple[str, float, list[str]]]]:
    """genre_als: each learned genre's (and demographic feature's) bias and nearest neighbours by cosine."""
    from recsys_dist.models.genre_als import nearest_features

    return {title: nearest_features(model.config[key]) for key, title in
            (("genre_embedding", "genre"), ("demographic_embedding", "demographic feature")) if model.config.get(key)}


def _ranking(url: str, model: ALSModel, saved: dict[str, Any], evaluations: list[dict[str, Any]],
             test_url: str) -> dict[str, Any] | None:
    """The model's ranking metrics: from a given evaluation of it, else computed at KS on its test data."""
    mine = [e for e in evaluations if _same(e.get("model", ""), url)]
    if mine and len(mine[0]["ranking"].get("at", {})) > 1:
        return mine[0]["ranking"]
    if not test_url:
        return mine[0]["ranking"] if mine else saved.get("test_ranking")
    return run_evaluation(EvaluateConfig(model=str(url), data=[test_url], k=KS))["ranking"]


def _same(a: str, b: str) -> bool:
    return str(Path(a).resolve()) == str(Path(b).resolve()) if "://" not in a + b else a.rstrip("/") == b.rstrip("/")


def bucket_errors(model: ALSModel, test: Dataset) -> dict[str, Any]:
    """Test RMSE by the training ratings of the rating's user and of its item (BUCKET_EDGES)."""
    ratings = test.read_all()
    users = model.user_index(test.user_index().to_raw(ratings.user_idx))
    items = model.item_index(test.item_index().to_raw(ratings.item_idx))
    error = (model.predict_idx(users, items) - ratings.rating) ** 2
    out: dict[str, Any] = {"edges": BUCKET_EDGES}
    for side, idx, counts in (("user", users, model.user_counts_), ("item", items, model.item_counts_)):
        n = np.where(idx >= 0, counts[np.maximum(idx, 0)], 0) if counts is not None else np.zeros(len(idx), int)
        bucket = np.searchsorted(BUCKET_EDGES, n, side="right") - 1  # -1: no training ratings (cold)
        rmse, size = [], []
        for b in range(len(BUCKET_EDGES)):
            hit = bucket == b
            size.append(int(hit.sum()))
            rmse.append(float(np.sqrt(error[hit].mean())) if hit.any() else float("nan"))
        out[side] = {"rmse": rmse, "n": size}
    return out


def bucket_labels(edges: list[int]) -> list[str]:
    return [f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])] + [f"{edges[-1]}+"]


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of how often each item is recommended (0: all equally, 1: one item only)."""
    x = np.sort(np.asarray(counts, np.float64))
    if not len(x) or x.sum() == 0:
        return float("nan")
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def popularity_bias(model: ALSModel, train: Dataset) -> dict[str, Any]:
    """Coverage, Gini and mean popularity of the top-BIAS_K of the first BIAS_USERS users with
    training ratings (their own training items excluded), against the catalogue's."""
    hi = min(train.n_users, BIAS_USERS)
    rated = train.read_user_range(0, hi)
    counts = model.item_counts_ if model.item_counts_ is not None else train.item_counts()
    users = np.flatnonzero(np.bincount(rated.user_idx, minlength=hi) > 0)
    starts = np.searchsorted(rated.user_idx, users)
    ends = np.searchsorted(rated.user_idx, users, side="right")
    exclude = [model.item_ids_[rated.item_idx[a:b]] for a, b in zip(starts, ends)]
    ids, _ = model.recommend(model.user_ids_[users], BIAS_K, exclude)
    idx = model.item_index(ids.ravel())
    idx = idx[idx >= 0]
    shown = np.bincount(idx, minlength=len(model.item_ids_))
    rated_items = counts > 0
    return {"users": int(len(users)), "k": BIAS_K, "coverage": float((shown > 0).sum() / max(rated_items.sum(), 1)),
            "gini": gini(shown[rated_items]), "mean_popularity": float(counts[idx].mean()) if len(idx) else float("nan"),
            "catalogue_popularity": float(counts[rated_items].mean()),
            "recommended_popularity": counts[idx].astype(np.int64), "catalogue_counts": counts[rated_items]}


def item_map(model: ALSModel, train: Dataset) -> dict[str, Any] | None:
    """The MAP_ITEMS most-rated items' factors projected on their two principal axes, with each
    item's main genre (its rarest, so Drama and Comedy do not colour everything) and title."""
    if model.n_factors < 2 or model.item_counts_ is None:
        return None
    top = np.argsort(-model.item_counts_, kind="stable")[:MAP_ITEMS]
    top = top[model.item_counts_[top] > 0]
    x = model.item_factors_[top].astype(np.float64)
    x -= x.mean(0)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T
    frame = train.read_items().set_index("item_idx").reindex(range(len(model.item_ids_)))
    titles = frame["title"].to_numpy(dtype=object)
    genre_lists = [list(g) if isinstance(g, (list, np.ndarray)) else [] for g in frame["genres"]]
    freq: dict[str, int] = {}
    for g in genre_lists:
        for name in g:
            freq[name] = freq.get(name, 0) + 1
    main = [min(genre_lists[i], key=lambda g: freq[g]) if genre_lists[i] else "(none)" for i in top]
    explained = (sv[:2] ** 2).sum() / max((sv ** 2).sum(), 1e-12)
    return {"xy": xy, "genre": main, "title": [titles[i] if isinstance(titles[i], str) else None for i in top],
            "count": model.item_counts_[top], "explained": float(explained)}


def example_users(url: str, model: ALSModel, n: int) -> list[dict[str, Any]]:
    """Top-5 with reasons for ``n`` users: a light, a median and a heavy rater."""
    if model.user_counts_ is None or n <= 0:
        return []
    known = np.flatnonzero(model.user_counts_ > 0)
    order = known[np.argsort(model.user_counts_[known], kind="stable")]
    picks = sorted({int(order[int(q * (len(order) - 1))]) for q in np.linspace(0.1, 0.95, n)})
    out = []
    for i in picks:
        try:
            out.append(run_recommend(RecommendConfig(model=str(url), user=str(model.user_ids_[i]), k=5, explain=2)))
        except RecsysError as exc:  # e.g. string ids typed as text: show why instead of failing the report
            out.append({"user": str(model.user_ids_[i]), "error": str(exc), "items": []})
    return out
