"""Numba's threading layer, which runs the ``prange`` loops of every parallel kernel.

A process whose threads may run parallel kernels at the same moment (a Dask worker with several
task slots) needs a thread-safe layer: ``tbb`` or ``omp``. Numba's third, ``workqueue``, aborts the
whole process when two threads enter it at once ("Concurrent access has been detected"). Numba
picks its layer once per process, when the first parallel kernel runs, in the order of
NUMBA_THREADING_LAYER_PRIORITY, and falls back to ``workqueue`` when neither library loads.
"""

from __future__ import annotations

import numba

THREAD_SAFE = ("tbb", "omp")


def start_threading_layer(concurrent: bool) -> str:
    """Start this process's threading layer (if no kernel has yet) and return its name.

    With ``concurrent``, a layer not chosen yet is chosen among the thread-safe ones (Numba's
    ``threadsafe`` selection) unless NUMBA_THREADING_LAYER names one; Numba raises ValueError when none
    of them loads. Single-threaded processes keep Numba's own choice, which may be ``workqueue``.
    """
    try:
        return str(numba.threading_layer())  # started already: fixed for the life of the process
    except ValueError:
        pass
    if concurrent and numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "threadsafe"
    numba.get_num_threads()  # starts the layer
    return str(numba.threading_layer())
