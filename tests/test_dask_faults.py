"""Faults on the Dask engine: a task that raises fails the step once, at once; a worker that dies is survived."""

import numpy as np
import pytest

from recsys_dist.errors import FitError
from tests.executors.faults import attempts, waits_once_task, killed_once_task, raising_task
from tests.executors.toy import killed_task, sum_task, toy_block

pytestmark = pytest.mark.dask

BOUNDS = [(0, 3), (3, 7), (7, 10)]


def _loaded(ex):
    ex.load_blocks("user", toy_block, [(b, lo, hi) for b, (lo, hi) in enumerate(BOUNDS)])
    ex.new_matrix("item", 2, 3)[...] = [[1, 2, 3], [4, 5, 6]]
    ex.new_matrix("user", 10, 3)
    return ex


def _expected():
    from recsys_dist.executors.inprocess import InProcessExecutor

    with _loaded(InProcessExecutor()) as ex:
        ex.solve("user", sum_task, "item", "user", (1.0,))
        return ex.matrix("user").copy()


@pytest.fixture(scope="module")
def executor():
    from recsys_dist.executors.dask import DaskExecutor

    with DaskExecutor(scheduler="local", workers=2, retries=2) as ex:
        yield ex


def test_dask_task_that_raises_fails_once_naming_the_block(executor, tmp_path):
    with pytest.raises(FitError) as caught:
        _loaded(executor).solve("user", raising_task, "item", "user", (str(tmp_path), 1))
    message = str(caught.value)
    assert "user half-step: user block 1 (rows 3-6) raised ValueError: bad input in block 1" in message, message
    assert "not retried" in message
    assert attempts(tmp_path, 1) == 1  # Dask's retries and the engine's resubmission both leave it alone


def test_dask_worker_killed_mid_task_gives_the_undisturbed_result(executor, tmp_path):
    _loaded(executor).solve("user", killed_once_task, "item", "user", (str(tmp_path), 1))
    np.testing.assert_array_equal(executor.matrix("user"), _expected())
    assert attempts(tmp_path, 1) == 2  # the killed attempt and the one Dask rescheduled


def test_dask_blocks_that_lose_the_broadcast_are_resubmitted_alone(executor, tmp_path, caplog):
    """The scattered src matrix is forgotten by the scheduler mid-step, as when the one worker holding it dies
    before its peers fetched a copy (here the job's client drops it while block 1 runs, which takes the
    scheduler down the same path): the cancelled blocks are resubmitted with a new scatter, the rest kept."""
    import threading
    import time

    def drop_the_broadcast():
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        from distributed import Future

        scattered = [Future(key, executor.client) for key in list(executor.client.futures)
                     if str(key).startswith("ndarray-")]
        executor.client.cancel(scattered, force=True)
        (tmp_path / "go").touch()

    dropper = threading.Thread(target=drop_the_broadcast)
    dropper.start()
    try:
        _loaded(executor).solve("user", waits_once_task, "item", "user", (str(tmp_path), 1))
    finally:
        dropper.join()
    np.testing.assert_array_equal(executor.matrix("user"), _expected())
    assert "blocks lost the broadcast matrix with a worker; resubmitting them (1 of 2)" in caplog.text
    assert attempts(tmp_path, 1) == 2 and all(attempts(tmp_path, b) <= 2 for b in (0, 2))


def test_dask_task_that_kills_every_worker_stops_with_what_to_do():
    from recsys_dist.executors.dask import DaskExecutor

    with DaskExecutor(scheduler="local", workers=2, retries=1) as ex:
        # the task dies with its workers (KilledWorker), or, when the dying workers took every copy of the
        # broadcast matrix first, its resubmissions run out: either way one error that says to look at memory
        with pytest.raises(FitError, match=r"(user block 0 \(rows 0-2\): every worker that ran it died|"
                                           r"workers keep dying).*memory"):
            ex.load_blocks("user", toy_block, [(0, 0, 3)])
            ex.new_matrix("item", 2, 3)
            ex.new_matrix("user", 3, 3)
            ex.solve("user", killed_task, "item", "user", (1.0,))
