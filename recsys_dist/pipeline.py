"""The main job: data (generated or ingested) -> split, under one output directory.

Later stages (train, evaluate, score) join here as they land.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from recsys_dist.config import JobConfig
from recsys_dist.data.ingest import ingest
from recsys_dist.data.split import split
from recsys_dist.data.synth_output import synth


def run_pipeline(cfg: JobConfig) -> dict[str, Any]:
    """Run every stage into ``cfg.run.out``; return each stage's summary by name."""
    out = Path(cfg.run.out)
    dataset, split_dir = out / "dataset", out / "split"
    results: dict[str, Any] = {}
    if cfg.run.source == "synth":
        results["synth"] = synth(dataclasses.replace(cfg.synth, out=str(dataset), format="dataset"))
    else:
        results["ingest"] = ingest(dataclasses.replace(cfg.ingest, source=cfg.run.source, out=str(dataset)))
    results["split"] = split(dataclasses.replace(cfg.split, data=str(dataset), out=str(split_dir)))
    return results
