"""Exceptions raised by recsys_dist.

Every message names the file, line, field or key at fault and says what to do next;
jobs print it on one line and exit non-zero.
"""


class RecsysError(Exception):
    """Base class of every error this package raises on purpose."""

    exit_code = 1


class ConfigError(RecsysError, ValueError):
    """A configuration key or value is unknown or invalid."""

    exit_code = 2


class DataError(RecsysError, ValueError):
    """Input data is missing, malformed or inconsistent."""


class FitError(RecsysError, RuntimeError):
    """Training failed: a solver reported an error or factors became non-finite."""


class CheckpointError(RecsysError, RuntimeError):
    """A checkpoint or saved model is missing, corrupt or incompatible."""
