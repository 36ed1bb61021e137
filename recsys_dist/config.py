"""Job configuration: immutable sections validated once, at the edge.

A configuration is a TOML document whose tables are the sections below and whose keys
are the field names; ``--set section.key=value`` on the command line overrides a key.
Unknown sections or keys and ill-typed or out-of-range values raise ``ConfigError``
naming the key. This module parses TOML text but never reads files, the environment
or argv: ``cli`` does that.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from recsys_dist.config_fields import _at_least, _check_scale, _choice, merge, parse_override, parse_toml, section_from_mapping
from recsys_dist.config_model import KIND_DEFAULTS, KIND_ONLY_KEYS, MODEL_KINDS, RANKING_KINDS, ModelConfig
from recsys_dist.config_serving import EvaluateConfig, FilterConfig, FoldInConfig, RecommendConfig, ScoreConfig, \
    SimilarItemsConfig
from recsys_dist.config_tune import TuneConfig
from recsys_dist.errors import ConfigError

__all__ = ["KIND_DEFAULTS", "KIND_ONLY_KEYS", "MODEL_KINDS", "RANKING_KINDS", "ModelConfig", "EvaluateConfig", "FilterConfig", "FoldInConfig", "JobConfig", "RecommendConfig", "ScoreConfig",
           "SimilarItemsConfig", "TuneConfig", "merge", "parse_override", "parse_toml"]

SHAPES = ("ml-100k", "ml-1m", "ml-25m", "ml-32m", "custom")
INGEST_FORMATS = ("auto", "ml-100k", "ml-1m", "ml-10m", "ml-csv", "csv", "parquet")
SYNTH_FORMATS = ("dataset", "ml-100k", "ml-1m", "ml-csv")
SPLIT_METHODS = ("random", "temporal", "last-k", "kfold", "folds", "predefined", "cold-items", "cold-users")
OFFICIAL_FOLDS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


@dataclass(frozen=True, slots=True)
class IngestConfig:
    source: str = ""
    """Folder, .zip archive, fsspec URL or shorthand (ml-100k, ml-1m, ..., ml-latest)."""
    out: str = ""
    """Dataset directory to write."""
    format: str = "auto"
    """One of INGEST_FORMATS; ``auto`` detects MovieLens layouts from file names."""
    user_col: str = "user_id"
    """Generic csv/parquet: column holding user ids."""
    item_col: str = "item_id"
    rating_col: str = "rating"
    timestamp_col: str = "timestamp"
    """Generic csv/parquet: timestamp column, or "" when the input has none."""
    delimiter: str = ","
    """Generic csv: field separator."""
    id_type: str = "auto"
    """Generic input: ``int``, ``str`` or ``auto`` (int when every id parses as one)."""
    scale: list[float] = field(default_factory=list)
    """[min, max] or [min, max, step]; empty: the format's scale, or the observed range."""
    partitions: int = 0
    """Number of user blocks in ratings/; 0 chooses from the data size."""
    cache_dir: str = ""
    """Where shorthand downloads are cached; "" is ~/.cache/recsys_dist."""
    chunk_mb: int = 32
    """Bytes of text parsed at a time: bounds ingest memory."""

    def validate(self) -> None:
        _choice("ingest.format", self.format, INGEST_FORMATS)
        _choice("ingest.id_type", self.id_type, ("auto", "int", "str"))
        _check_scale("ingest.scale", self.scale)
        _at_least("ingest.partitions", self.partitions, 0)
        _at_least("ingest.chunk_mb", self.chunk_mb, 1)
        if len(self.delimiter) != 1:
            raise ConfigError(f"ingest.delimiter: expected one character, got {self.delimiter!r}")
        for key in ("user_col", "item_col", "rating_col"):
            if not getattr(self, key):
                raise ConfigError(f"ingest.{key}: must name a column")


@dataclass(frozen=True, slots=True)
class SynthConfig:
    shape: str = "ml-100k"
    """Named shape (the real dataset's user/item/rating counts) or ``custom``."""
    n_users: int = 0
    """With shape=custom (or to override a shape): number of users."""
    n_items: int = 0
    n_ratings: int = 0
    min_user_ratings: int = 20
    rank: int = 8
    """Rank of the planted factor model."""
    noise: float = 0.5
    """Standard deviation of the rating noise before rounding."""
    stars: str = ""
    """``whole`` (1-5) or ``half`` (0.5-5); "" follows the shape (half for ml-25m/ml-32m)."""
    seed: int = 0
    out: str = ""
    format: str = "dataset"
    """``dataset`` writes the ingested layout; ml-100k, ml-1m, ml-csv write raw MovieLens files."""
    partitions: int = 0

    def validate(self) -> None:
        _choice("synth.shape", self.shape, SHAPES)
        _choice("synth.format", self.format, SYNTH_FORMATS)
        _choice("synth.stars", self.stars, ("", "whole", "half"))
        for key in ("n_users", "n_items", "n_ratings", "partitions"):
            _at_least(f"synth.{key}", getattr(self, key), 0)
        _at_least("synth.min_user_ratings", self.min_user_ratings, 1)
        _at_least("synth.rank", self.rank, 1)
        if not self.noise >= 0:
            raise ConfigError(f"synth.noise: must be >= 0, got {self.noise}")
        if self.shape == "custom" and 0 in (self.n_users, self.n_items, self.n_ratings):
            raise ConfigError("synth.shape: custom needs synth.n_users, synth.n_items and synth.n_ratings")


@dataclass(frozen=True, slots=True)
class SplitConfig:
    data: str = ""
    """Dataset directory made by ingest or synth."""
    out: str = ""
    """Split directory: train/, test/ and cold/ are written inside it."""
    method: str = "random"
    """One of SPLIT_METHODS."""
    test_fraction: float = 0.2
    """random: share of ratings held out; temporal without cutoff: share of the latest ratings."""
    seed: int = 0
    cutoff: str = ""
    """temporal: ratings at or after this time (epoch seconds or ISO date) are test."""
    k: int = 1
    """last-k: each user's k latest ratings are test."""
    fraction: float = 0.1
    """cold-items / cold-users: share of the items (users) all of whose ratings are held out (the cold
    part); ``test_fraction`` of the other ratings are held out too (the warm test part)."""
    n_folds: int = 5
    fold: str = "0"
    """kfold: fold number 0..n_folds-1; folds: u1..u5, ua or ub."""
    train_file: str = ""
    """predefined: training ratings (any supported format, original ids)."""
    test_file: str = ""
    archive: str = ""
    """folds: the ml-100k archive or folder; "" uses the dataset's recorded source."""

    def validate(self) -> None:
        _choice("split.method", self.method, SPLIT_METHODS)
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"split.test_fraction: must be in (0, 1), got {self.test_fraction}")
        if not 0.0 < self.fraction < 1.0:
            raise ConfigError(f"split.fraction: must be in (0, 1), got {self.fraction}")
        _at_least("split.k", self.k, 1)
        _at_least("split.n_folds", self.n_folds, 2)
        if self.method == "kfold":
            if not self.fold.isdigit() or int(self.fold) >= self.n_folds:
                raise ConfigError(f"split.fold: kfold needs 0..{self.n_folds - 1}, got {self.fold!r}")
        if self.method == "folds":
            _choice("split.fold", self.fold, OFFICIAL_FOLDS)
        if self.method == "predefined" and not (self.train_file and self.test_file):
            raise ConfigError("split.train_file: predefined needs split.train_file and split.test_file")


@dataclass(frozen=True, slots=True)
class RunConfig:
    out: str = "runs/quickstart"
    """Directory of the pipeline's outputs (dataset/, split/, ...)."""
    source: str = "synth"
    """``synth`` generates data from [synth]; anything else is an ingest source."""

    def validate(self) -> None:
        if not self.out:
            raise ConfigError("run.out: must name a directory")


ENGINES = ("inprocess", "shm", "dask")
ROUTING_MODES = ("auto", "broadcast", "routed")  # executors/dask_routing.MODES (not imported: no Dask here)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    name: str = "inprocess"
    """Where block tasks run: ``inprocess``, ``shm`` (shared-memory process pool) or ``dask``."""
    scheduler: str = "local"
    """dask: ``local`` for an in-process LocalCluster, or a scheduler address (tcp://host:8786)."""
    workers: int = 2
    """shm: worker processes; dask local: workers of the LocalCluster."""
    threads: int = 0
    """Kernel threads per task; 0 divides each machine's cores among the tasks that run on it at once."""
    user_blocks: int = 0
    """User blocks; 0 chooses from data size and worker count."""
    item_blocks: int = 0
    connect_timeout: float = 10.0
    """dask: seconds to wait for the scheduler before failing."""
    pause_timeout: float = 60.0
    """dask: stop when no block finishes for this many seconds while Dask has paused a worker for memory."""
    retries: int = 3
    """dask: how often a block's task may lose its worker, or its copy of the broadcast matrix, before the job
    stops (a LocalCluster's allowed-failures; a running scheduler applies its own). A task that raises is never
    retried."""
    routing: str = "auto"
    """dask: how a half-step's dst blocks get the fixed side's rows: ``broadcast`` (every worker assembles the
    whole matrix from its peers), ``routed`` (each worker receives from each src block only the rows its blocks
    read: Spark's OutBlock/InBlock), or ``auto``, routed when the busiest worker would receive at most 3/4 of
    broadcast's bytes (executors/dask_routing.py). Both give the same model."""
    upload: str = ""
    """dask: a built recsys_dist wheel to install on every worker of a running cluster before the job."""
    tls_ca: str = ""
    """dask over tls://: the cluster CA certificate (deploy/make-certs.sh makes one); "" uses the Dask config."""
    tls_cert: str = ""
    """dask over tls://: this job's client certificate, signed by that CA."""
    tls_key: str = ""
    """dask over tls://: the client certificate's private key."""

    def validate(self) -> None:
        _choice("engine.name", self.name, ENGINES)
        _choice("engine.routing", self.routing, ROUTING_MODES)
        for key in ("workers",):
            _at_least(f"engine.{key}", getattr(self, key), 1)
        for key in ("threads", "user_blocks", "item_blocks", "retries"):
            _at_least(f"engine.{key}", getattr(self, key), 0)
        for key in ("connect_timeout", "pause_timeout"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"engine.{key}: must be > 0, got {getattr(self, key)}")
        if bool(self.tls_ca) + bool(self.tls_cert) + bool(self.tls_key) not in (0, 3):
            raise ConfigError("engine.tls_ca, engine.tls_cert, engine.tls_key: give all three or none")
        if self.name == "dask" and self.scheduler != "local" and "://" not in self.scheduler:
            raise ConfigError(f"engine.scheduler: expected 'local' or an address like tcp://host:8786, got {self.scheduler!r}")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    train: str = ""
    """Training dataset (SPLITDIR/train or any dataset directory)."""
    test: str = ""
    """Optional test dataset, scored every iteration."""
    out: str = ""
    """Model directory (local path or fsspec URL)."""
    checkpoint_every: int = 0
    """Write a checkpoint every N iterations (0: never)."""
    resume: bool = False
    """Continue from the last checkpoint in ``out``."""

    def validate(self) -> None:
        _at_least("train.checkpoint_every", self.checkpoint_every, 0)


@dataclass(frozen=True, slots=True)
class BenchConfig:
    shape: str = "ml-25m"
    """Generated shape to benchmark on (ignored with ``data``)."""
    data: str = ""
    """A dataset or split directory to benchmark on instead of generated data."""
    seed: int = 0
    work_dir: str = "runs/bench"
    """Where generated data and splits are cached between runs."""
    out: str = ""
    """JSON-lines file the figures are appended to; "" is WORK_DIR/results.jsonl."""
    score_k: int = 0
    """After training, time top-K scoring of every user at this K on the same engine (0: skip)."""
    peer_python: str = ""
    """A Python interpreter (path or command) where LensKit or implicit is installed: after training, time
    the peers there on the same split (``recsys_dist/bench_peer.py``) and print the ratio ("": skip)."""

    def validate(self) -> None:
        _choice("bench.shape", self.shape, SHAPES[:-1])


@dataclass(frozen=True, slots=True)
class JobConfig:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    foldin: FoldInConfig = field(default_factory=FoldInConfig)
    similar: SimilarItemsConfig = field(default_factory=SimilarItemsConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()

    def to_mapping(self) -> dict[str, dict[str, Any]]:
        return {f.name: dataclasses.asdict(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], origin: str = "configuration") -> JobConfig:
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        built: dict[str, Any] = {}
        for name, values in data.items():
            if name not in sections:
                raise ConfigError(f"{origin}: unknown section [{name}] (known: {', '.join(sections)})")
            if not isinstance(values, Mapping):
                raise ConfigError(f"{origin}: [{name}] must be a table of keys")
            if name == "model":  # keys the file does not set take the kind's own defaults
                values = {**KIND_DEFAULTS.get(str(values.get("kind", "als")), {}), **values}
            built[name] = section_from_mapping(hints[name], name, values, origin)
        config = cls(**built)
        try:
            config.validate()
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
        return config
