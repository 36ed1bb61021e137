"""Estimators: the Python face of training, in the manner of implicit, LensKit and scikit-learn.

    from recsys_dist import ImplicitALS
    model = ImplicitALS(factors=64, reg=0.05, iterations=15).fit(ratings_df, engine="shm")
    ids, scores = model.recommend([1, 2, 3], k=10)

Parameters are stored by ``__init__`` and validated by ``fit`` (as ``ModelConfig``); fitted
attributes end in an underscore. ``fit`` runs the very driver the ``train`` job runs
(``recsys_dist.train.fit``) on a dataset: a DataFrame or sparse matrix is first written in the
dataset layout (a temporary directory, removed after fitting), so there is one implementation
of training, whichever face calls it. ``engine`` is ``"inprocess"`` (default), ``"shm"``, an
EngineConfig, a Dask scheduler address, or a ``distributed.Client`` (its scheduler is used; a
remote cluster's workers must see the data: pass a dataset URL on shared storage). ``save`` keeps
such a temporary dataset beside the model (``training_data/``), so the CLI jobs find the training
items of a model fitted from a DataFrame.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import weakref
from typing import Any, ClassVar

import numpy as np

from recsys_dist.checkpoint import load_model
from recsys_dist.config import EngineConfig, ModelConfig, TrainConfig
from recsys_dist.data.dataset import Dataset, copy_dataset
from recsys_dist.data.ingest import ingest_arrays
from recsys_dist.errors import ConfigError, DataError
from recsys_dist.model import ALSModel
from recsys_dist.recommend import lists_to_csr
from recsys_dist.train import fit as fit_model
from recsys_dist.user_jobs import save_with_training_data

# estimator keyword -> ModelConfig field, where the names users know from implicit/LensKit differ
ALIASES = {"factors": "rank", "iterations": "n_iter", "regularization": "reg", "epochs": "n_iter"}


class NotFittedError(RuntimeError):
    """Raised when a method that needs a fitted model is called before ``fit``."""


class Recommender:
    """Base of the estimators; each subclass fixes the model kind and its default parameters."""

    kind: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        merged = {**self.defaults}
        for key, value in params.items():
            merged[ALIASES.get(key, key)] = value
        fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"kind"}
        unknown = sorted(set(merged) - fields)
        if unknown:
            raise ConfigError(f"{type(self).__name__}: unknown parameter {unknown[0]!r} (known: "
                              f"{', '.join(sorted(fields | set(ALIASES)))})")
        self.params = merged

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{type(self).__name__}({shown})"

    def get_params(self) -> dict[str, Any]:
        return dict(self.params)

    def model_config(self) -> ModelConfig:
        cfg = ModelConfig(kind=self.kind, **self.params)
        cfg.validate()
        return cfg

    def fit(self, ratings: Any, engine: Any = "inprocess", workers: int = 2) -> Recommender:
        """Train on ``ratings``: a pandas DataFrame with columns user_id, item_id and optionally rating
        (1 when absent) and timestamp; a scipy sparse users x items matrix (ids are the row and column
        numbers); or the path/URL of a dataset (``SPLITDIR/train``). Returns self."""
        cfg = self.model_config()
        engine_cfg = _engine(engine, workers)
        url, scratch = _as_dataset(ratings)
        try:
            result = fit_model(TrainConfig(train=url), cfg, engine_cfg)
            self.user_items_ = _user_items(Dataset.open(url), result.model)
        except BaseException:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
            raise
        self.model_ = result.model
        self.history_ = result.history
        # the written dataset lives as long as the estimators that use it (this one and its fold-ins),
        # so save() can keep it with the model
        self._scratch, self._scratch_owner = scratch, _ScratchDir(scratch) if scratch else None
        return self

    def _fitted(self) -> ALSModel:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(ratings) first")
        return self.model_

    @property
    def user_factors_(self) -> np.ndarray:
        return self._fitted().user_factors_

    @property
    def item_factors_(self) -> np.ndarray:
        return self._fitted().item_factors_

    @property
    def item_bias_(self) -> np.ndarray:
        return self._fitted().item_bias_

    @property
    def user_ids_(self) -> np.ndarray:
        return self._fitted().user_ids_

    @property
    def item_ids_(self) -> np.ndarray:
        return self._fitted().item_ids_

    def recommend(self, user_ids: Any, k: int = 10, filter_already_liked: bool = True, items: Any = None,
                  deny: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """The k best item ids per user id, best first, and their scores. ``filter_already_liked``
        leaves out the items each user has in the training data; ``items`` (allow) and ``deny`` are
        item-id lists. Unknown users get the items with the highest item score (popularity for
        ``Popular``, the item bias for BPR and ALS)."""
        model = self._fitted()
        user_ids = np.atleast_1d(np.asarray(user_ids))
        exclude = None
        if filter_already_liked:
            idx = model.user_index(user_ids)
            indptr, indices = self.user_items_
            exclude = [model.item_ids_[indices[indptr[u]:indptr[u + 1]]] if u >= 0 else np.empty(0, np.int64)
                       for u in idx]
        return model.recommend(user_ids, k, exclude=exclude, items=items, deny=deny)

    def similar_items(self, item_ids: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The k items most similar (cosine of factors) to each item id, itself excluded."""
        return self._fitted().similar_items(np.atleast_1d(np.asarray(item_ids)), k)

    def predict(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """Scores of (user, item) pairs: predicted ratings for ALS, ranking scores for the others."""
        return self._fitted().predict(np.asarray(user_ids), np.asarray(item_ids))

    def fold_in(self, user_ids: Any, item_ids: Any, ratings: Any = None) -> Recommender:
        """A copy with these users' rows computed from the given interactions against the fixed item
        factors (new users added, known users replaced), without retraining."""
        model = self._fitted()
        ratings = np.ones(len(item_ids)) if ratings is None else np.asarray(ratings, np.float64)
        out = type(self)(**self.params)
        out.model_ = model.fold_in(np.asarray(user_ids), np.asarray(item_ids), ratings)
        out.history_ = self.history_
        out._scratch, out._scratch_owner = getattr(self, "_scratch", ""), getattr(self, "_scratch_owner", None)
        out.user_items_ = _merge_user_items(model, out.model_, self.user_items_, np.asarray(user_ids),
                                            np.asarray(item_ids))
        return out

    def save(self, url: str) -> None:
        """Save as a model directory that the CLI jobs (score, evaluate, recommend) read too."""
        model = self._fitted()
        indptr, indices = self.user_items_
        train_data = model.config.get("train_data", "")
        scratch = getattr(self, "_scratch", "")
        if model.folded_ is None and scratch and train_data.startswith(scratch):
            # fitted on a DataFrame or matrix: keep its dataset too (a folded model writes its own)
            train_data = copy_dataset(train_data, f"{str(url).rstrip('/')}/training_data")
            model = dataclasses.replace(model, config={**model.config, "train_data": train_data})
        save_with_training_data(model, url, {"estimator": type(self).__name__})
        from recsys_dist.checkpoint import write_npy

        write_npy(url, "user_items_indptr.npy", indptr)
        write_npy(url, "user_items_indices.npy", indices)

    @classmethod
    def load(cls, url: str) -> Recommender:
        """An estimator from a model directory written by ``save`` or by the ``train`` job."""
        from recsys_dist.checkpoint import read_npy

        model = load_model(url)
        kind_class = next((c for c in ESTIMATORS if c.kind == model.kind), None)
        if kind_class is None or (cls is not Recommender and kind_class is not cls):
            raise DataError(f"{url}: a {model.kind!r} model, not a {cls.__name__}")
        settings = {k: v for k, v in model.config.get("model", {}).items() if k != "kind"}
        out = kind_class(**settings)
        out.model_, out.history_ = model, []
        indptr, indices = read_npy(url, "user_items_indptr.npy"), read_npy(url, "user_items_indices.npy")
        if indptr is None:
            train_url = model.config.get("train_data", "")
            if not train_url:
                raise DataError(f"{url}: neither the training items nor the training data are recorded")
            out.user_items_ = _user_items(Dataset.open(train_url), model)
        else:
            out.user_items_ = (indptr, indices)
        return out


class _ScratchDir:
    """Removes the directory ``path`` once no estimator holds this."""

    def __init__(self, path: str) -> None:
        self.path = path
        weakref.finalize(self, shutil.rmtree, path, True)


class ALS(Recommender):
    """Explicit biased ALS: predicts ratings (RMSE), ranks with support-shrunk scores."""

    kind = "als"
    defaults = {"rank": 64, "reg": 0.12, "n_iter": 20}


class ImplicitALS(Recommender):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008): confidence-weighted, for ranking."""

    kind = "implicit_als"
    defaults = {"rank": 64, "reg": 0.05, "alpha": 1.0, "n_iter": 15}


class BPR(Recommender):
    """Bayesian personalized ranking by stratified SGD, with an item bias."""

    kind = "bpr"
    defaults = {"rank": 64, "reg": 0.01, "bias_reg": 0.01, "learning_rate": 0.05, "n_iter": 20}


class GenreALS(Recommender):
    """Explicit ALS whose item factors are pulled towards their genres' learned embedding, so items
    nobody rated get factors too. Needs a dataset with item genres (a path or URL: a DataFrame or
    matrix has none)."""

    kind = "genre_als"
    defaults = {"rank": 32, "reg": 0.12, "n_iter": 15}


class BPMF(Recommender):
    """Bayesian matrix factorization by Gibbs sampling: predicts ratings as the average over the kept
    samples, with a predictive standard deviation per prediction (``predict_std``)."""

    kind = "bpmf"
    defaults = {"rank": 10, "n_iter": 200, "burn_in": 50}

    def predict_std(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """The predictive standard deviation of each (user, item) pair's rating (``predict`` is its mean)."""
        return self._fitted().predict_std(np.asarray(user_ids), np.asarray(item_ids))


class Popular(Recommender):
    """The most-popular baseline: items by number of interactions."""

    kind = "popular"
    defaults: ClassVar[dict[str, Any]] = {}


ESTIMATORS = (ALS, ImplicitALS, BPR, BPMF, Popular)


def _engine(engine: Any, workers: int) -> EngineConfig:
    if isinstance(engine, EngineConfig):
        return engine
    if isinstance(engine, str):
        if engine in ("inprocess", "shm"):
            return EngineConfig(name=engine, workers=workers)
        if engine == "dask":
            return EngineConfig(name="dask", scheduler="local", workers=workers)
        if "://" in engine:
            return EngineConfig(name="dask", scheduler=engine, workers=workers)
        raise ConfigError(f"engine: expected 'inprocess', 'shm', 'dask', a scheduler address or a Client, got {engine!r}")
    address = getattr(getattr(engine, "scheduler", None), "address", None)  # a distributed.Client
    if address:
        return EngineConfig(name="dask", scheduler=address)
    raise ConfigError(f"engine: expected 'inprocess', 'shm', 'dask', a scheduler address or a Client, got {engine!r}")


def _as_dataset(ratings: Any) -> tuple[str, str]:
    """(dataset URL, scratch directory to remove or "") for any accepted ``ratings``."""
    if isinstance(ratings, str) or hasattr(ratings, "__fspath__"):
        return str(ratings), ""
    scratch = tempfile.mkdtemp(prefix="recsys_dist-fit-")
    try:
        if hasattr(ratings, "tocoo"):  # a scipy sparse matrix
            coo = ratings.tocoo()
            keep = coo.data != 0
            ingest_arrays(coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64), coo.data[keep], None,
                          f"{scratch}/data", "a sparse matrix")
        elif hasattr(ratings, "columns"):  # a pandas DataFrame
            missing = [c for c in ("user_id", "item_id") if c not in ratings.columns]
            if missing:
                raise DataError(f"ratings DataFrame: no column {missing[0]!r} (columns: {', '.join(map(str, ratings.columns))}); "
                                "expected user_id, item_id and optionally rating, timestamp")
            rating = ratings["rating"].to_numpy() if "rating" in ratings.columns else np.ones(len(ratings))
            ts = ratings["timestamp"].to_numpy() if "timestamp" in ratings.columns else None
            ingest_arrays(ratings["user_id"].to_numpy(), ratings["item_id"].to_numpy(), rating, ts,
                          f"{scratch}/data", "ratings DataFrame")
        else:
            raise DataError(f"fit: expected a pandas DataFrame, a scipy sparse matrix or a dataset path, got "
                            f"{type(ratings).__name__}")
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return f"{scratch}/data", scratch


def _user_items(train: Dataset, model: ALSModel) -> tuple[np.ndarray, np.ndarray]:
    """Each model user's training items (model indices) as CSR (indptr, indices)."""
    r = train.read_all()  # the dataset's indices; the model's may differ (a folded-in model has more users)
    users = model.user_index(train.user_index().to_raw(r.user_idx))
    items = model.item_index(train.item_index().to_raw(r.item_idx))
    keep = (users >= 0) & (items >= 0)
    users, items = users[keep], items[keep]
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    return lists_to_csr(np.split(items, np.searchsorted(users, np.arange(1, len(model.user_ids_)))),
                        len(model.user_ids_))


def _merge_user_items(before: ALSModel, after: ALSModel, csr: tuple[np.ndarray, np.ndarray], user_ids: np.ndarray,
                      item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The training-item CSR of a folded-in model: folded users' items are the ones given."""
    indptr, indices = csr
    old = after.user_index(before.user_ids_)
    lists: list[np.ndarray] = [np.empty(0, np.int64)] * len(after.user_ids_)
    for u, row in enumerate(old):
        lists[row] = indices[indptr[u]:indptr[u + 1]]
    items = after.item_index(item_ids)
    rows = after.user_index(user_ids)
    for row in np.unique(rows):
        lists[row] = items[(rows == row) & (items >= 0)]
    return lists_to_csr(lists, len(after.user_ids_))
