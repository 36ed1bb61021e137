"""The ``report`` job: one self-contained HTML file of the dataset profile, each model and their
comparison. Plotting needs the optional ``report`` extra (matplotlib); nothing outside this package
and ``explore`` imports it, so the main job and training never need it."""

from __future__ import annotations

import importlib.util

INSTALL_HINT = 'pip install "recsys_dist[report]"'


def available() -> bool:
    """Whether matplotlib, the report's one extra dependency, is installed."""
    return importlib.util.find_spec("matplotlib") is not None
