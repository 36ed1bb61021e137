"""The ``[model]`` section: which model kind, its settings and their validation; the kinds' own defaults
and keys. Same rules as ``config.py``, which composes it into ``JobConfig``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recsys_dist.config_fields import _at_least, _choice
from recsys_dist.errors import ConfigError

MODEL_KINDS = ("als", "bias", "mean", "implicit_als", "bpr", "popular", "bpmf", "genre_als")
RANKING_KINDS = ("implicit_als", "bpr", "popular")  # scores rank items; they are not ratings
CONFIDENCES = ("1+alpha*r", "alpha*r")


# Defaults that differ by model kind, applied to the keys a configuration leaves out: BPR's reg is the
# weight decay of every SGD step, where ALS's 0.1 would shrink the factors to nothing.
KIND_DEFAULTS: dict[str, dict[str, Any]] = {"bpr": {"reg": 0.01, "bias_reg": 0.01, "n_iter": 20},
                                            "bpmf": {"n_iter": 200}}


@dataclass(frozen=True, slots=True)
class ModelConfig:
    kind: str = "als"
    """``als`` (biased matrix factorization of ratings), ``bias`` (user and item biases only),
    ``mean``, ``bpmf`` (Bayesian matrix factorization by Gibbs sampling); for ranking: ``implicit_als`` (Hu, Koren & Volinsky), ``bpr`` (Bayesian personalized
    ranking) and ``popular`` (items by number of interactions)."""
    rank: int = 10
    """Number of latent factors k (als, implicit_als, bpr)."""
    reg: float = 0.1
    """Factor regularization lambda (bpr: the weight decay of each SGD update, default 0.01; see KIND_DEFAULTS)."""
    bias_reg: float = 0.1
    """Bias regularization (for ``bias``: the damping added to each bias's count; bpr: the item bias's decay)."""
    rank_damping: float = 5.0
    """als, bias: when ranking items (score, evaluate, recommend), each item's predicted deviation
    from the mean (its bias and factors) is multiplied by n_i / (n_i + rank_damping), n_i its
    training ratings: a Bayesian shrinkage toward the mean, so top-K lists are not led by items
    with one or two five-star ratings. Predicted ratings (and RMSE) are unaffected; 0 turns it off."""
    genre_reg: float = 10.0
    """genre_als: each item's factors are pulled towards the mean embedding of its genres (an item without
    ratings gets exactly that), and, when the data has user demographics (ml-100k, ml-1m), each user's
    towards the embedding of their gender, age group and occupation; a feature's embedding is regularised
    like this many rows of average popularity."""
    reg_mode: str = "weighted"
    """``weighted``: lambda * n per row (n its ratings, or interactions; Spark MLlib); ``plain``: lambda."""
    n_iter: int = 10
    """Iterations (als, implicit_als: a user then an item half-step), epochs (bpr) or Gibbs sweeps (bpmf:
    the first ``burn_in`` are discarded, the other n_iter - burn_in are the kept samples)."""
    seed: int = 0
    tol: float = 0.0
    """Stop early when an iteration lowers the training objective by less than this fraction."""
    solver: str = "auto"
    """``cholesky``: exact solves; ``cg``: ``cg_steps`` conjugate-gradient steps warm-started from
    the previous iterate (same accuracy; on the ml-25m shape 1.1x faster at rank 4, 1.5x at rank 10,
    2.4x at rank 20: see the README); ``auto``: cg for als and implicit_als (the kinds with a CG
    kernel)."""
    cg_steps: int = 3
    gather_dtype: str = "float32"
    """als with the cg solver, rank 16 and up: ``float16`` makes each half-step gather its fixed factor rows
    from a float16 copy (made once per half-step; the arithmetic stays float32 and float64), which halves
    the bytes the kernels read, and those the Dask engine sends. Each factor is rounded to 11 significant
    bits: ml-100k's rank-64 test RMSE moved by at most 2e-6 per fold. Below rank 16 (a row of at most one
    cache line) the rows stay float32 (see the README's speed section)."""
    clip: bool = True
    """als, bias, mean: predicted ratings (predict, evaluate's RMSE and MAE, the test RMSE in the
    training log) are clipped to the training data's rating scale; rankings use the raw scores."""
    threshold: float = 0.0
    """Ranking models: ratings at or above this count as interactions (positives); the rest are ignored."""
    alpha: float = 1.0
    """implicit_als: confidence slope (see ``confidence``)."""
    confidence: str = "1+alpha*r"
    """implicit_als: confidence of an interaction, ``1+alpha*r`` (Spark, LensKit) or ``alpha*r`` (implicit)."""
    strength: str = "rating"
    """implicit_als: what r is in the confidence: the ``rating``, or 1 for every interaction (``binary``)."""
    learning_rate: float = 0.05
    """bpr: SGD step size of the first epoch."""
    lr_decay: float = 1.0
    """bpr: the step size is multiplied by this after every epoch."""
    negatives: str = "uniform"
    """bpr: negative items drawn ``uniform``ly or by ``popularity`` (weight n_i^0.75), never a positive of the user."""
    burn_in: int = 50
    """bpmf: sweeps discarded before samples are kept (must be < n_iter; bpmf's n_iter defaults to 200)."""
    noise_precision: float = 2.0
    """bpmf: precision beta of the rating noise N(0, 1/beta); with ``sample_noise`` the first sweep's value."""
    sample_noise: bool = True
    """bpmf: draw beta every sweep from its Gamma(1 + N/2, 1 + SSE/2) conditional instead of fixing it."""
    strata: int = 8
    """bpr: user blocks = item strata of the stratified SGD (parallel tasks per sub-epoch). The model
    depends on this (and the seed), never on the engine or worker count: keep it >= the workers."""

    def effective_solver(self) -> str:
        if self.solver != "auto":
            return self.solver
        return "cg" if self.kind in ("als", "implicit_als") else "cholesky"

    def validate(self) -> None:
        _choice("model.kind", self.kind, MODEL_KINDS)
        _choice("model.solver", self.solver, ("auto", "cholesky", "cg"))
        _at_least("model.cg_steps", self.cg_steps, 1)
        _choice("model.gather_dtype", self.gather_dtype, ("float32", "float16"))
        if self.gather_dtype == "float16" and (self.kind != "als" or self.effective_solver() != "cg"):
            raise ConfigError(f"model.gather_dtype: float16 needs kind = \"als\" and solver = \"cg\" (the kernels that "
                              f"read float16 rows), got kind = \"{self.kind}\", solver = \"{self.effective_solver()}\"")
        _choice("model.reg_mode", self.reg_mode, ("weighted", "plain"))
        _choice("model.confidence", self.confidence, CONFIDENCES)
        _choice("model.strength", self.strength, ("rating", "binary"))
        _choice("model.negatives", self.negatives, ("uniform", "popularity"))
        _at_least("model.rank", self.rank, 1)
        _at_least("model.n_iter", self.n_iter, 1)
        _at_least("model.strata", self.strata, 1)
        for key in ("reg", "bias_reg", "rank_damping", "tol", "alpha", "learning_rate", "lr_decay", "genre_reg"):
            value = getattr(self, key)
            if not value >= 0:
                raise ConfigError(f"model.{key}: must be >= 0, got {value}")
        if self.kind == "genre_als" and self.genre_reg <= 0:
            raise ConfigError(f"model.genre_reg: genre_als needs genre_reg > 0, got {self.genre_reg}")
        if self.kind in ("als", "implicit_als", "genre_als") and self.reg_mode == "plain" and self.reg == 0:
            raise ConfigError("model.reg: plain regularization needs reg > 0 so every system is solvable")
        if self.kind == "implicit_als" and self.alpha == 0 and self.confidence == "alpha*r":
            raise ConfigError("model.alpha: with confidence alpha*r, alpha must be > 0")
        if self.kind == "bpmf":
            _at_least("model.burn_in", self.burn_in, 0)
            if self.burn_in >= self.n_iter:
                raise ConfigError(f"model.burn_in: must be < model.n_iter ({self.n_iter}) so that samples are kept, "
                                  f"got {self.burn_in}")
            if not self.noise_precision > 0:
                raise ConfigError(f"model.noise_precision: must be > 0, got {self.noise_precision}")
        if self.kind == "bpr" and self.learning_rate == 0:
            raise ConfigError("model.learning_rate: bpr needs a positive step size")


# Keys only one kind reads: left out of other kinds' checkpoint fingerprints, so adding such a key
# never makes an older checkpoint of another kind unresumable.
KIND_ONLY_KEYS: dict[str, tuple[str, ...]] = {"bpmf": ("burn_in", "noise_precision", "sample_noise"),
                                              "genre_als": ("genre_reg",)}
