"""The benchmark job: how fast is an ALS iteration, against what this machine can do.

It prepares a dataset (generated at a named shape, or read with ``--data``) and an 80/20
split, measures the float32 matrix-multiply rate of this machine (numpy 4096 x 4096,
all cores), then trains and reports per iteration and per half-step:

- seconds (setup -- block building, initialisation -- and the first iteration, which
  includes any kernel compilation, are reported apart from the steady state);
- the work done by the solver actually used (``half_step_flops``), and the achieved GFLOP/s as a
  fraction of the matmul rate;
- a roofline: the memory bandwidth measured in the same run (``triad_bandwidth``), the bytes a
  half-step must move (``half_step_bytes``), the seconds each limit allows and the achieved
  fraction of the binding one (the larger of the two);
- kernel seconds summed over blocks, so engine overhead (transfer, scheduling,
  serialisation) shows as wall time minus kernel time per worker;
- the peak memory of all processes together (proportional set size, so shared-memory
  segments mapped by several processes count once), and of the driver process alone (what a
  client of a cluster must hold: no factor matrix); with ``bench.score_k``, the ``score`` job on the
  model saved in ``bench.work_dir``: its rate and its process's peak.

Figures are printed and appended as one JSON line to ``bench.out``. Benchmarks print
figures; nothing here asserts a time.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import platform
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from recsys_dist.config import JobConfig, ScoreConfig, SplitConfig, SynthConfig, TrainConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.split import SUMMARY, split
from recsys_dist.data.synth_output import synth
from recsys_dist.errors import ConfigError, FitError
from recsys_dist.kernels.als_gram import GRAM_COLS
from recsys_dist.blocking import block_bounds
from recsys_dist.config import EngineConfig
from recsys_dist.executors import make_executor
from recsys_dist.traffic import half_step_traffic
from recsys_dist.train import fit
from recsys_dist.train_blocks import build_blocks

log = logging.getLogger(__name__)


def matmul_rate(n: int = 4096, repeats: int = 3) -> float:
    """Best float32 GFLOP/s of an n x n matrix product with numpy's BLAS on all cores."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b  # warm up threads and caches
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2.0 * n**3 / best / 1e9


class PeakMemory:
    """Samples the summed memory of this process and all its descendants in a background thread, and the
    peak resident memory of this process alone (the driver: with a LocalCluster the workers are its children,
    the scheduler lives in it). The driver's peak is the kernel's high-water mark, reset on entry where Linux
    allows (/proc/self/clear_refs), so no short spike between samples is missed. Sampled once a second: a
    sample reads every process's smaps (the kernel walks their page tables), and at 10 a second that took a
    fifth of a core from the engine being measured (py-spy on the driver of a 2-worker Dask run)."""

    def __init__(self, interval: float = 1.0) -> None:
        import psutil

        self._psutil, self._interval = psutil, interval
        self.peak_bytes = self.driver_peak_bytes = self.driver_start_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._high_water = False

    def _sample(self) -> int:
        root = self._psutil.Process()
        total = 0
        for proc in [root, *root.children(recursive=True)]:
            try:
                info = proc.memory_full_info()
                total += getattr(info, "pss", info.rss)
            except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
                continue
        self.driver_peak_bytes = max(self.driver_peak_bytes, root.memory_info().rss)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._sample())
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakMemory:
        try:  # "5" resets this process's VmHWM to its current resident size
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self._high_water = True
        except OSError:
            pass
        self.driver_start_bytes = self._psutil.Process().memory_info().rss
        self.peak_bytes = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._high_water:
            self.driver_peak_bytes = max(self.driver_peak_bytes, _vm_hwm())


def _vm_hwm() -> int:
    """This process's peak resident memory since the last reset (Linux), in bytes; 0 when unknown."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def prepare_split(cfg: JobConfig) -> Path:
    """A split directory to train on: ``bench.data`` as given, else a generated shape, cached by shape and seed."""
    b = cfg.bench
    work = Path(b.work_dir)
    if b.data:
        data = Path(b.data)
        if (data / "train" / "manifest.json").exists():
            return data
        target = work / f"split-of-{data.name}"
        source = data
    else:
        source = work / f"{b.shape}-seed{b.seed}"
        if not (source / "manifest.json").exists():
            started = time.perf_counter()
            synth(SynthConfig(shape=b.shape, seed=b.seed, out=str(source)))
            log.info("generated the %s shape in %.1f s -> %s", b.shape, time.perf_counter() - started, source)
        target = work / f"{b.shape}-seed{b.seed}-split"
    summary = target / SUMMARY
    if not summary.exists() or json.loads(summary.read_text()).get("data") != str(source):
        split(SplitConfig(data=str(source), out=str(target), method="random", test_fraction=0.2, seed=b.seed))
    return target


def half_step_flops(nnz: int, rows_solved: int, rank: int, cg_steps: int = 0) -> float:
    """Flops of one explicit half-step with K = rank + 1 unknowns per row.

    Cholesky (``cg_steps`` = 0): nnz K (K + 1) for the Gram matrices plus K^3 / 3 per solved row.
    CG up to K = GRAM_COLS (``kernels/als_gram.py``): the full Gram matrix and right-hand side, 2 nnz K (K + 1),
    then per solved row a K x K product for the first residual, one per step and one for the error.
    Wider CG: the gather pass forms the first residual (4 nnz K), each step applies the system in one
    pass over the gathered rows, a dot product and a multiply-add per rating (4 nnz K), the squared error
    is one more pass (2 nnz K).
    """
    width = rank + 1
    if cg_steps and width <= GRAM_COLS:
        return 2.0 * nnz * width * (width + 1) + rows_solved * (2.0 + cg_steps) * 2.0 * width**2
    if cg_steps:
        return nnz * width * (6.0 + 4.0 * cg_steps)
    return nnz * width * (width + 1) + rows_solved * width**3 / 3.0


def half_step_bytes(nnz: int, n_dst: int, rank: int, cg_steps: int = 0, src_bytes: int = 4) -> float:
    """Bytes one explicit half-step must move if no gathered row is reused from cache: per rating its
    index and value (8 B) and one src row of K = rank + 1 values of ``src_bytes`` each (2 with
    model.gather_dtype = "float16"; the copy's own writing, 6 B per src value, is left out: it streams
    and is made once per half-step); per dst row its new float32 row written and, for CG, its current
    row read."""
    width = rank + 1
    return nnz * (8.0 + src_bytes * width) + n_dst * 4.0 * width * (2 if cg_steps else 1)


def triad_bandwidth(n: int = 1 << 24, repeats: int = 5) -> float:
    """Best GB/s of a STREAM triad a = b + s c over float64 arrays of ``n`` (3 x 128 MB, beyond any
    cache) with numpy on all cores: one thread per core, each over its own slice, in 64 k-element
    pieces so the temporary s c stays in cache and memory sees only b, c read and a written (24 B per
    element, STREAM's count)."""
    from concurrent.futures import ThreadPoolExecutor

    cores = os.cpu_count() or 1
    a, b, c = np.empty(n), np.full(n, 1.0), np.full(n, 2.0)
    piece = 1 << 16
    slices = np.linspace(0, n, cores + 1).astype(int)

    def triad(part: int) -> None:
        tmp = np.empty(piece)
        for lo in range(slices[part], slices[part + 1], piece):
            hi = min(lo + piece, slices[part + 1])
            np.multiply(c[lo:hi], 3.0, out=tmp[:hi - lo])
            np.add(b[lo:hi], tmp[:hi - lo], out=a[lo:hi])

    best = float("inf")
    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(triad, range(cores)))  # warm up: page faults, threads
        for _ in range(repeats):
            started = time.perf_counter()
            list(pool.map(triad, range(cores)))
            best = min(best, time.perf_counter() - started)
    return 24.0 * n / best / 1e9


def roofline(seconds: float, flops: float, nbytes: float, gflops_rate: float, gbs_rate: float) -> dict[str, Any]:
    """The seconds the arithmetic and the memory traffic each need at the measured rates, the binding
    (larger) one, and the fraction of it achieved in ``seconds``."""
    flop_floor = flops / (gflops_rate * 1e9)
    memory_floor = nbytes / (gbs_rate * 1e9)
    binding = "memory" if memory_floor >= flop_floor else "compute"
    return {"flop_floor_seconds": flop_floor, "memory_floor_seconds": memory_floor, "binding_limit": binding,
            "fraction_of_roofline": max(flop_floor, memory_floor) / seconds}


def score_throughput(model_url: str, cfg: JobConfig) -> dict[str, Any]:
    """Seconds the ``score`` job takes for every user of the saved model at K = ``bench.score_k`` (training
    items excluded; each block task reads its rows where it runs and writes its Parquet part), run twice: the
    first pass includes starting the engine's workers and compiling; the second is reported, with the job
    process's peak memory."""
    from recsys_dist.scoring import run_scoring

    score_cfg = ScoreConfig(model=model_url, out=str(Path(cfg.bench.work_dir) / "scores"), k=cfg.bench.score_k)
    passes = []
    for _ in range(2):
        gc.collect()
        started = time.perf_counter()
        with PeakMemory() as memory:
            users = run_scoring(score_cfg, cfg.engine)["users"]
        passes.append(time.perf_counter() - started)
    rate = users / passes[1]
    return {"score_k": cfg.bench.score_k, "score_first_pass_seconds": passes[0], "score_seconds": passes[1],
            "score_users_per_second": rate, "score_users_per_second_per_core": rate / (os.cpu_count() or 1),
            "score_driver_peak_memory_gb": memory.driver_peak_bytes / 1e9}


PEER_SCRIPT = Path(__file__).resolve().parents[1] / "jobs" / "bench_peer.py"  # a script for another interpreter, not a module


def peer_interpreter(value: str) -> str:
    """The executable ``--peer-python`` names (a path, or a command on PATH); ConfigError if there is none."""
    found = shutil.which(value)
    if not found:
        raise ConfigError(f"--peer-python (bench.peer_python) {value!r}: no such executable; give the path of the "
                          "python of the environment where LensKit or implicit is installed")
    return found


def parse_peer_output(text: str, our_seconds: float) -> list[dict[str, Any]]:
    """The ``PEER {json}`` lines of bench_peer.py's output, each timed peer with ``ratio`` = its seconds per
    iteration / ours (above 1: we are faster). Other lines (the peers' own logging) are ignored."""
    peers = []
    for line in text.splitlines():
        if not line.startswith("PEER "):
            continue
        peer = json.loads(line[5:])
        if "seconds_per_iteration" in peer:
            peer["ratio"] = peer["seconds_per_iteration"] / our_seconds
        peers.append(peer)
    return peers


def run_peers(cfg: JobConfig, train_dir: Path, our_seconds: float) -> list[dict[str, Any]]:
    """Time the peers of ``cfg.model.kind`` in their own interpreter on the same training split."""
    python = peer_interpreter(cfg.bench.peer_python)
    m = cfg.model
    args = [python, str(PEER_SCRIPT), "--train", str(train_dir), "--model", m.kind, "--rank", str(m.rank),
            "--reg", str(m.reg), "--alpha", str(getattr(m, "alpha", 1.0)),
            "--threads", str(max(1, cfg.engine.workers) * max(1, cfg.engine.threads))]
    log.info("timing the peers in %s", python)
    proc = subprocess.run(args, capture_output=True, text=True)
    peers = parse_peer_output(proc.stdout, our_seconds)
    if proc.returncode != 0 and not peers:
        raise FitError(f"--peer-python {python}: bench_peer.py failed (exit {proc.returncode}): "
                       f"{proc.stderr.strip()[-500:]}")
    return peers


PEER_KINDS = ("als", "implicit_als")  # the kinds bench_peer.py has peers for


def run_bench(cfg: JobConfig) -> dict[str, Any]:
    if cfg.bench.peer_python:  # fail before the long part
        peer_interpreter(cfg.bench.peer_python)
        if cfg.model.kind not in PEER_KINDS:
            raise ConfigError(f"--peer-python: no peer for --model {cfg.model.kind}; peers exist for "
                              f"{', '.join(PEER_KINDS)}")
    split_dir = prepare_split(cfg)
    train = Dataset.open(split_dir / "train")
    user_counts, item_counts = train.rating_counts()  # two columns a block at a time: the driver stays small
    users_rated, items_rated = int(np.count_nonzero(user_counts)), int(np.count_nonzero(item_counts))
    del user_counts, item_counts
    rank = cfg.model.rank
    solver = cfg.model.effective_solver()
    steps = cfg.model.cg_steps if solver == "cg" else 0
    flops = {"user": half_step_flops(train.n_ratings, users_rated, rank, steps),
             "item": half_step_flops(train.n_ratings, items_rated, rank, steps)}
    src_bytes = 2 if steps and cfg.model.gather_dtype == "float16" else 4
    nbytes = half_step_bytes(train.n_ratings, train.n_users, rank, steps, src_bytes) + half_step_bytes(
        train.n_ratings, train.n_items, rank, steps, src_bytes)
    rate = matmul_rate()
    log.info("matmul rate: %.1f GFLOP/s (float32 4096 x 4096, all cores)", rate)
    bandwidth = triad_bandwidth()
    log.info("memory bandwidth: %.1f GB/s (STREAM triad, numpy, all cores)", bandwidth)
    model_cfg = dataclasses.replace(cfg.model, tol=0.0)
    gc.collect()
    started = time.perf_counter()
    # scoring reads the model saved here, as the score job does: the driver holds no factor matrix either way
    model_url = str(Path(cfg.bench.work_dir) / "model") if cfg.bench.score_k else ""
    with PeakMemory() as memory:
        result = fit(TrainConfig(train=str(split_dir / "train")), model_cfg, cfg.engine, save_to=model_url,
                     in_memory=False)
    total = time.perf_counter() - started - result.save_seconds  # the save is score_throughput's set-up
    history = result.history
    steady = history[1:] if len(history) > 1 else history
    per_iter = [h["user_seconds"] + h["item_seconds"] for h in steady]
    seconds = float(np.median(per_iter))
    # the counts are the explicit model's (for the solver used); other kinds report seconds only
    iter_flops = flops["user"] + flops["item"] if cfg.model.kind == "als" else None
    workers = max(1, cfg.engine.workers) if cfg.engine.name != "inprocess" else 1
    figures: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "host": platform.node(), "cores": os.cpu_count(),
        "shape": cfg.bench.shape if not cfg.bench.data else str(cfg.bench.data),
        "n_users": train.n_users, "n_items": train.n_items, "train_ratings": train.n_ratings,
        "rank": rank, "engine": result.engine, "engine_name": cfg.engine.name, "workers": workers,
        "iterations": len(history),
        "setup_seconds": result.setup_seconds,
        "first_iteration_seconds": history[0]["user_seconds"] + history[0]["item_seconds"],
        "seconds_per_iteration": seconds,
        "seconds_per_iteration_all": per_iter,
        "user_half_step_seconds": float(np.median([h["user_seconds"] for h in steady])),
        "item_half_step_seconds": float(np.median([h["item_seconds"] for h in steady])),
        "kernel_seconds_per_iteration": float(np.median([h["user_task_seconds"] + h["item_task_seconds"]
                                                        for h in steady])),
        "model": cfg.model.kind, "solver": solver, "cg_steps": steps, "gather_dtype": cfg.model.gather_dtype,
        "gflop_per_iteration": iter_flops / 1e9 if iter_flops else None,
        "gflops": iter_flops / seconds / 1e9 if iter_flops else None,
        "matmul_gflops": rate,
        "fraction_of_matmul": iter_flops / seconds / 1e9 / rate if iter_flops else None,
        "triad_gbs": bandwidth,
        "gb_per_iteration": nbytes / 1e9 if iter_flops else None,
        "peak_memory_gb": memory.peak_bytes / 1e9,
        "driver_peak_memory_gb": memory.driver_peak_bytes / 1e9,
        "driver_baseline_memory_gb": memory.driver_start_bytes / 1e9,
        "total_seconds": total,
        "final_train_rmse": history[-1].get("train_rmse"),
    }
    if "transferred_bytes" in history[-1]:  # Dask: worker-to-worker bytes, measured, and the cost model's
        figures["transferred_gb_per_iteration"] = float(np.median([h["transferred_bytes"] for h in steady])) / 1e9
        figures["routing"] = history[-1]["routing"]
    figures["engine_overhead_seconds"] = seconds - figures["kernel_seconds_per_iteration"] / workers
    if iter_flops:
        figures.update(roofline(seconds, iter_flops, nbytes, rate, bandwidth))
    if cfg.bench.score_k:
        figures["model_save_seconds"] = result.save_seconds
        figures.update(score_throughput(model_url, cfg))
    if cfg.bench.peer_python:
        figures["peer_python"] = cfg.bench.peer_python
        figures["peers"] = run_peers(cfg, split_dir / "train", seconds)
    out = Path(cfg.bench.out or Path(cfg.bench.work_dir) / "results.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as fh:
        fh.write(json.dumps(figures) + "\n")
    figures["results_file"] = str(out)
    return figures


def dataset_traffic(url: str, n_blocks: int, workers: int, rank: int) -> dict[str, dict[str, float]]:
    """``traffic.half_step_traffic`` of both half-steps of a dataset cut into ``n_blocks`` blocks a side and
    spread over ``workers`` (its blocks built here, in this process, as training builds them)."""
    train = Dataset.open(url)
    blocks = {"user": n_blocks, "item": n_blocks}
    with make_executor(EngineConfig(name="inprocess")) as ex:
        build_blocks(ex, train, ("user", "item"), blocks)
        reads = {side: ex.map_blocks(side, _block_columns, None, None, ()) for side in ("user", "item")}
    bounds = {"user": block_bounds(train.n_users, blocks["user"]), "item": block_bounds(train.n_items, blocks["item"])}
    return {"user": half_step_traffic(reads["user"], bounds["item"], workers, rank),
            "item": half_step_traffic(reads["item"], bounds["user"], workers, rank)}


def _block_columns(block, src, own):  # noqa: ANN001, ANN202 - a map task: the src rows a block reads
    return block.indices
