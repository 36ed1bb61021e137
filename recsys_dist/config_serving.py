"""Configuration sections of the jobs that use a trained model: evaluate, score, the item filters,
recommend and fold-in. Same rules as ``config.py`` (which composes them into ``JobConfig``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from recsys_dist.config_fields import _at_least, _choice
from recsys_dist.errors import ConfigError


@dataclass(frozen=True, slots=True)
class EvaluateConfig:
    model: str = ""
    """Model directory written by train."""
    data: list[str] = field(default_factory=list)
    """Datasets to score together (ratings matched to the model through original ids), e.g. a
    split's test and cold parts; one string is one dataset."""
    out: str = ""
    """Optional directory for metrics.json."""
    k: list[int] = field(default_factory=lambda: [10])
    """Cut-offs of the ranking metrics."""
    relevance: float = 4.0
    """A test rating at or above this is relevant."""
    train: str = ""
    """Training data whose items are excluded from the candidates; "" uses the model's record."""
    cold: str = "bias"
    """Ratings of users or items the model has not seen: ``bias`` (predict from biases) or ``exclude``."""

    def __post_init__(self) -> None:
        if isinstance(self.data, str):  # EvaluateConfig(data="split/test") from Python
            object.__setattr__(self, "data", [self.data] if self.data else [])

    def validate(self) -> None:
        if not self.k or min(self.k) < 1:
            raise ConfigError(f"evaluate.k: expected positive cut-offs, got {self.k}")
        _choice("evaluate.cold", self.cold, ("bias", "exclude"))


@dataclass(frozen=True, slots=True)
class ScoreConfig:
    model: str = ""
    """Model directory written by train."""
    out: str = ""
    """Output directory or fsspec URL (see recsys_dist/data/recommendations.py for the layout)."""
    k: int = 10
    users: str = ""
    """File of user ids, one per line (a header line is skipped); "" scores every user of the model."""
    train: str = ""
    """Training data whose items are not recommended again; "" uses the model's record."""
    block_users: int = 20_000
    """Users scored and written per part (at least two parts per engine worker)."""

    def validate(self) -> None:
        _at_least("score.k", self.k, 1)
        _at_least("score.block_users", self.block_users, 1)


@dataclass(frozen=True, slots=True)
class FilterConfig:
    """Which items may be recommended (score and recommend jobs); every rule must pass."""

    allow: str = ""
    """File of item ids that alone may be recommended (one per line; a header is skipped)."""
    deny: str = ""
    """File of item ids never recommended."""
    genres: list[str] = field(default_factory=list)
    """Only items with at least one of these genres (names as in the dataset, any case)."""
    min_ratings: int = 0
    """Only items with at least this many training ratings."""

    def validate(self) -> None:
        _at_least("filter.min_ratings", self.min_ratings, 0)


@dataclass(frozen=True, slots=True)
class RecommendConfig:
    model: str = ""
    """Model directory written by train."""
    user: str = ""
    """The original id of the user to recommend for."""
    k: int = 10
    explain: int = 3
    """Rated items shown as the reason for each recommendation (0: none)."""
    cold_start: str = "none"
    """A user the model does not know: ``none`` (an error) or ``popular`` (popular, well-rated items)."""
    fold_in: str = ""
    """Ratings file (user_id,item_id,rating) of new or updated users, folded in before recommending."""
    train: str = ""
    """Training data (the user's rated items); "" uses the model's record."""

    def validate(self) -> None:
        _at_least("recommend.k", self.k, 1)
        _at_least("recommend.explain", self.explain, 0)
        _choice("recommend.cold_start", self.cold_start, ("none", "popular"))


@dataclass(frozen=True, slots=True)
class FoldInConfig:
    model: str = ""
    """Model directory to start from (left unchanged)."""
    ratings: str = ""
    """Ratings file (user_id,item_id,rating) of the users to fold in, in any ingest format."""
    out: str = ""
    """Directory of the updated model."""

    def validate(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class SimilarItemsConfig:
    model: str = ""
    """Model directory written by train."""
    out: str = ""
    """Output directory or fsspec URL, published like score's (item_block=NNNNN parts, _SUCCESS last)."""
    k: int = 10
    items: str = ""
    """File of item ids, one per line (a header line is skipped); "" does every item with factors."""
    block_items: int = 20_000
    """Items computed and written per part."""

    def validate(self) -> None:
        _at_least("similar.k", self.k, 1)
        _at_least("similar.block_items", self.block_items, 1)
