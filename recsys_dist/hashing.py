"""Counter-based randomness: values that depend only on (seed, keys), never on call order,
so splits and initial factors are the same on every engine, block count and worker."""

import numpy as np


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a well-mixed 64-bit hash of each uint64."""
    with np.errstate(over="ignore"):
        z = np.asarray(x).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform01(keys: np.ndarray) -> np.ndarray:
    """A uniform (0, 1) float64 per uint64 key (never exactly 0)."""
    return ((mix64(keys) >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def normal(seed: int, stream: int, rows: np.ndarray, n_cols: int) -> np.ndarray:
    """Standard normals [len(rows), n_cols]; entry (r, c) depends only on (seed, stream, r, c)."""
    base = mix64(np.array([seed * 1_000_003 + stream], np.uint64))[0]
    cell = rows.astype(np.uint64)[:, None] * np.uint64(2 * n_cols) + np.arange(2 * n_cols, step=2, dtype=np.uint64)
    with np.errstate(over="ignore"):
        u1, u2 = uniform01(cell ^ base), uniform01((cell + np.uint64(1)) ^ base)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
