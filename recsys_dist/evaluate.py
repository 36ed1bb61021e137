"""Rating metrics over arrays (pure)."""

from __future__ import annotations

import numpy as np


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    if not len(actual):
        return float("nan")
    return float(np.sqrt(np.mean((predicted.astype(np.float64) - actual) ** 2)))


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    if not len(actual):
        return float("nan")
    return float(np.mean(np.abs(predicted.astype(np.float64) - actual)))


def rating_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float | int]:
    return {"rmse": rmse(predicted, actual), "mae": mae(predicted, actual), "n": int(len(actual))}
