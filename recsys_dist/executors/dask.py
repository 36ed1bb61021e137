"""Dask executor: a ``distributed.Client`` to a scheduler address or to an in-process LocalCluster.

Blocks are built by tasks on the workers (each reads only the Parquet it needs) and stay
there as futures across iterations; the client never holds the ratings. Each block task is pinned
to the worker holding its block, so no block moves.

Sharded matrices (the factors while training) are one future of rows per block, made on the worker
holding the block and replaced each half-step by the rows its task returned, which stay on that
worker: the client holds keys, never rows. A half-step's src matrix reaches the tasks peer to peer
(``dask_sending``): broadcast, assembled once per worker by a task that concatenates the src row
futures (Dask fetches the missing ones from the peers holding them), or routed, each worker receiving
from each src block only the rows its blocks read; each block task reads its warm-start rows in place;
only the tasks' small stats reach the client. Faults are Dask's to handle: a lost worker's tasks are rescheduled and its futures
recomputed from their lineage. A block comes back from its loader task; a rows future from the task
that made it, whose inputs are the previous half-step's rows: the client releases every old future,
but the scheduler keeps the (small) task records they came from, so a lost rows future is rebuilt by
replaying the half-steps since its matrix was created (the first iteration: from the seed; after a
resume: from the checkpoint files). The result is the same model, at a cost that grows with the
iteration a loss happens in (replays only the lost rows' dependencies, but those are every block of
the earlier half-steps); workers hold only the current rows.

Driver matrices (scoring a model in memory, the kinds not yet sharded) are scattered from the client
once per half-step (each worker then fetches one copy from a peer) and new rows gathered back; only
the blocks whose copy of the scattered matrix died with a worker are resubmitted (with a new
scatter). A task that raises fails the step at once: it is never retried.

With ``dask_cluster`` (connecting and checking the cluster), ``dask_tasks`` (what the tasks run on the
workers), ``dask_sending`` and ``dask_waiting`` (waiting on tasks, and their errors), the only places that use
``distributed``.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any, Callable, Sequence

import numpy as np

import recsys_dist
from recsys_dist.data.atomic import MANIFEST
from recsys_dist.errors import ConfigError, DataError, FitError
from recsys_dist.executors.base import DriverMatrices, Loader, Task, check_rows_readable, check_same_kind
from recsys_dist.executors.dask_cluster import _connect, check_workers, dataset_visible, paused_workers, upload_package
from recsys_dist.executors.dask_routing import MODES
from recsys_dist.executors.dask_sending import Sending, near
from recsys_dist.executors.dask_tasks import (_build, _cores, _describe, _init_rows, _map_remote, _piece, _solve_remote,
                                             _solve_sharded, _stats, _transferred, _update_remote, kernel_threads, rows_of)
from recsys_dist.executors.dask_waiting import Waiting
from recsys_dist.kernels.half import half_copy


log = logging.getLogger(__name__)


class DaskExecutor(DriverMatrices):
    name = "dask"

    def __init__(self, scheduler: str = "local", workers: int = 2, threads: int = 1, connect_timeout: float = 10.0,
                 retries: int = 3, upload: str = "", tls: tuple[str, str, str] | None = None,
                 pause_timeout: float = 60.0, routing_mode: str = "auto") -> None:
        from distributed import Client, LocalCluster

        if routing_mode not in MODES:
            raise ConfigError(f"engine.routing: {routing_mode!r} is not one of {', '.join(MODES)}")
        self.cluster = None
        self.sending = Sending(self, routing_mode)
        self._cols: dict[str, int] = {}  # each sharded matrix's columns
        self._sent: dict[str, int] = {}  # each worker's transfer counter at the last transferred_bytes()
        self.retries = retries
        self._blocks: dict[str, list] = {}
        self._shards: dict[str, tuple[str, list]] = {}  # sharded matrix -> (its side, one rows future a block)
        self.fetches = 0
        if scheduler == "local":
            import dask.config

            # how often a task may lose its worker before Dask gives up on it (KilledWorker); a running
            # scheduler keeps its own distributed.scheduler.allowed-failures (and the two below: deploy/'s
            # image sets them). Work stealing would move a block's task away from its block, which then travels
            # to it; the workers' statistical profiler samples every thread 100 times a second. Without them
            # an ml-25m-shape iteration on 2 workers ran 4% faster and moved 13% fewer bytes.
            with dask.config.set({"distributed.scheduler.allowed-failures": retries,
                                  "distributed.scheduler.work-stealing": False,
                                  "distributed.worker.profile.enabled": False}):
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                            dashboard_address="127.0.0.1:0", silence_logs=logging.WARNING)
            self.client = Client(self.cluster)
        else:
            self.client = _connect(scheduler, connect_timeout, tls)
        try:
            try:
                self.client.wait_for_workers(1, timeout=max(connect_timeout, 30.0))
            except TimeoutError:
                paused = paused_workers(self.client)
                if paused:
                    raise FitError(f"the Dask scheduler at {scheduler} has no running worker: {paused}") from None
                raise ConfigError(f"engine.scheduler: the Dask scheduler at {scheduler} has no workers; start some "
                                  "with `dask worker ADDRESS`") from None
            if upload:
                upload_package(self.client, upload)
            check_workers(self.client, recsys_dist.__version__)
        except BaseException:
            self.close()
            raise
        info = self.client.scheduler_info()
        self.n_workers = max(1, len(info.get("workers", {})))
        # threads > 0 is passed to every task; 0 lets each task size itself from its worker host.
        self.task_threads = threads
        self._threads = {} if threads else kernel_threads(
            self.client.run(_cores), {a: w["nthreads"] for a, w in info.get("workers", {}).items()})
        self._token = uuid.uuid4().hex[:8]
        self._bounds: dict[str, list[tuple[int, int]]] = {}
        self._matrices: dict[str, np.ndarray] = {}
        self.waiting = Waiting(self.client, pause_timeout, self._bounds)

    @property
    def dashboard_link(self) -> str:
        return self.client.dashboard_link

    def load_blocks(self, side: str, loader: Loader, args: Sequence[tuple]) -> list[np.ndarray]:
        if self.cluster is None:  # a LocalCluster shares this machine and directory: what we see, it sees
            self._check_workers_see(sorted({a for call in args for a in call if isinstance(a, str)}))
        keys = [f"inblock-{side}-{i}-{self._token}" for i in range(len(args))]
        places = self._places(len(args))
        futures = [self.client.submit(loader, *a, key=k, pure=False, **near(place))
                   for a, k, place in zip(args, keys, places)]
        return self._keep_blocks(side, futures)

    def _places(self, n_blocks: int) -> list[tuple[str, ...]]:
        """Where each of ``n_blocks`` blocks is built: the workers in turn, so each holds as many blocks as
        another (give or take one). A block's tasks run where it lives, so a worker Dask had given 12 of 20
        blocks finished each half-step 3 blocks after the other one (left to Dask, placements are uneven)."""
        workers = sorted(self.client.scheduler_info().get("workers", {}))
        return [(workers[b % len(workers)],) if workers else () for b in range(n_blocks)]

    def _keep_blocks(self, side: str, futures: list) -> list[np.ndarray]:
        """Keep ``futures`` as the resident blocks of ``side``; their bounds and per-row counts."""
        self._blocks[side] = futures
        described = self.waiting.gather(self.client.map(_describe, futures, pure=False), f"building the {side} blocks")
        self._bounds[side] = [(lo, hi) for lo, hi, _ in described]
        return [counts for _, _, counts in described]

    def shuffle_blocks(self, side: str, source: str, split: Callable[..., Any], split_args: tuple,
                       build: Loader, args: Sequence[tuple]) -> list[np.ndarray]:
        # each source block is cut where it lives, each piece travels once, worker to worker; the split and
        # piece futures are dropped once the blocks exist, but Dask keeps their tasks to rebuild a lost block;
        # Dask runs each split where its block is (the larger input)
        splits = [self.client.submit(split, block, *split_args, key=f"split-{side}-{i}-{self._token}", pure=False)
                  for i, block in enumerate(self._blocks[source])]
        pieces = [[self.client.submit(_piece, s, j, key=f"piece-{side}-{i}-{j}-{self._token}", pure=False)
                   for i, s in enumerate(splits)] for j in range(len(args))]
        places = self._places(len(args))
        futures = [self.client.submit(_build, build, a, pieces[j], key=f"inblock-{side}-{j}-{self._token}", pure=False,
                                      **near(places[j])) for j, a in enumerate(args)]
        return self._keep_blocks(side, futures)

    def _check_workers_see(self, locations: list[str]) -> None:
        """Fail before any work unless every worker of the running cluster sees each dataset in ``locations``."""
        for location in locations:
            blind = sorted(w for w, sees in self.client.run(dataset_visible, location).items() if not sees)
            if blind:
                relative = "://" not in location and not os.path.isabs(location)
                hint = "; a relative path means each worker's own directory: give an absolute one" if relative else ""
                raise DataError(f"{location}: {len(blind)} of {self.n_workers} Dask workers cannot see this dataset "
                                f"(no {MANIFEST} there for {', '.join(blind)}); the workers read it themselves, so "
                                "put it on a shared filesystem mounted at the same path on every worker and on "
                                "this machine, or use an object-store URL (s3://..., gs://...) they can all reach"
                                f"{hint}")

    def new_matrix(self, name: str, n_rows: int, n_cols: int) -> np.ndarray:
        self._shards.pop(name, None)
        return super().new_matrix(name, n_rows, n_cols)

    def new_sharded(self, name: str, side: str, n_cols: int, init: Callable[..., np.ndarray] | None = None,
                    params: tuple = ()) -> None:
        self._matrices.pop(name, None)
        self.sending.ready.pop(name, None)
        blocks = self._blocks[side]
        homes = self._homes(blocks)
        futures = [self.client.submit(_init_rows, init, lo, hi, n_cols, params, name, pure=False, retries=0,
                                      key=f"rows-{name}-{b}-init-{uuid.uuid4().hex[:8]}", **near(homes[b]))
                   for b, (lo, hi) in enumerate(self._bounds[side])]
        self.waiting.check(dict(enumerate(futures)), side, f"initialising {name}")
        self._shards[name] = (side, futures)
        self._cols[name] = n_cols

    def fetch(self, name: str) -> np.ndarray:
        self.fetches += 1
        if name in self._matrices:
            return self._matrices[name].copy()
        parts = self.waiting.gather(self._shards[name][1], f"fetching {name}")
        return np.concatenate([rows_of(part) for part in parts])

    def _homes(self, blocks: list) -> list[tuple[str, ...]]:
        """The worker each block lives on (empty when it is being rebuilt after its worker died)."""
        holders = self.client.who_has(blocks)
        return [tuple(sorted(holders.get(block.key, ())))[:1] for block in blocks]

    def _own_rows(self, side: str, name: str) -> list:
        matrix_side, futures = self._shards[name]
        check_rows_readable(matrix_side, side, self._bounds, name)
        return futures

    def solve(self, side: str, task: Task, src: str, out: str, params: tuple,
              with_prev: bool = False, half_src: bool = False) -> list[np.ndarray]:
        if check_same_kind((src, out), self._shards):
            prev = self._own_rows(side, out)
            homes = self._homes(self._blocks[side])
            try:
                done = self._run_sharded(side, _solve_sharded, task, src, prev if with_prev else None, params,
                                         f"{side} half-step", routed=True, homes=homes, half=half_src,
                                         submitted=lambda futures: self.sending.ahead(out, list(futures.values())))
            except BaseException:
                self.sending.ready.pop(out, None)
                raise
            # the new rows stay where they were made, each block's task result (Solved) its rows future from
            # now on; the old ones are released (see the module docstring). The stats come back in one task per
            # worker, which Dask runs where its blocks' results are.
            groups: dict[tuple[str, ...], list[int]] = {}
            for b in range(len(done)):
                groups.setdefault(homes[b], []).append(b)
            per_worker = [(members, self.client.submit(_stats, *[done[b] for b in members], pure=False))
                          for members in groups.values()]
            gathered = self.waiting.gather([future for _, future in per_worker], f"the {side} half-step's stats")
            stats: list[Any] = [None] * len(done)
            for (members, _), block_stats in zip(per_worker, gathered):
                for b, s in zip(members, block_stats):
                    stats[b] = s
            self._shards[out] = (self._shards[out][0], [done[b] for b in range(len(done))])
            return stats
        # a warm start sends each block its current rows: one more copy of ``out`` per half-step
        results = self._run_blocks(side, _solve_remote, task, src, out if with_prev else None, params,
                                   f"{side} half-step", half=half_src)
        stats = []
        for lo, hi, rows, block_stats in results:
            self._matrices[out][lo:hi] = rows
            stats.append(block_stats)
        return stats

    def map_blocks(self, side: str, task: Callable[..., Any], src: str | None, rows: str | None,
                   params: tuple, per_block: Sequence[tuple] = ()) -> list[Any]:
        if check_same_kind((src, rows), self._shards):
            own = None if rows is None else self._own_rows(side, rows)
            done = self._run_sharded(side, _map_remote, task, src, own, params, f"map over the {side} blocks",
                                     per_block=per_block)
            return self.waiting.gather([done[b] for b in range(len(done))], f"the map over the {side} blocks")
        return self._run_blocks(side, _map_remote, task, src, rows, params, f"map over the {side} blocks", per_block)

    def update_strata(self, side: str, task: Callable[..., Any], own: str, other: str, params: tuple,
                      per_block: Sequence[tuple]) -> list[np.ndarray]:
        if check_same_kind((own, other), self._shards):
            raise ValueError("update_strata on the Dask engine takes driver matrices (new_matrix), not sharded ones")
        results = self._run_blocks(side, _update_remote, task, other, own, params, f"sub-epoch over the {side} blocks",
                                   per_block)
        stats = []
        for lo, hi, rows, other_idx, other_rows, block_stats in results:
            self._matrices[own][lo:hi] = rows
            self._matrices[other][other_idx] = other_rows
            stats.append(block_stats)
        return stats

    def _run_sharded(self, side: str, runner: Callable[..., Any], task: Callable[..., Any], src: str | None,
                     own: list | None, params: tuple, what: str, routed: bool = False,
                     homes: list[tuple[str, ...]] | None = None,
                     submitted: Callable[[dict[int, Any]], None] | None = None,
                     per_block: Sequence[tuple] = (), half: bool = False) -> dict[int, Any]:
        """``runner(task, block, src, own_rows, params, threads, extra)`` for every block of ``side``, where the block
        lives; ``src`` brought there by ``dask_sending`` (broadcast, or for a half-step -- ``routed`` -- whose
        routing tables chose it, only the rows each worker's blocks read); ``own`` the block's own rows future
        (or None); ``homes`` the blocks' workers when the caller has just asked; ``submitted`` called with the
        futures before they are waited for; ``extra`` the block's entry of ``per_block`` (empty when not
        given); ``half``: src as float16 bits (solve's half_src). Returns the finished futures by block: their
        data stays on the workers."""
        homes = homes or self._homes(self._blocks[side])
        inputs = self.sending.inputs(side, src, homes, routed, half)
        extras = list(per_block) or [()] * len(inputs)
        futures = {b: self.client.submit(runner, task, block, matrix, None if own is None else own[b], params,
                                         self._threads, extras[b], pure=False, retries=0, **near(homes[b]))
                   for b, (block, matrix) in inputs.items()}
        if submitted is not None:
            submitted(futures)
        self.waiting.check(futures, side, what)
        return futures

    def routing(self) -> dict[str, dict[str, Any]]:
        """Per dst side: the sending mode of its half-steps and the bytes the cost model predicted."""
        return self.sending.summary()

    def transferred_bytes(self) -> int:
        """Bytes the workers sent each other since the previous call (Dask's own counters), for traffic
        measurements: counted over the workers that answered both times, so a worker lost in between (or one
        that joined) drops out of the figure instead of failing the job."""
        now = self.client.run(_transferred, on_error="ignore")
        sent = sum(n - self._sent[w] for w, n in now.items() if w in self._sent)
        self._sent = now
        return int(sent)

    def _run_blocks(self, side: str, runner: Callable[..., Any], task: Callable[..., Any], src: str | None,
                    rows: str | None, params: tuple, what: str, per_block: Sequence[tuple] = (),
                    half: bool = False) -> list[Any]:
        """``runner(task, block, src, own_rows, params, threads, extra)`` for every block of ``side``; ``extra`` is
        the block's entry of ``per_block`` (empty when not given); ``half``: src sent as its float16 bits.

        Faults are left to Dask where Dask can handle them: a task on a worker that dies is rescheduled by the
        scheduler, and a block lost with its worker is rebuilt from its loader task. The one input Dask cannot
        rebuild is the scattered ``src`` (it has no task behind it): blocks cancelled because its copy died
        with a worker are resubmitted, alone, with a new scatter, up to ``retries`` times. A task that raises
        is not retried: the same inputs would raise again, so the step fails at once naming the block."""
        bounds = self._bounds[side]
        extras = list(per_block) or [()] * len(bounds)
        results: list[Any] = [None] * len(bounds)
        matrix = None if src is None else half_copy(self._matrices[src]) if half else self._matrices[src]
        pending = list(range(len(bounds)))
        for attempt in range(self.retries + 1):
            try:
                # every worker gets the fixed matrix once (from a peer); a copy lost with its worker is resent below
                src_future = None if matrix is None else self.waiting.scatter(matrix, self.n_workers, what)
            except (TimeoutError, OSError) as exc:  # a worker died under the scatter: scatter again
                reason = f"the broadcast failed ({exc})"
            else:
                try:
                    # run each block where it lives: otherwise tasks follow the (larger) matrix and blocks travel
                    blocks = [self._blocks[side][b] for b in pending]
                    holders = self.client.who_has(blocks)
                    futures = {b: self.client.submit(runner, task, block, src_future,
                                                     None if rows is None else self._matrices[rows][slice(*bounds[b])],
                                                     params, self._threads, extras[b], pure=False, retries=0,
                                                     **near(holders.get(block.key, ())))
                               for b, block in zip(pending, blocks)}
                    pending = self.waiting.collect(futures, results, side, what)
                    reason = f"{len(pending)} blocks lost the broadcast matrix with a worker"
                finally:
                    if src_future is not None:
                        self.client.cancel([src_future])
            if not pending:
                return results
            if attempt < self.retries:
                log.warning("the %s: %s; resubmitting them (%d of %d)", what, reason, attempt + 1, self.retries)
        raise FitError(f"the {what} failed on Dask after {self.retries + 1} attempts ({reason}); workers keep "
                       "dying: check their logs and memory, or raise engine.retries")

    def memory_limit(self) -> int | None:
        """The smallest worker memory limit in bytes; None when no worker has one."""
        limits = [w.get("memory_limit") or 0 for w in self.client.scheduler_info()["workers"].values()]
        return min((x for x in limits if x), default=None)

    def describe(self) -> str:
        where = "LocalCluster" if self.cluster is not None else self.client.scheduler.address
        return f"dask ({where}, {self.n_workers} workers, dashboard {self.client.dashboard_link})"

    def close(self) -> None:
        self._blocks.clear()
        self._shards.clear()
        self.sending.routes.clear()
        self.sending.ready.clear()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

