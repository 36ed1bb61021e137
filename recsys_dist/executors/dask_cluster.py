"""The Dask cluster around the executor: connecting (TLS included), checking the workers before any work
(version, threading layer, what they can see), shipping a wheel to them, the scheduler address the
environment names, paused workers, and the completion queue the tune job reads. Part of the Dask
executor, the only place ``distributed`` is imported."""

from __future__ import annotations

import os
from typing import Any

from recsys_dist.errors import ConfigError

def _connect(scheduler: str, timeout: float, tls: tuple[str, str, str] | None):  # noqa: ANN202
    """A Client to ``scheduler``; with ``tls`` (CA, certificate, key) over mutual TLS, else as the Dask
    configuration says (which may also hold TLS settings)."""
    from distributed import Client, Security

    security = None
    if tls:
        for path in tls:
            if not os.path.isfile(path):
                raise ConfigError(f"engine.tls_*: no such file {path}")
        security = Security(tls_ca_file=tls[0], tls_client_cert=tls[1], tls_client_key=tls[2], require_encryption=True)
    try:
        return Client(scheduler, timeout=timeout, security=security)
    except (OSError, TimeoutError, TypeError, ValueError) as exc:
        hint = ("check the address or start one with `dask scheduler`" if not scheduler.startswith("tls://") else
                "a tls:// scheduler accepts only clients with a certificate signed by its CA: pass "
                "--set engine.tls_ca=CA --set engine.tls_cert=CERT --set engine.tls_key=KEY (deploy/make-certs.sh)")
        raise ConfigError(f"engine.scheduler: cannot reach the Dask scheduler at {scheduler} within {timeout:g} s "
                          f"({type(exc).__name__}: {exc}); {hint}") from None


def check_workers(client, expected: str) -> None:  # noqa: ANN001 - a distributed.Client
    """Fail before any work unless every worker imports recsys_dist at the job's version and runs parallel
    kernels on a thread-safe Numba threading layer (when it has several task threads)."""
    def probe() -> str:  # defined here so it travels by value: workers need not import this module
        try:
            import recsys_dist
        except Exception as exc:  # noqa: BLE001 - any import failure is reported, not raised
            return f"missing ({type(exc).__name__}: {exc})"
        return str(getattr(recsys_dist, "__version__", "unknown"))

    found = client.run(probe)
    bad = {worker: v for worker, v in sorted(found.items()) if v != expected}
    if bad:
        detail = "; ".join(f"{w}: {v if v.startswith('missing') else 'version ' + v}" for w, v in bad.items())
        raise ConfigError(f"engine.scheduler: {len(bad)} of {len(found)} Dask workers cannot run recsys_dist "
                          f"{expected}: {detail}. Install the same version in the worker image, or upload it with "
                          "--set engine.upload=WHEEL (see deploy/README.md)")
    unsafe = {worker: problem for worker, problem in sorted(client.run(threading_layer_problem).items()) if problem}
    if unsafe:
        detail = "; ".join(f"{w}: {problem}" for w, problem in unsafe.items())
        raise ConfigError(f"engine.scheduler: {len(unsafe)} of {len(found)} Dask workers cannot run parallel kernels "
                          f"safely: {detail}. Give them OpenMP (apt-get install libgomp1) or TBB (pip install tbb) "
                          "and leave NUMBA_THREADING_LAYER unset (or set it to omp or tbb), or start them with "
                          "--nthreads 1 (see deploy/README.md)")


def threading_layer_problem(dask_worker) -> str:  # noqa: ANN001 - a distributed.Worker
    """Run on a worker: start its Numba threading layer, thread-safe when it has several task slots
    (their kernels may run at once); "" when that worked, else what is wrong."""
    from recsys_dist.kernels.threading_layer import THREAD_SAFE, start_threading_layer

    slots = dask_worker.state.nthreads
    try:
        layer = start_threading_layer(concurrent=slots > 1)
    except ValueError as exc:  # Numba's "No threading layer could be loaded", with its own hint
        return f"no thread-safe Numba threading layer loads ({' '.join(str(exc).split())})"
    if slots > 1 and layer not in THREAD_SAFE:
        return (f"its {slots} task threads share Numba's {layer} threading layer, which aborts the worker when two "
                "kernels run at once")
    return ""


def dataset_visible(location: str) -> bool:
    """Run on a worker: whether the dataset at ``location`` is there from where the worker stands."""
    from recsys_dist.data.dataset import is_dataset

    try:
        return is_dataset(location)
    except Exception:  # noqa: BLE001 - a filesystem this worker cannot even open (a missing driver) hides it too
        return False


def upload_package(client, wheel: str) -> None:  # noqa: ANN001 - a distributed.Client
    """Install a built recsys_dist wheel on every worker of a running cluster, and on any that joins
    later (a worker plugin), into the worker's own directory: the worker's Python stays untouched."""
    from distributed.diagnostics.plugin import WorkerPlugin

    try:
        with open(wheel, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError(f"engine.upload: cannot read the wheel {wheel}: {exc.strerror}") from None

    class InstallWheel(WorkerPlugin):  # defined here so it travels by value to workers without the package
        name = "recsys_dist-wheel"

        def __init__(self, filename: str, data: bytes) -> None:
            self.filename, self.data = filename, data

        def setup(self, worker) -> None:  # noqa: ANN001
            import importlib
            import subprocess
            import sys

            target = os.path.join(worker.local_directory, "recsys_dist-site")
            path = os.path.join(worker.local_directory, self.filename)
            with open(path, "wb") as out:
                out.write(self.data)
            proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                                   "--upgrade", "--target", target, path], capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"pip could not install {self.filename}: {proc.stderr[-2000:]}")
            if target not in sys.path:
                sys.path.insert(0, target)
            for module in [m for m in sys.modules if m == "recsys_dist" or m.startswith("recsys_dist.")]:
                del sys.modules[module]
            importlib.invalidate_caches()

    client.register_plugin(InstallWheel(os.path.basename(wheel), data))


def configured_scheduler() -> str | None:
    """The scheduler address from the Dask configuration: DASK_SCHEDULER_ADDRESS, else a Dask YAML
    file's ``scheduler-address`` (Dask's own precedence, environment over file); None if neither."""
    import dask.config

    return dask.config.get("scheduler-address", None) or None


def paused_workers(client) -> str:  # noqa: ANN001 - a distributed.Client
    """A sentence naming the workers Dask has paused for memory and how to help, or "" if none is."""
    workers = client.scheduler_info()["workers"]
    paused = {a: w for a, w in sorted(workers.items()) if w.get("status") == "paused"}
    if not paused:
        return ""
    gib = 1 << 30
    detail = "; ".join(f"{a} uses {w.get('metrics', {}).get('memory', 0) / gib:.2f} GiB of its "
                       f"{(w.get('memory_limit') or 0) / gib:.2f} GiB limit" for a, w in paused.items())
    return (f"Dask has paused {len(paused)} of {len(workers)} workers for memory ({detail}), and a paused worker "
            "starts no task. Give workers more memory (dask worker --memory-limit), add workers, or raise "
            "engine.user_blocks / engine.item_blocks")


def completion_queue() -> Any:  # noqa: ANN401 - a distributed.as_completed
    """An empty ``distributed.as_completed``: futures added to it come out as they finish (the tune job's
    trials running as whole tasks on the workers)."""
    from distributed import as_completed

    return as_completed()
