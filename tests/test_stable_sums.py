"""The conjugate-gradient row kernels give the same bits wherever their buffers sit in memory.

A fastmath sum in a loop that also stores into another array is guarded by a run-time check of
the two addresses, and its fallback sums in another order: the result then depends on where malloc
put the scratch buffers, which differs between runs, threads and processes (it once made one
engine's model differ from another's one run in twenty). Here the scratch buffers and the matrices
are carved out of one allocation in every adjacent order, at a range of gaps, and every row's bits
must match a run with separately allocated buffers. With the old fused gather loop put back, the
implicit kernel fails this at rank 8 (the layouts with the vectors just after the gather buffer);
the explicit kernel's old loop happened not to be versioned at these ranks, so its cases guard the
rule rather than a seen fault.
"""

from __future__ import annotations

import numpy as np
import pytest

from recsys_dist.kernels import als_cg, als_gram, implicit_als


def _data(rank: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_rows, n_src = 40, 300
    counts = rng.integers(0, 90, n_rows)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.concatenate([np.sort(rng.choice(n_src, c, replace=False)) for c in counts]).astype(np.int32)
    values = rng.integers(1, 6, indptr[-1]).astype(np.float32)
    src = np.zeros((n_src, rank + 1), np.float32)
    src[:, :rank] = rng.normal(0, 0.3, (n_src, rank))
    src[:, rank] = rng.normal(0, 0.1, n_src)
    prev = rng.normal(0, 0.3, (n_rows, rank + 1)).astype(np.float32)
    return indptr, indices, values, src, prev


def _carve(raw: np.ndarray, at: int, like: np.ndarray) -> np.ndarray:
    view = raw[at:at + like.nbytes].view(like.dtype).reshape(like.shape)
    view[...] = like
    return view


def _run(kind: str, rank: int, layout: tuple[str, ...] | None, gap: int) -> np.ndarray | None:
    """All output bits of one call; ``layout`` names the buffers placed one after another, ``gap`` bytes apart
    (None: the kernel has no such buffer)."""
    indptr, indices, values, src, prev = _data(rank)
    longest = int(np.diff(indptr).max())
    k = rank
    n_vec, n_cols = {"implicit": (5, k), "explicit": (4, k + 1), "gram": (0, 0)}[kind]
    buffers = {"x": np.zeros((longest, k), np.float32), "w": np.zeros(longest, np.float32),
               "vecs": np.zeros((n_vec, n_cols), np.float32), "src": src,
               "out": np.zeros_like(prev), "loss": np.zeros(len(prev))}
    if kind == "gram":  # its own scratch: the Gram rows and the 16-lane vectors, zeroed as gram_scratch makes them
        gram, vecs = als_gram.gram_scratch()
        buffers = {"gram": np.zeros_like(gram), "vecs": np.zeros_like(vecs), "src": src,
                   "out": np.zeros_like(prev), "loss": np.zeros(len(prev))}
    if layout is not None and not set(layout) <= set(buffers):
        return None
    if layout is not None:
        raw = np.zeros(sum(b.nbytes for b in buffers.values()) + gap * len(buffers) + 4096, np.uint8)
        at = (-raw.ctypes.data) % 64
        for name in layout:
            buffers[name] = _carve(raw, at, buffers[name])
            at += buffers[name].nbytes + gap
    b = buffers
    if kind == "implicit":
        y = src[:, :k].astype(np.float64)
        gram = np.ascontiguousarray(y.T @ y, np.float32)
        implicit_als._cg_rows(0, len(prev), indptr, indices, values, b["src"], prev, gram, 1.0, 2.0, False, False,
                              0.05, True, 3, b["out"], b["loss"], b["x"], b["w"], b["vecs"])
    elif kind == "gram":
        als_gram.cg_rows_gram(0, len(prev), indptr, indices, values, b["src"], prev, 3.5, 0.05, 0.05, True, 3,
                              b["out"], b["loss"], b["gram"], b["vecs"])
    else:
        als_cg._cg_rows(0, len(prev), indptr, indices, values, b["src"], prev, 3.5, 0.05, 0.05, True, 3, b["out"],
                     b["loss"], b["x"], b["w"], b["vecs"])
    return np.concatenate([b["out"].view(np.uint8).ravel(), b["loss"].view(np.uint8).ravel()])


LAYOUTS = [("x", "vecs"), ("vecs", "x"), ("w", "vecs"), ("vecs", "w"), ("x", "w", "vecs"), ("src", "x", "vecs"),
           ("x", "out", "vecs", "loss"),
           ("gram", "vecs"), ("vecs", "gram"), ("src", "gram", "vecs"), ("gram", "out", "vecs", "loss")]  # (the Gram one's)

CASES = [(kind, rank) for kind in ("implicit", "explicit") for rank in (8, 16, 32, 64)] + [
    ("explicit", rank) for rank in (0, 20, 33)] + [("gram", rank) for rank in (1, 8, 10, 15)]  # (explicit: rank 16 up)


@pytest.mark.parametrize(("kind", "rank"), CASES)
def test_cg_kernels_same_bits_wherever_buffers_sit(kind, rank):
    expected = _run(kind, rank, None, 0)
    for layout in LAYOUTS:
        for gap in range(0, 260, 12):
            got = _run(kind, rank, layout, gap)
            assert got is None or np.array_equal(got, expected), f"{kind} rank {rank}: buffers {layout} {gap} bytes apart"
