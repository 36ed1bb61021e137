"""Shared-memory executor: one machine, a pool of worker processes, no cluster.

Blocks are built by the pool workers straight into ``multiprocessing.shared_memory``
segments and the factor matrices live in shared memory too, so a half-step sends each
task only segment names and scalars: workers read the src matrix and write their rows of
the dst matrix in place. Nothing large is pickled, and there is one copy of the ratings
per side however many processes there are. Every segment is unlinked on close, which
the context manager guarantees on success, on error and on Ctrl-C.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
import uuid
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any, Callable, Sequence

import numpy as np

from recsys_dist import progress
from recsys_dist.blocking import InBlock
from recsys_dist.errors import FitError, RecsysError
from recsys_dist.executors.base import Loader, Task, check_rows_readable
from recsys_dist.kernels.half import narrow_into

PREFIX = "rsd"  # segment names start with this, so leaks are easy to find in /dev/shm


@dataclass(frozen=True, slots=True)
class ArrayRef:
    name: str
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True, slots=True)
class BlockRef:
    block_id: int
    lo: int
    hi: int
    indptr: ArrayRef
    indices: ArrayRef
    values: ArrayRef


_attached: dict[str, tuple[shared_memory.SharedMemory, np.ndarray]] = {}  # per worker process


def _create(array: np.ndarray, tag: str) -> ArrayRef:
    ref = _allocate(array.shape, array.dtype, tag)
    _view(ref)[...] = array
    return ref


def _allocate(shape: tuple[int, ...], dtype: np.dtype, tag: str) -> ArrayRef:
    """A new segment, zero-filled by the operating system (no array built first)."""
    name = f"{PREFIX}-{tag}-{uuid.uuid4().hex[:12]}"
    dtype = np.dtype(dtype)
    seg = shared_memory.SharedMemory(name=name, create=True, size=max(int(np.prod(shape)) * dtype.itemsize, 1))
    _attached[name] = (seg, np.ndarray(shape, dtype, buffer=seg.buf))
    return ArrayRef(name, tuple(shape), dtype.str)


def _view(ref: ArrayRef) -> np.ndarray:
    if ref.name not in _attached:
        seg = shared_memory.SharedMemory(name=ref.name)
        _attached[ref.name] = (seg, np.ndarray(ref.shape, np.dtype(ref.dtype), buffer=seg.buf))
    return _attached[ref.name][1]


def _load_in_worker(loader: Loader, args: tuple) -> tuple[BlockRef, np.ndarray]:
    block = loader(*args)
    return _shared_block(block), block.row_counts()


def _block_of(ref: BlockRef) -> InBlock:
    return InBlock(ref.block_id, ref.lo, ref.hi, _view(ref.indptr), _view(ref.indices), _view(ref.values))


def _split_in_worker(split: Callable[..., Any], ref: BlockRef, split_args: tuple) -> tuple[list[ArrayRef], np.ndarray]:
    arrays, offsets = split(_block_of(ref), *split_args)
    refs = [_create(np.ascontiguousarray(a), f"s{ref.block_id}") for a in arrays]
    _detach([a.name for a in refs])
    return refs, offsets


def _build_in_worker(build: Loader, args: tuple, j: int, splits: list[tuple[list[ArrayRef], np.ndarray]]
                     ) -> tuple[BlockRef, np.ndarray]:
    pieces = [tuple(_view(a)[offsets[j]:offsets[j + 1]] for a in refs) for refs, offsets in splits]
    block = build(*args, pieces)
    del pieces
    _detach([a.name for refs, _ in splits for a in refs])
    return _shared_block(block), block.row_counts()


def _detach(names: list[str]) -> None:
    """Unmap segments in this process (the pieces of a shuffle): the driver unlinks them once every block is
    built, and their memory goes when the last process unmaps them."""
    for name in names:
        seg, view = _attached.pop(name)
        del view
        seg.close()


def _shared_block(block: InBlock) -> BlockRef:
    tag = f"b{block.block_id}"
    return BlockRef(block.block_id, block.lo, block.hi, _create(block.indptr, tag), _create(block.indices, tag),
                    _create(block.values, tag))


def _init_in_worker(init: Callable[..., np.ndarray], out: ArrayRef, lo: int, hi: int, params: tuple) -> None:
    _view(out)[lo:hi] = init(lo, hi, *params)


def _solve_in_worker(task: Task, ref: BlockRef, src: ArrayRef, out: ArrayRef, params: tuple,
                     with_prev: bool) -> np.ndarray:
    block = InBlock(ref.block_id, ref.lo, ref.hi, _view(ref.indptr), _view(ref.indices), _view(ref.values))
    prev = _view(out)[ref.lo:ref.hi] if with_prev else None  # this block's rows: no other task writes them
    rows, stats = task(block, _view(src), prev, *params)
    _view(out)[ref.lo:ref.hi] = rows
    return stats


def _narrow_in_worker(src: ArrayRef, out: ArrayRef, lo: int, hi: int) -> None:
    narrow_into(_view(src)[lo:hi], _view(out)[lo:hi])


def _map_in_worker(task: Callable[..., Any], ref: BlockRef, src: ArrayRef | None, rows: ArrayRef | None,
                   extra: tuple, params: tuple) -> Any:
    block = InBlock(ref.block_id, ref.lo, ref.hi, _view(ref.indptr), _view(ref.indices), _view(ref.values))
    return task(block, None if src is None else _view(src), None if rows is None else _view(rows)[ref.lo:ref.hi],
                *extra, *params)


def _update_in_worker(task: Callable[..., Any], ref: BlockRef, own: ArrayRef, other: ArrayRef, extra: tuple,
                      params: tuple) -> np.ndarray:
    block = InBlock(ref.block_id, ref.lo, ref.hi, _view(ref.indptr), _view(ref.indices), _view(ref.values))
    rows, other_idx, other_rows, stats = task(block, _view(own)[ref.lo:ref.hi].copy(), _view(other), *extra, *params)
    _view(own)[ref.lo:ref.hi] = rows  # this block's rows and its stratum's: no other task of the step writes them
    _view(other)[other_idx] = other_rows
    return stats


def _leave_signals() -> None:
    """Pool processes ignore Ctrl-C and SIGTERM sent to the whole process group: the job's process
    handles them, releases the shared memory and stops the pool itself (no worker tracebacks)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _numbered(job: tuple[int, Callable[..., Any], tuple]) -> tuple[int, Any]:  # noqa: D103
    index, fn, args = job
    return index, fn(*args)


class SharedMemoryExecutor:
    name = "shm"

    def __init__(self, workers: int = 2, threads: int = 1) -> None:
        self.n_workers, self.task_threads = workers, threads
        # concurrent.futures, not multiprocessing.Pool: a worker that dies (OOM kill, SIGKILL, a script
        # without the __main__ guard) breaks the executor with BrokenProcessPool instead of hanging forever
        self._pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_leave_signals)
        self._blocks: dict[str, list[BlockRef]] = {}
        self._matrices: dict[str, tuple[ArrayRef, np.ndarray]] = {}
        self._sharded: dict[str, str] = {}  # sharded matrix -> the side whose bounds cut it
        self._segments: list[str] = []
        self._halves: dict[str, ArrayRef] = {}  # a matrix's segment -> that of its float16 copy (solve's half_src)
        self.fetches = 0

    def load_blocks(self, side: str, loader: Loader, args: Sequence[tuple]) -> list[np.ndarray]:
        results = self._run(_load_in_worker, [(loader, a) for a in args], f"building the {side} blocks")
        self._blocks[side] = [ref for ref, _ in results]
        for ref, _ in results:
            self._segments += [ref.indptr.name, ref.indices.name, ref.values.name]
        return [counts for _, counts in results]

    def shuffle_blocks(self, side: str, source: str, split: Callable[..., Any], split_args: tuple,
                       build: Loader, args: Sequence[tuple]) -> list[np.ndarray]:
        # the pieces go through shared memory too: written once by the splitting process, read by the builders
        splits = self._run(_split_in_worker, [(split, ref, split_args) for ref in self._blocks[source]],
                           f"cutting the {source} blocks for the {side} blocks", advance=False)
        pieces = [a.name for refs, _ in splits for a in refs]
        self._segments += pieces
        try:
            results = self._run(_build_in_worker, [(build, a, j, splits) for j, a in enumerate(args)],
                                f"building the {side} blocks")
        finally:
            self._release(pieces)
        self._blocks[side] = [ref for ref, _ in results]
        for ref, _ in results:
            self._segments += [ref.indptr.name, ref.indices.name, ref.values.name]
        return [counts for _, counts in results]

    def new_matrix(self, name: str, n_rows: int, n_cols: int) -> np.ndarray:
        ref = _create(np.zeros((n_rows, n_cols), np.float32), name)
        self._segments.append(ref.name)
        self._matrices[name] = (ref, _view(ref))
        self._sharded.pop(name, None)
        return self._matrices[name][1]

    def matrix(self, name: str) -> np.ndarray:
        if name in self._sharded:
            raise KeyError(f"{name!r} is a sharded matrix: read it with fetch")
        return self._matrices[name][1]

    def new_sharded(self, name: str, side: str, n_cols: int, init: Callable[..., np.ndarray] | None = None,
                    params: tuple = ()) -> None:
        """One segment for the whole matrix (blocks share the machine's memory); each block's rows are made
        by a pool process, in place."""
        refs = self._blocks[side]
        ref = _allocate((refs[-1].hi if refs else 0, n_cols), np.float32, name)
        self._segments.append(ref.name)
        self._matrices[name], self._sharded[name] = (ref, _view(ref)), side
        if init is not None:
            self._run(_init_in_worker, [(init, ref, b.lo, b.hi, params) for b in refs], f"initialising {name}")

    def fetch(self, name: str) -> np.ndarray:
        self.fetches += 1
        return self._matrices[name][1].copy()

    def _own_rows(self, side: str, name: str | None) -> None:
        if name in self._sharded:
            bounds = {s: [(b.lo, b.hi) for b in self._blocks[s]] for s in {side, self._sharded[name]}}
            check_rows_readable(self._sharded[name], side, bounds, name)

    def solve(self, side: str, task: Task, src: str, out: str, params: tuple,
              with_prev: bool = False, half_src: bool = False) -> list[np.ndarray]:
        self._own_rows(side, out)
        src_ref, out_ref = self._matrices[src][0], self._matrices[out][0]
        if half_src:  # one float16 copy for all tasks, in a segment of its own kept for the next half-steps,
            # made by the pool (a slice each: the driver never reads the matrix)
            if src_ref.name not in self._halves:
                self._halves[src_ref.name] = _allocate(src_ref.shape, np.uint16, f"{src}-f16")
                self._segments.append(self._halves[src_ref.name].name)
            edges = np.linspace(0, src_ref.shape[0], self.n_workers + 1).astype(int)
            self._run(_narrow_in_worker, [(src_ref, self._halves[src_ref.name], lo, hi)
                                          for lo, hi in zip(edges[:-1], edges[1:])], f"narrowing {src}", advance=False)
            src_ref = self._halves[src_ref.name]
        jobs = [(task, ref, src_ref, out_ref, params, with_prev) for ref in self._blocks[side]]
        return self._run(_solve_in_worker, jobs, f"the {side} half-step")

    def map_blocks(self, side: str, task: Callable[..., Any], src: str | None, rows: str | None,
                   params: tuple, per_block: Sequence[tuple] = ()) -> list[Any]:
        self._own_rows(side, rows)
        rows_ref = None if rows is None else self._matrices[rows][0]
        src_ref = None if src is None else self._matrices[src][0]
        extras = list(per_block) or [()] * len(self._blocks[side])
        jobs = [(task, ref, src_ref, rows_ref, extra, params) for ref, extra in zip(self._blocks[side], extras)]
        return self._run(_map_in_worker, jobs, f"a map over the {side} blocks")

    def update_strata(self, side: str, task: Callable[..., Any], own: str, other: str, params: tuple,
                      per_block: Sequence[tuple]) -> list[np.ndarray]:
        own_ref, other_ref = self._matrices[own][0], self._matrices[other][0]
        jobs = [(task, ref, own_ref, other_ref, extra, params) for ref, extra in zip(self._blocks[side], per_block)]
        return self._run(_update_in_worker, jobs, f"a sub-epoch over the {side} blocks")

    def _run(self, fn: Callable[..., Any], jobs: list[tuple], what: str, advance: bool = True) -> list[Any]:
        results: list[Any] = [None] * len(jobs)
        futures = [self._pool.submit(_numbered, (i, fn, job)) for i, job in enumerate(jobs)]
        try:  # results as they come, so progress moves per block; put back in block order
            for future in as_completed(futures):
                index, result = future.result()
                results[index] = result
                if advance:
                    progress.advance()
            return results
        except RecsysError:  # raised on purpose by the task, with its own message
            raise
        except BrokenProcessPool:
            raise FitError(f"a shared-memory worker process died during {what} (killed for memory, by a signal, or "
                           "it could not start: a script using engine 'shm' must guard its top level with "
                           "`if __name__ == \"__main__\":`); nothing was published") from None
        except Exception as exc:  # a task failed for another reason
            raise FitError(f"shared-memory worker failed during {what}: {exc!r}") from exc
        finally:
            for future in futures:
                future.cancel()

    def memory_limit(self) -> int | None:
        return None  # the machine's memory: the operating system, not a scheduler, enforces it

    def describe(self) -> str:
        return f"shm ({self.n_workers} processes x {self.task_threads} kernel threads)"

    def close(self) -> None:
        processes = list(getattr(self._pool, "_processes", {}).values())  # stop running tasks now, not at their end
        self._pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            proc.kill()  # they ignore SIGTERM (see _leave_signals) and hold nothing the driver does not release
        for proc in processes:
            proc.join()
        # wait for the executor's own thread to wind down so its queues are closed and their semaphores
        # released here: a job ends with os._exit (cli.run), and multiprocessing's resource tracker would
        # otherwise report them as leaked
        self._pool.shutdown(wait=True)
        self._release(list(self._segments))
        self._matrices.clear()
        self._sharded.clear()
        self._halves.clear()

    def _release(self, names: list[str]) -> None:
        """Unlink the segments ``names`` (their memory goes once no process maps them)."""
        for name in names:
            seg_view = _attached.pop(name, None)
            try:
                seg = seg_view[0] if seg_view else shared_memory.SharedMemory(name=name)
            except FileNotFoundError:
                continue
            try:
                seg.close()
            except BufferError:  # the driver still holds a view; the mapping goes with it
                pass
            seg.unlink()
        self._segments = [n for n in self._segments if n not in set(names)]

    def __enter__(self) -> SharedMemoryExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
