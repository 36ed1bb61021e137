"""What a search leaves behind: the results table (a row per trial and fold), the leaderboard and best.toml."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def results_table(trials: list[Any]) -> pd.DataFrame:  # noqa: ANN401 - optuna FrozenTrials
    """One row per trial and fold: every parameter, every metric, iterations, seconds, pruned; failed
    trials one row with their error."""
    rows = []
    for trial in trials:
        state = trial.state.name.lower()
        folds = trial.user_attrs.get("folds") or [{"trial": trial.number, **trial.params}]
        for row in folds:
            rows.append({**row, "state": state, "error": trial.user_attrs.get("error", "")})
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values(["trial", "fold"] if "fold" in table else ["trial"], kind="stable")
    return table.reset_index(drop=True)


def leaderboard(table: pd.DataFrame, metric: str, direction: str) -> pd.DataFrame:
    """Completed trials, best first: the metric's mean and standard deviation over folds, and the parameters."""
    if table.empty or metric not in table:
        return pd.DataFrame()
    done = table[table["state"] == "complete"]
    params = [c for c in table.columns if c.startswith("model.")]
    board = done.groupby("trial").agg(**{"mean": (metric, "mean"), "std": (metric, "std"), "folds": (metric, "size"),
                                         "seconds": ("seconds", "sum"), **{p: (p, "first") for p in params}})
    board = board.sort_values("mean", ascending=direction == "minimize", kind="stable")
    return board.reset_index()


def write_best_toml(path: str, model_cfg: Any, metric: str, value: float, cv: str, out: str) -> None:  # noqa: ANN401
    lines = [f"# the best configuration of the search in {out}: {metric} {value:.4f} ({cv})",
             "# train it with: python -m recsys_dist train --config THIS_FILE --train DATA --out MODEL", "", "[model]"]
    for key, value_ in dataclasses.asdict(model_cfg).items():
        lines.append(f"{key} = {_toml_value(value_)}")
    Path(path).write_text("\n".join(lines) + "\n")


def plain(value: Any) -> Any:  # noqa: ANN401 - numpy scalars to Python ones
    return value.item() if isinstance(value, np.generic) else value


def _toml_value(value: Any) -> str:  # noqa: ANN401
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))
