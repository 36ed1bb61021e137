"""recsys_dist: distributed matrix-factorization recommender training.

The estimators (``ALS``, ``ImplicitALS``, ``BPR``, ``BPMF``, ``GenreALS``, ``Popular``) and ``tune`` are imported on first use, so
``import recsys_dist`` (which every Dask worker does to check its version) stays cheap.
"""

__version__ = "0.1.0"  # the package version (pyproject reads it from here); workers must match the job's
__all__ = ["ALS", "BPMF", "BPR", "GenreALS", "ImplicitALS", "Popular", "Recommender", "__version__", "tune"]


def __getattr__(name: str):  # noqa: ANN202 - PEP 562 lazy attributes
    if name == "tune":
        from recsys_dist.tuning import tune

        return tune
    if name in __all__:
        from recsys_dist import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'recsys_dist' has no attribute {name!r}")
