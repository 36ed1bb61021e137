"""Jobs that chain stages: train (fit, final metrics, save) and the main job
(data -> split -> train -> evaluate -> score) under one output directory."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable


from recsys_dist.batch import run_evaluation
from recsys_dist.scoring import run_scoring
from recsys_dist.checkpoint import clear_training_state, read_json_lines, update_model, write_json, write_json_lines
from recsys_dist.config import RANKING_KINDS, EvaluateConfig, JobConfig
from recsys_dist.data.ingest import ingest
from recsys_dist.data.split import split
from recsys_dist.data.synth_output import synth
from recsys_dist.errors import DataError
from recsys_dist.train import fit


log = logging.getLogger(__name__)
LOG_FILE = "train_log.jsonl"


class IterationLog:
    """Keeps ``train_log.jsonl`` in the model directory: one JSON object per iteration, rewritten after
    each, so a killed job leaves its log up to the last iteration and a resumed one continues it."""

    def __init__(self, out: str, resume: bool) -> None:
        self.out = out
        self.records = read_json_lines(out, LOG_FILE) if resume else []

    def __call__(self, record: dict[str, Any]) -> None:
        self.records = [r for r in self.records if r["iteration"] < record["iteration"]] + [record]
        write_json_lines(self.out, LOG_FILE, self.records)


def run_training(cfg: JobConfig) -> dict[str, Any]:
    """Fit, score the final model on train and test, save it and its metrics.json to ``train.out``."""
    if not cfg.train.train:
        raise DataError("no training data: pass --train SPLITDIR/train (or set train.train)")
    if not cfg.train.out:
        raise DataError("no model directory: pass --out DIR (or set train.out)")
    if not cfg.train.resume:
        removed = clear_training_state(cfg.train.out)
        if removed:
            log.info("%s: starting a new run (no --resume): removed the earlier run's %s", cfg.train.out,
                     " and ".join(removed))
    # the model is saved by the engine (a sharded kind block by block, where its rows live) and scored there:
    # the driver never holds a sharded kind's factor matrices
    result = fit(cfg.train, cfg.model, cfg.engine, (IterationLog(cfg.train.out, cfg.train.resume),),
                 save_to=cfg.train.out, in_memory=False, final_metrics=True)
    metrics: dict[str, Any] = {"engine": result.engine, "setup_seconds": result.setup_seconds,
                               "iterations": result.history}
    if cfg.model.kind in RANKING_KINDS:  # scores are not ratings: ranking metrics on the test set instead
        if cfg.train.test:
            ranking = run_evaluation(EvaluateConfig(model=cfg.train.out, data=cfg.train.test), cfg.engine)["ranking"]
            metrics["test_ranking"] = ranking
            update_model(cfg.train.out, {"metrics": {"test_ranking": ranking}})
        write_json(cfg.train.out, "metrics.json", {**metrics, "config": cfg.to_mapping()})
        return metrics
    metrics.update(result.final)
    finals = ("train", "test", "cold", "test_with_cold")
    update_model(cfg.train.out, {"metrics": {k: metrics[k] for k in finals if k in metrics}})
    write_json(cfg.train.out, "metrics.json", {**metrics, "config": cfg.to_mapping()})
    return metrics


def run_dirs(out: str) -> dict[str, str]:
    """Where ``run`` puts each stage's output under ``out``, a path or an fsspec URL (joined as text: a Path
    would turn memory://runs into memory:/runs)."""
    root = str(out).rstrip("/")
    return {name: f"{root}/{name}" for name in ("dataset", "split", "model", "evaluation", "scores", "report.html")}


def run_pipeline(cfg: JobConfig, on_stage: Callable[[str, dict[str, Any]], None] = lambda stage, result: None
                 ) -> dict[str, Any]:
    """Run every stage into ``cfg.run.out``; return each stage's summary by name, also handing each to
    ``on_stage(name, summary)`` as soon as the stage is done."""
    where = run_dirs(cfg.run.out)
    dataset, split_dir, model_dir = where["dataset"], where["split"], where["model"]
    results: dict[str, Any] = {}

    def done(stage: str, result: dict[str, Any]) -> None:
        results[stage] = result
        on_stage(stage, result)

    if cfg.run.source == "synth":
        done("synth", synth(dataclasses.replace(cfg.synth, out=dataset, format="dataset")))
    else:
        done("ingest", ingest(dataclasses.replace(cfg.ingest, source=cfg.run.source, out=dataset)))
    done("split", split(dataclasses.replace(cfg.split, data=dataset, out=split_dir)))
    train_cfg = dataclasses.replace(cfg.train, train=f"{split_dir}/train", test=f"{split_dir}/test", out=model_dir)
    done("train", run_training(dataclasses.replace(cfg, train=train_cfg)))
    done("evaluate", run_evaluation(EvaluateConfig(model=model_dir, data=f"{split_dir}/test", out=where["evaluation"]),
                                    cfg.engine))
    done("score", run_scoring(dataclasses.replace(cfg.score, model=model_dir, out=where["scores"]), cfg.engine,
                              cfg.filter))
    return results
