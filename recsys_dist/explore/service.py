"""What the explorer shows, without any user interface: title search, a user's history and
recommendations with reasons, a new user's recommendations through fold-in, similar movies and the
saved metrics. Recommendations are the ``recommend`` job's own (``user_jobs.run_recommend``), so the
app and the command line always agree; a new user's ratings go through its ``--fold-in`` file."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_dist.batch import training_data
from recsys_dist.checkpoint import load_model, read_json, read_json_lines
from recsys_dist.config import FilterConfig, IngestConfig, RecommendConfig
from recsys_dist.errors import DataError
from recsys_dist.user_jobs import run_recommend


class Explorer:
    """One model directory (and its training data) opened for the app."""

    def __init__(self, model_url: str, data_url: str = "") -> None:
        self.model_url, self.model = model_url, load_model(model_url)
        self.train = training_data(self.model, model_url, "")
        self.data_url = data_url or self.train.url
        frame = self.train.read_items().set_index("item_idx").reindex(range(len(self.model.item_ids_)))
        counts = self.model.item_counts_ if self.model.item_counts_ is not None else self.train.item_counts()
        missing = pd.Series([None] * len(frame), index=frame.index, dtype=object)
        titles = frame["title"] if "title" in frame else missing
        genres = frame["genres"] if "genres" in frame else missing
        self.items = pd.DataFrame({
            "item_id": self.model.item_ids_, "title": titles.to_numpy(dtype=object),
            "genres": [", ".join(g) if isinstance(g, (list, np.ndarray)) else "" for g in genres], "ratings": counts})
        self.has_titles = bool(self.items["title"].notna().any())
        self.genres = sorted({g for text in self.items["genres"] for g in text.split(", ") if g})
        self.metrics = read_json(model_url, "metrics.json") or {}
        self.history = self.metrics.get("iterations") or read_json_lines(model_url, "train_log.jsonl")
        # run's layout (RUN/model beside RUN/evaluation): its ranking metrics, for a rating model too
        sibling = f"{str(model_url).rstrip('/').rsplit('/', 1)[0]}/evaluation"
        self.evaluation = read_json(sibling, "metrics.json") if "/" in str(model_url).rstrip("/") else None

    def search(self, query: str, limit: int = 20) -> pd.DataFrame:
        """Items whose title contains ``query`` (any case), most rated first; by item id when the
        model has no titles. Empty for an empty query."""
        query = query.strip()
        if not query:
            return self.items.iloc[:0]
        if self.has_titles:
            hit = self.items["title"].fillna("").str.contains(query, case=False, regex=False)
        else:
            hit = self.items["item_id"].astype(str) == query
        return self.items[hit].sort_values("ratings", ascending=False, kind="stable").head(limit)

    def title(self, item_id: Any) -> str:
        row = self.items[self.items["item_id"] == item_id]
        if row.empty:
            return str(item_id)
        return row["title"].iloc[0] or str(item_id)

    def user_history(self, user: str) -> pd.DataFrame:
        """The user's training ratings with titles, highest first; DataError for an unknown user."""
        index = self._user_index(user)
        r = self.train.read_user_range(index, index + 1)
        out = self.items.iloc[r.item_idx].assign(rating=r.rating.astype(float))
        return out[["item_id", "title", "genres", "rating"]].sort_values("rating", ascending=False, kind="stable")

    def recommend(self, user: str, k: int = 10, genres: list[str] | None = None, min_ratings: int = 0,
                  fold_in: str = "") -> dict[str, Any]:
        if not fold_in:  # a clear message for an unknown user (a new one is folded in first)
            self._user_index(user)
        rules = FilterConfig(genres=list(genres or []), min_ratings=int(min_ratings))
        return run_recommend(RecommendConfig(model=self.model_url, user=str(user), k=k, explain=3, fold_in=fold_in),
                             rules, IngestConfig(format="csv"))

    def recommend_new_user(self, ratings: dict[Any, float], k: int = 10, genres: list[str] | None = None,
                           min_ratings: int = 0) -> dict[str, Any]:
        """Top-K for a new user from their ratings (item id -> stars), through fold-in: no retraining."""
        if not ratings:
            raise DataError("rate at least one movie first")
        user = self.new_user_id()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "new_user.csv"
            path.write_text("user_id,item_id,rating\n" + "".join(f"{user},{i},{r:g}\n" for i, r in ratings.items()))
            return self.recommend(str(user), k, genres, min_ratings, fold_in=str(path))

    def new_user_id(self) -> Any:
        ids = self.model.user_ids_
        return int(ids.max()) + 1 if ids.dtype.kind in "iu" and len(ids) else "new-user"

    def similar(self, item_id: Any, k: int = 10) -> pd.DataFrame:
        if self.model.n_factors == 0:
            raise DataError(f"a {self.model.kind} model has no item factors: no similar items")
        found, scores = self.model.similar_items(np.array([item_id]), k)
        rows = self.items.set_index("item_id").loc[found[0][found[0] != -1]].reset_index()
        return rows.assign(similarity=scores[0][: len(rows)])[["item_id", "title", "genres", "ratings", "similarity"]]

    def _user_index(self, user: str) -> int:
        text = str(user).strip()
        if not text:
            raise DataError("enter a user id")
        ids = self.model.user_ids_
        try:
            value: Any = int(text) if ids.dtype.kind in "iu" else text
        except ValueError:
            raise DataError(f"user id {text!r}: this model's user ids are integers") from None
        index = int(self.model.user_index(np.array([value]))[0])
        if index < 0 or self.model.is_cold(np.array([index]))[0]:
            raise DataError(f"unknown user {text!r}: not among the model's {len(ids)} users with training ratings "
                            f"(ids {ids[0]} to {ids[-1]})")
        return index
