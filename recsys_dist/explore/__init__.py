"""The ``explore`` job: a Streamlit app on a trained model (the optional ``explore`` extra).

``serve`` runs Streamlit's server in this process with the app script ``app.py``; the script reads
which model to show from ``SETTINGS`` here (same process, same module), so nothing passes through
argv or the environment, and Streamlit's ``AppTest`` drives the same script the same way."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

INSTALL_HINT = 'pip install "recsys_dist[explore]"'
APP = str(Path(__file__).with_name("app.py"))
SETTINGS: dict[str, Any] = {"model": "", "data": ""}


def available() -> bool:
    """Whether streamlit and matplotlib (the profile page's plots) are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("streamlit", "matplotlib"))


def serve(model: str, data: str, address: str, port: int) -> None:
    """Serve the app on ``address:port`` until interrupted: offline (no usage statistics, no browser
    opened, no file watcher), bound to 127.0.0.1 unless told otherwise."""
    from streamlit.web import bootstrap

    SETTINGS.update(model=model, data=data)
    options = {"server.address": address, "server.port": port, "server.headless": True,
               "server.fileWatcherType": "none", "browser.gatherUsageStats": False, "global.developmentMode": False,
               "server.runOnSave": False, "client.toolbarMode": "viewer"}  # no "Deploy" button
    bootstrap.load_config_options(flag_options=options)
    bootstrap.run(APP, False, [], options)
