"""Every executor passes the same contract; the in-process one defines the semantics."""

import os

import numpy as np
import pytest

from recsys_dist.errors import FitError
from tests.executors.toy import (any_src_sum_task, describe_task, failing_task, own_rows_task, rounded_third_rows,
                                 spread_block, stratum_task, sum_task, third_rows, toy_block)

BOUNDS = [(0, 3), (3, 7), (7, 10)]


class ExecutorContract:
    @classmethod
    def make(cls):
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def executor(cls):
        with cls.make() as ex:
            yield ex

    def test_contract_load_blocks_returns_row_counts(self, executor):
        counts = executor.load_blocks("user", toy_block, [(b, lo, hi) for b, (lo, hi) in enumerate(BOUNDS)])
        assert [c.tolist() for c in counts] == [[2] * (hi - lo) for lo, hi in BOUNDS]

    def test_contract_solve_writes_rows_and_returns_stats_in_block_order(self, executor):
        executor.load_blocks("user", toy_block, [(b, lo, hi) for b, (lo, hi) in enumerate(BOUNDS)])
        src = executor.new_matrix("item", 2, 3)
        src[...] = [[1, 2, 3], [4, 5, 6]]
        out = executor.new_matrix("user", 10, 3)
        stats = executor.solve("user", sum_task, "item", "user", (2.0,))
        assert [s.tolist() for s in stats] == [[0, 6], [1, 8], [2, 6]]
        out = executor.matrix("user")
        expected = np.concatenate([np.full((hi - lo, 3), 2.0 * 2 * b) for b, (lo, hi) in enumerate(BOUNDS)])
        np.testing.assert_allclose(out, expected + 2.0 * np.array([5, 7, 9]))

    def test_contract_warm_start_passes_each_blocks_current_rows(self, executor):
        executor.load_blocks("user", toy_block, [(b, lo, hi) for b, (lo, hi) in enumerate(BOUNDS)])
        executor.new_matrix("item", 2, 3)
        executor.new_matrix("user", 10, 3)
        executor.matrix("user")[...] = np.arange(10, dtype=np.float32)[:, None]
        executor.solve("user", sum_task, "item", "user", (0.0,), with_prev=True)
        np.testing.assert_allclose(executor.matrix("user"), np.repeat(np.arange(10.0)[:, None], 3, axis=1))
        executor.solve("user", sum_task, "item", "user", (0.0,))
        np.testing.assert_allclose(executor.matrix("user"), 0.0)

    @pytest.mark.parametrize("sharded", [False, True])
    def test_contract_half_src_gives_tasks_the_float16_bits_of_src(self, executor, sharded):
        """solve(half_src=True) computes what solving against src rounded to float16 computes, bit for bit."""
        executor.load_blocks("user", spread_block, [(b, lo, hi, 10) for b, (lo, hi) in enumerate(BOUNDS)])
        executor.load_blocks("item", spread_block, [(0, 0, 5, 10), (1, 5, 10, 10)])
        solved = {}
        for init in (third_rows, rounded_third_rows):
            for half in (False, True):
                if sharded:
                    executor.new_sharded("item", "item", 3, init, (3,))
                    executor.new_sharded("user", "user", 3)
                else:
                    executor.new_matrix("item", 10, 3)[...] = init(0, 10, 3)
                    executor.new_matrix("user", 10, 3)
                stats = executor.solve("user", any_src_sum_task, "item", "user", (2.0,), half_src=half)
                assert [s[-1] for s in stats] == [2 if half else 4] * len(BOUNDS)
                solved[init, half] = executor.fetch("user") if sharded else executor.matrix("user").copy()
        np.testing.assert_array_equal(solved[third_rows, True], solved[rounded_third_rows, False])
        np.testing.assert_array_equal(solved[rounded_third_rows, True], solved[rounded_third_rows, False])
        assert not np.array_equal(solved[third_rows, True], solved[third_rows, False])

    def test_contract_map_blocks_returns_results_in_block_order_and_writes_nothing(self, executor):
        executor.load_blocks("user", toy_block, [(b, lo, hi) for b, (lo, hi) in enumerate(BOUNDS)])
        executor.new_matrix("item", 2, 3)[...] = 1.0
        executor.new_matrix("user", 10, 3)
        executor.matrix("user")[...] = np.arange(10, dtype=np.float32)[:, None]
        results = executor.map_blocks("user", describe_task, "item", "user", (0.5,))
        assert [r[:4] for r in results] == [(lo, hi, 2.0 * b * (hi - lo), 6.0) for b, (lo, hi) in enumerate(BOUNDS)]
        for (lo, hi), r in zip(BOUNDS, results):
            np.testing.assert_array_equal(r[4], np.arange(lo, hi, dtype=np.float32)[:, None].repeat(3, 1) + 0.5)
        assert all(r[4] is None for r in executor.map_blocks("user", describe_task, "item", None, (0.0,)))
        np.testing.assert_array_equal(executor.matrix("user")[:, 0], np.arange(10))
        with pytest.raises(FitError, match="failed on purpose"):
            executor.map_blocks("user", failing_task, "item", None, (1.0,))

    def test_contract_map_blocks_without_a_broadcast_reduces_own_rows(self, executor):
        executor.load_blocks("user", toy_block, [(b, lo, hi) for b, (lo, hi) in enumerate(BOUNDS)])
        executor.new_matrix("user", 10, 2)[...] = np.arange(10, dtype=np.float32)[:, None]
        got = executor.map_blocks("user", own_rows_task, None, "user", (1.0,))
        assert got == [2.0 * sum(range(lo, hi)) + 1.0 for lo, hi in BOUNDS]

    def test_contract_map_blocks_gives_each_block_its_own_part(self, executor):
        executor.load_blocks("user", toy_block, [(b, lo, hi) for b, (lo, hi) in enumerate(BOUNDS)])
        executor.new_matrix("user", 10, 2)[...] = np.arange(10, dtype=np.float32)[:, None]
        got = executor.map_blocks("user", own_rows_task, None, "user", (), [(10.0 * b,) for b in range(len(BOUNDS))])
        assert got == [2.0 * sum(range(lo, hi)) + 10.0 * b for b, (lo, hi) in enumerate(BOUNDS)]

    def test_contract_update_strata_writes_own_rows_and_the_strata_rows(self, executor):
        executor.load_blocks("user", toy_block, [(b, lo, hi) for b, (lo, hi) in enumerate(BOUNDS)])
        executor.new_matrix("user", 10, 2)[...] = 1.0
        executor.new_matrix("item", 4, 2)[...] = 7.0
        stats = executor.update_strata("user", stratum_task, "user", "item", (0.5,), [(2,), (0,), (3,)])
        assert [s.tolist() for s in stats] == [[0, 14.0], [1, 14.0], [2, 14.0]]  # each read its stratum's row
        np.testing.assert_array_equal(executor.matrix("user"), 1.5)
        np.testing.assert_array_equal(executor.matrix("item")[:, 0], [1, 7, 0, 2])

    def test_contract_task_errors_surface_as_fit_errors(self, executor):
        executor.load_blocks("user", toy_block, [(0, 0, 3)])
        executor.new_matrix("item", 2, 3)
        executor.new_matrix("user", 3, 3)
        with pytest.raises(FitError, match="failed on purpose"):
            executor.solve("user", failing_task, "item", "user", (1.0,))


class TestInProcess(ExecutorContract):
    @classmethod
    def make(cls):
        from recsys_dist.executors.inprocess import InProcessExecutor

        return InProcessExecutor()


class TestSharedMemory(ExecutorContract):
    @classmethod
    def make(cls):
        from recsys_dist.executors.shared_memory import SharedMemoryExecutor

        return SharedMemoryExecutor(workers=2, threads=1)

    def test_contract_segments_are_released_on_close_and_on_error(self):
        from recsys_dist.executors.shared_memory import PREFIX

        def ours():
            return {n for n in os.listdir("/dev/shm") if n.startswith(PREFIX)} if os.path.isdir("/dev/shm") else set()

        before = ours()
        with pytest.raises(FitError):
            with self.make() as ex:
                ex.load_blocks("user", toy_block, [(0, 0, 3)])
                ex.new_matrix("item", 2, 3)
                ex.new_matrix("user", 3, 3)
                assert len(ours() - before) == 5
                ex.solve("user", failing_task, "item", "user", (1.0,))
        assert ours() == before

    def test_contract_a_killed_worker_process_stops_the_step_instead_of_hanging(self):
        from recsys_dist.executors.shared_memory import PREFIX
        from tests.executors.toy import killed_task

        before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
        with pytest.raises(FitError, match="worker process died during the user half-step"):
            with self.make() as ex:
                ex.load_blocks("user", toy_block, [(b, lo, hi) for b, (lo, hi) in enumerate(BOUNDS)])
                ex.new_matrix("item", 2, 3)
                ex.new_matrix("user", 10, 3)
                ex.solve("user", killed_task, "item", "user", (1.0,))
        after = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
        assert not {n for n in after - before if n.startswith(PREFIX)}  # every segment released


@pytest.mark.dask
class TestDask(ExecutorContract):
    @classmethod
    def make(cls):
        from recsys_dist.executors.dask import DaskExecutor

        return DaskExecutor(scheduler="local", workers=2)


def test_contract_dask_kernel_threads_share_each_hosts_cores():
    from recsys_dist.executors.dask_tasks import kernel_threads

    cores = {"tcp://10.0.0.1:1": 8, "tcp://10.0.0.1:2": 8, "tcp://10.0.0.2:1": 8, "tls://[::1]:5": 2}
    nthreads = {"tcp://10.0.0.1:1": 1, "tcp://10.0.0.1:2": 1, "tcp://10.0.0.2:1": 2, "tls://[::1]:5": 4}
    assert kernel_threads(cores, nthreads) == {"tcp://10.0.0.1:1": 4, "tcp://10.0.0.1:2": 4, "tcp://10.0.0.2:1": 4,
                                               "tls://[::1]:5": 1}
