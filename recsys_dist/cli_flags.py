"""The command line's vocabulary: each job's flags (flag -> ``section.key`` of the configuration, type,
help) and one-line descriptions. ``cli`` builds its parser from these; keys equal config field names."""

from __future__ import annotations

from typing import Any

ENGINE_FLAGS = [
    ("--engine", "engine.name", str, "inprocess, shm or dask"),
    ("--scheduler", "engine.scheduler", str, "dask: 'local' or a scheduler address tcp://host:8786"),
    ("--workers", "engine.workers", int, "shm processes or LocalCluster workers"),
    ("--threads", "engine.threads", int, "kernel threads per task (0: cores / workers)"),
]
FILTER_FLAGS = [
    ("--allow", "filter.allow", str, "file of the only item ids that may be recommended"),
    ("--deny", "filter.deny", str, "file of item ids never recommended"),
    ("--genres", "filter.genres", str, "GENRE [GENRE ...]: only items of at least one of these genres"),
    ("--min-ratings", "filter.min_ratings", int, "only items with at least this many training ratings"),
]
RATINGS_FORMAT_FLAGS = [  # how a small ratings file is read (fold-in); the same keys as ingest's
    ("--format", "ingest.format", str, "ratings file format: auto, ml-100k, ml-1m, ml-10m, ml-csv, csv or parquet"),
    ("--user-col", "ingest.user_col", str, "csv/parquet: user id column"),
    ("--item-col", "ingest.item_col", str, "csv/parquet: item id column"),
    ("--rating-col", "ingest.rating_col", str, "csv/parquet: rating column"),
    ("--delimiter", "ingest.delimiter", str, "csv: field separator (a tab: $'\\t')"),
    ("--id-type", "ingest.id_type", str, "csv/parquet: auto, int or str"),
]
LIST_KEYS = ("ingest.scale", "evaluate.k", "evaluate.data", "filter.genres")

# job -> [(flag, "section.key", type, help)]; nargs "+" for LIST_KEYS.
FLAGS: dict[str, list[tuple[str, str, Any, str]]] = {
    "ingest": [
        ("--source", "ingest.source", str, "folder, .zip, file, fsspec URL or shorthand (ml-100k, ml-25m, ...)"),
        ("--out", "ingest.out", str, "dataset directory to write"),
        ("--format", "ingest.format", str, "auto, ml-100k, ml-1m, ml-10m, ml-csv, csv or parquet"),
        ("--partitions", "ingest.partitions", int, "user blocks in ratings/ (default: from the data size)"),
        ("--user-col", "ingest.user_col", str, "generic input: user id column"),
        ("--item-col", "ingest.item_col", str, "generic input: item id column"),
        ("--rating-col", "ingest.rating_col", str, "generic input: rating column"),
        ("--timestamp-col", "ingest.timestamp_col", str, "generic input: timestamp column ('' for none)"),
        ("--delimiter", "ingest.delimiter", str, "generic csv: field separator"),
        ("--id-type", "ingest.id_type", str, "generic input: auto, int or str"),
        ("--scale", "ingest.scale", float, "MIN MAX [STEP]: reject ratings off this scale"),
        ("--cache-dir", "ingest.cache_dir", str, "download cache for shorthands"),
        ("--chunk-mb", "ingest.chunk_mb", int, "text parsed per chunk, in MiB"),
    ],
    "synth": [
        ("--shape", "synth.shape", str, "ml-100k, ml-1m, ml-25m, ml-32m or custom"),
        ("--users", "synth.n_users", int, "number of users (overrides the shape)"),
        ("--items", "synth.n_items", int, "number of items (overrides the shape)"),
        ("--ratings", "synth.n_ratings", int, "number of ratings (overrides the shape)"),
        ("--rank", "synth.rank", int, "rank of the planted model"),
        ("--noise", "synth.noise", float, "rating noise standard deviation"),
        ("--stars", "synth.stars", str, "whole or half"),
        ("--seed", "synth.seed", int, "random seed"),
        ("--out", "synth.out", str, "output directory"),
        ("--format", "synth.format", str, "dataset, or raw files: ml-100k, ml-1m, ml-csv"),
        ("--partitions", "synth.partitions", int, "user blocks (dataset format)"),
    ],
    "split": [
        ("--data", "split.data", str, "dataset directory"),
        ("--out", "split.out", str, "split directory (train/, test/, cold/)"),
        ("--method", "split.method", str, "random, temporal, last-k, kfold, folds or predefined"),
        ("--test-fraction", "split.test_fraction", float, "random/temporal: share of ratings in test"),
        ("--seed", "split.seed", int, "random/kfold seed"),
        ("--cutoff", "split.cutoff", str, "temporal: epoch seconds or ISO date of the first test rating"),
        ("--k", "split.k", int, "last-k: ratings held out per user"),
        ("--folds", "split.n_folds", int, "kfold: number of folds"),
        ("--fold", "split.fold", str, "kfold: 0..n-1; folds: u1..u5, ua, ub"),
        ("--train-file", "split.train_file", str, "predefined: training ratings file"),
        ("--test-file", "split.test_file", str, "predefined: test ratings file"),
        ("--archive", "split.archive", str, "folds: the ml-100k archive (default: the dataset's source)"),
    ],
    "train": [
        ("--train", "train.train", str, "training dataset (SPLITDIR/train)"),
        ("--test", "train.test", str, "test dataset scored every iteration (SPLITDIR/test)"),
        ("--out", "train.out", str, "model directory (path or fsspec URL)"),
        *ENGINE_FLAGS,
        ("--model", "model.kind", str, "model kind: als, bias, mean, implicit_als, bpr or popular"),
        ("--rank", "model.rank", int, "number of factors k"),
        ("--reg", "model.reg", float, "regularization lambda (bpr: weight decay per step)"),
        ("--iterations", "model.n_iter", int, "number of iterations (bpr: epochs)"),
        ("--checkpoint-every", "train.checkpoint_every", int, "checkpoint every N iterations"),
    ],
    "evaluate": [
        ("--model", "evaluate.model", str, "model directory"),
        ("--data", "evaluate.data", str, "DATASET [DATASET ...]: datasets to score together (e.g. SPLIT/test SPLIT/cold)"),
        ("--out", "evaluate.out", str, "directory for metrics.json"),
        ("--k", "evaluate.k", int, "K [K ...]: cut-offs of the ranking metrics"),
        ("--relevance", "evaluate.relevance", float, "test ratings at or above this are relevant"),
        ("--train", "evaluate.train", str, "training data to exclude (default: the model's)"),
        ("--cold", "evaluate.cold", str, "unknown users/items: bias (predict from biases) or exclude"),
        *ENGINE_FLAGS,
    ],
    "score": [
        ("--model", "score.model", str, "model directory"),
        ("--out", "score.out", str, "output directory or fsspec URL"),
        ("--k", "score.k", int, "recommendations per user"),
        ("--users", "score.users", str, "file of user ids (default: every user of the model)"),
        ("--train", "score.train", str, "training data to exclude (default: the model's)"),
        *ENGINE_FLAGS,
        *FILTER_FLAGS,
    ],
    "recommend": [
        ("--model", "recommend.model", str, "model directory"),
        ("--user", "recommend.user", str, "the user's original id"),
        ("--k", "recommend.k", int, "number of recommendations"),
        ("--explain", "recommend.explain", int, "rated items shown as the reason for each (0: none)"),
        ("--cold-start", "recommend.cold_start", str, "unknown user: none (an error) or popular"),
        ("--fold-in", "recommend.fold_in", str, "ratings file (user_id,item_id,rating) folded in first"),
        ("--train", "recommend.train", str, "training data (default: the model's)"),
        *RATINGS_FORMAT_FLAGS,
        *FILTER_FLAGS,
    ],
    "similar-items": [
        ("--model", "similar.model", str, "model directory"),
        ("--out", "similar.out", str, "output directory or fsspec URL"),
        ("--k", "similar.k", int, "similar items per item"),
        ("--items", "similar.items", str, "file of item ids (default: every item with factors)"),
    ],
    "fold-in": [
        ("--model", "foldin.model", str, "model directory to start from (unchanged)"),
        ("--ratings", "foldin.ratings", str, "ratings file of the users to fold in (user_id,item_id,rating)"),
        ("--out", "foldin.out", str, "directory of the updated model"),
        *RATINGS_FORMAT_FLAGS,
    ],
    "bench": [
        ("--shape", "bench.shape", str, "generated shape: ml-100k, ml-1m, ml-25m or ml-32m"),
        ("--data", "bench.data", str, "benchmark on this dataset or split directory instead"),
        ("--model", "model.kind", str, "model kind: als, implicit_als, bpr, ... (default als)"),
        ("--rank", "model.rank", int, "rank k"),
        ("--iterations", "model.n_iter", int, "iterations or epochs (the first is reported apart: it may compile)"),
        *ENGINE_FLAGS,
        ("--work-dir", "bench.work_dir", str, "cache of generated data and splits"),
        ("--out", "bench.out", str, "JSON-lines file to append the figures to"),
        ("--score-k", "bench.score_k", int, "also time top-K scoring of every user at this K (0: skip)"),
    ],
    "run": [
        ("--out", "run.out", str, "output directory of the whole pipeline"),
        ("--source", "run.source", str, "'synth' (default) or an ingest source"),
        ("--engine", "engine.name", str, "inprocess, shm or dask"),
    ],
}
# Jobs that only read what other jobs wrote and take no configuration: flag -> (dest, type, nargs, help).
VIEW_FLAGS: dict[str, list[tuple[str, str, Any, str | None, str]]] = {
    "report": [
        ("--data", "data", str, None, "dataset to profile (e.g. RUN/dataset or SPLIT/train)"),
        ("--model", "models", str, "+", "DIR [DIR ...]: model directories, compared side by side"),
        ("--evaluation", "evaluations", str, "+", "DIR [DIR ...]: evaluate --out directories of those models"),
        ("--out", "out", str, None, "HTML file to write (default report.html)"),
        ("--figures", "figures", str, None, "also write every plot to this directory as PNG, SVG and PDF"),
    ],
    "explore": [
        ("--model", "model", str, None, "model directory"),
        ("--data", "data", str, None, "dataset for the profile page (default: the model's training data)"),
        ("--port", "port", int, None, "port to serve on (default 8501)"),
        ("--address", "address", str, None, "address to bind (default 127.0.0.1: this machine only)"),
    ],
}
DESCRIPTIONS = {
    "ingest": "raw ratings -> partitioned Parquet dataset",
    "synth": "generate MovieLens-shaped synthetic data",
    "split": "split a dataset into train/test(/cold)",
    "train": "train a model: explicit ALS, bias, mean, implicit_als, bpr or popular (model.kind)",
    "evaluate": "rating (RMSE, MAE) and ranking (precision, recall, NDCG, ...) metrics of a saved model",
    "score": "top-K recommendations for every user, as Parquet published with _SUCCESS",
    "recommend": "the top-K items for one user, each with the rated items that explain it",
    "similar-items": "top-K most similar items (cosine of factors) for every item, as Parquet published with _SUCCESS",
    "fold-in": "add or update users from their ratings against the fixed item factors, without retraining",
    "bench": "benchmark training iterations (any --model) against this machine's matmul rate",
    "run": "the main job: data -> split -> train -> evaluate -> score (default: synthetic ml-100k shape)",
    "report": "one self-contained HTML report: dataset profile, each model, their comparison (extra: report)",
    "explore": "an interactive app on a trained model, in the browser (extra: explore)",
}
