"""Float16 copies of a fixed factor matrix for the explicit CG kernels to gather from (``model.gather_dtype``).

A half-step reads one src row per rating at random. At rank 64 the user matrix of the ml-25m shape is
42 MB in float32, larger than this machine's 32 MB L3, so most of those reads go to memory; its float16
copy is 21 MB. The kernels widen each gathered row to float32 as they load it (lanes.gather_matrix) and
do all arithmetic as before, so they solve the same system against the copy's values: each factor
moved by at most 2^-11 of itself (float16's rounding), the bias column too.

The copy is float16 bits in a uint16 array (Numba has no float16 arrays), made once per half-step by the
engine where the tasks run, by ``half_copy`` or ``narrow_into``: 16 floats per instruction (5 ms for the
42 MB matrix, against 75 ms for numpy's astype), rounded to nearest even, exactly as numpy's astype.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from recsys_dist.kernels.lanes import narrow_to_half


@njit(cache=True, nogil=True)
def _narrow(src, out):
    narrow_to_half(src, out)


def narrow_into(src: np.ndarray, out: np.ndarray) -> None:
    """Write the float16 bits of C-contiguous float32 ``src`` into uint16 ``out`` of the same shape."""
    if src.dtype != np.float32 or out.dtype != np.uint16 or src.shape != out.shape:
        raise ValueError(f"narrow_into: float32 src and uint16 out of one shape, got {src.dtype} {src.shape} and "
                         f"{out.dtype} {out.shape}")
    _narrow(np.ascontiguousarray(src).reshape(-1), out.reshape(-1))


def half_copy(src: np.ndarray) -> np.ndarray:
    """The float16 bits of float32 ``src``, a new uint16 array of its shape."""
    out = np.empty(src.shape, np.uint16)
    narrow_into(src, out)
    return out


def widened(bits: np.ndarray) -> np.ndarray:
    """The float32 values of float16 bits: what the kernels compute with when they gather from ``bits``."""
    return bits.view(np.float16).astype(np.float32)
