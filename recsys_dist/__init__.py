"""recsys_dist: distributed matrix-factorization recommender training."""

__version__ = "0.1.0"  # the package version (pyproject reads it from here); workers must match the job's
