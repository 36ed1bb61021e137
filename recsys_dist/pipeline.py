"""Jobs that chain stages: train (fit, final metrics, save) and the main job
(data -> split -> train -> evaluate) under one output directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from recsys_dist.checkpoint import load_model, save_model, write_json
from recsys_dist.config import EvaluateConfig, JobConfig
from recsys_dist.data.dataset import Dataset, Ratings
from recsys_dist.data.ingest import ingest
from recsys_dist.data.split import split
from recsys_dist.data.synth_output import synth
from recsys_dist.errors import DataError
from recsys_dist.evaluate import ranking_metrics, rating_metrics
from recsys_dist.model import ALSModel
from recsys_dist.recommend import top_k
from recsys_dist.train import evaluate_on, fit


def run_training(cfg: JobConfig) -> dict[str, Any]:
    """Fit, score the final model on train and test, save it and its metrics.json to ``train.out``."""
    if not cfg.train.train:
        raise DataError("no training data: pass --train SPLITDIR/train (or set train.train)")
    if not cfg.train.out:
        raise DataError("no model directory: pass --out DIR (or set train.out)")
    result = fit(cfg.train, cfg.model, cfg.engine)
    metrics: dict[str, Any] = {"engine": result.engine, "setup_seconds": result.setup_seconds,
                               "iterations": result.history,
                               "train": evaluate_on(result.model, Dataset.open(cfg.train.train).read_all())}
    if cfg.train.test:
        test = Dataset.open(cfg.train.test)
        metrics["test"] = evaluate_on(result.model, test.read_all())
        cold_dir = Path(cfg.train.test).parent / "cold"
        if (cold_dir / "manifest.json").exists():  # test rows split off as cold: scored by the bias fallback
            cold = Dataset.open(cold_dir).read_all()
            metrics["cold"] = evaluate_on(result.model, cold)
            metrics["test_with_cold"] = evaluate_on(result.model, Ratings.concat([test.read_all(), cold]))
    finals = ("train", "test", "cold", "test_with_cold")
    save_model(result.model, cfg.train.out, {"metrics": {k: metrics[k] for k in finals if k in metrics}})
    write_json(cfg.train.out, "metrics.json", {**metrics, "config": cfg.to_mapping()})
    return metrics


def run_evaluation(cfg: EvaluateConfig) -> dict[str, Any]:
    """Rating and ranking metrics of a saved model on a dataset, matched through original ids."""
    if not cfg.model or not cfg.data:
        raise DataError("evaluate needs --model DIR and --data DATASET")
    model = load_model(cfg.model)
    ds = Dataset.open(cfg.data)
    ratings = ds.read_all()
    users = model.user_index(ds.user_index().to_raw(ratings.user_idx))
    items = model.item_index(ds.item_index().to_raw(ratings.item_idx))
    cold = (users < 0) | (items < 0)
    scored = ~cold if cfg.cold == "exclude" else np.ones(len(ratings), bool)
    result: dict[str, Any] = rating_metrics(model.predict_idx(users[scored], items[scored]), ratings.rating[scored])
    result.update(model=str(cfg.model), data=str(cfg.data), cold_policy=cfg.cold, cold_ratings=int(cold.sum()),
                  unknown_users=int(len(np.unique(ratings.user_idx[users < 0]))),
                  unknown_items=int(len(np.unique(ratings.item_idx[items < 0]))))
    result["ranking"] = _ranking(model, users, items, ratings.rating, cfg)
    if cfg.out:
        write_json(cfg.out, "metrics.json", result)
    return result


def _ranking(model: ALSModel, users: np.ndarray, items: np.ndarray, rating: np.ndarray,
             cfg: EvaluateConfig) -> dict[str, Any]:
    """Top-K over all items but each user's training items, scored against the relevant test items."""
    relevant = (rating >= cfg.relevance) & (users >= 0) & (items >= 0)
    order = np.lexsort((items[relevant], users[relevant]))
    rel_users, rel_items = users[relevant][order], items[relevant][order]
    evaluated, starts = np.unique(rel_users, return_index=True)
    relevant_lists = np.split(rel_items, starts[1:]) if len(evaluated) else []
    train_url = cfg.train or model.config.get("train_data", "")
    if not train_url:
        raise DataError(f"{cfg.model}: the model does not record its training data; pass --train to exclude it")
    train = Dataset.open(train_url)
    seen = train.read_all()
    if len(train.user_index()) != len(model.user_ids_):
        raise DataError(f"{train_url}: not the training data of {cfg.model} (different user id map)")
    by_user = np.argsort(seen.user_idx, kind="stable")
    bounds = np.searchsorted(seen.user_idx[by_user], np.stack([evaluated, evaluated + 1]))
    exclude = [seen.item_idx[by_user[a:b]] for a, b in zip(*bounds)]
    recommended, _ = top_k(model.user_matrix_, model.item_matrix_, model.mu_, evaluated, max(cfg.k), exclude)
    metrics = ranking_metrics(recommended, relevant_lists, sorted(set(cfg.k)), len(model.item_ids_))
    return {"relevance": cfg.relevance, "users": int(len(evaluated)), "at": metrics}


def run_pipeline(cfg: JobConfig) -> dict[str, Any]:
    """Run every stage into ``cfg.run.out``; return each stage's summary by name."""
    out = Path(cfg.run.out)
    dataset, split_dir, model_dir = out / "dataset", out / "split", out / "model"
    results: dict[str, Any] = {}
    if cfg.run.source == "synth":
        results["synth"] = synth(dataclasses.replace(cfg.synth, out=str(dataset), format="dataset"))
    else:
        results["ingest"] = ingest(dataclasses.replace(cfg.ingest, source=cfg.run.source, out=str(dataset)))
    results["split"] = split(dataclasses.replace(cfg.split, data=str(dataset), out=str(split_dir)))
    train_cfg = dataclasses.replace(cfg.train, train=str(split_dir / "train"), test=str(split_dir / "test"),
                                    out=str(model_dir))
    results["train"] = run_training(dataclasses.replace(cfg, train=train_cfg))
    results["evaluate"] = run_evaluation(EvaluateConfig(model=str(model_dir), data=str(split_dir / "test"),
                                                        out=str(out / "evaluation")))
    return results
