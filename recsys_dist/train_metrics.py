"""The rating metrics of a training run: RMSE and MAE of a model in the driver's memory, or of a sharded one
from per-block sums reduced where its rows live, on the training, test and cold ratings."""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys_dist.als import block_errors, error_metrics
from recsys_dist.blocking import block_bounds
from recsys_dist.data.dataset import Dataset, Ratings, is_dataset, sibling_url
from recsys_dist.evaluate import calibration, rating_metrics
from recsys_dist.model import ALSModel
from recsys_dist.train_blocks import load_rating_side


def clip_range(mu: float, kind: str, config: dict, scale: tuple[float, float]) -> tuple[float, float] | None:
    """The range ``ALSModel.predict_idx`` clips this model's predictions to, or None."""
    empty = np.zeros((0, 1), np.float32)
    clips = ALSModel(kind, mu, empty, empty, np.zeros(0), np.zeros(0), config, rating_scale_=scale).clips
    return tuple(scale) if clips else None


def reduced_test_rmse(ex: Any, mu: float, kind: str, config: dict, scale: tuple[float, float]) -> float:
    """The test RMSE ``ALSModel.predict_idx`` would give, reduced from per-block sums where the rows live."""
    params = (mu, clip_range(mu, kind, config, scale))
    return error_metrics(ex.map_blocks("test", block_errors, "item", "user", params))["rmse"]


def block_metrics(ex: Any, train: Dataset, test_url: str, mu: float, kind: str, config: dict,
                   scale: tuple[float, float], user_blocks: int) -> dict[str, Any]:
    """``model_metrics`` of a sharded model, from per-block sums where its rows live (the training ratings are
    the user blocks; the test ones were loaded as side ``test``; cold ones are loaded now, as side ``cold``)."""
    params = (mu, clip_range(mu, kind, config, scale))
    sums = {"train": ex.map_blocks("user", block_errors, "item", "user", params)}
    if test_url:
        sums["test"] = ex.map_blocks("test", block_errors, "item", "user", params)
        cold_url = sibling_url(test_url, "cold")
        if is_dataset(cold_url):
            load_rating_side(ex, "cold", cold_url, block_bounds(train.n_users, user_blocks))
            sums["cold"] = ex.map_blocks("cold", block_errors, "item", "user", params)
            sums["test_with_cold"] = sums["test"] + sums["cold"]
    return {name: error_metrics(found) for name, found in sums.items()}


def model_metrics(model: ALSModel, train: Dataset, test_url: str) -> dict[str, Any]:
    """RMSE, MAE and n of a model in memory on its training ratings and on the test ratings, and, when the
    split moved test ratings to cold/ (users or items without training ratings, scored by the bias fallback),
    on those and on test and cold together."""
    found = {"train": evaluate_on(model, train.read_all())}
    if test_url:
        test = Dataset.open(test_url).read_all()
        found["test"] = evaluate_on(model, test)
        cold_url = sibling_url(test_url, "cold")
        if is_dataset(cold_url):
            cold = Dataset.open(cold_url).read_all()
            found["cold"] = evaluate_on(model, cold)
            found["test_with_cold"] = evaluate_on(model, Ratings.concat([test, cold]))
    return found


def evaluate_on(model: ALSModel, ratings: Ratings) -> dict[str, float | int]:
    """RMSE and MAE of ``model`` on ratings indexed like its training data (bpmf: and its calibration)."""
    predicted = model.predict_idx(ratings.user_idx, ratings.item_idx)
    metrics = rating_metrics(predicted, ratings.rating)
    if model.posterior is not None:
        metrics["calibration"] = calibration(predicted, model.predict_std_idx(ratings.user_idx, ratings.item_idx),
                                             ratings.rating)
    return metrics
