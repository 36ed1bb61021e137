"""Sharded factor matrices: on Dask they live on the workers, the client never holds one; every engine gives the
same result; a worker killed mid-half-step is survived from the rows' lineage with the same result."""

import gc
import types
import weakref

import numpy as np
import pytest

from recsys_dist.blocking import block_bounds
from recsys_dist.config import EngineConfig, ModelConfig, TrainConfig
from recsys_dist.data.blocks import load_item_block, load_user_block
from recsys_dist.data.dataset import Dataset
from recsys_dist.evaluate import rating_metrics
from recsys_dist.train import fit
from tests.executors.faults import attempts, killed_once_task
from tests.executors.toy import describe_task, ramp_rows, slow_toy_block, spread_block, sum_task, toy_block

BOUNDS = [(0, 3), (3, 7), (7, 10)]
MODEL = ModelConfig(rank=8, reg=0.05, n_iter=3, seed=7)


def _sharded_steps(ex):
    """Three warm-started half-steps over sharded matrices, the third with ``killed_once_task`` when given."""
    ex.load_blocks("user", toy_block, [(b, lo, hi) for b, (lo, hi) in enumerate(BOUNDS)])
    ex.load_blocks("item", toy_block, [(0, 0, 1), (1, 1, 2)])
    ex.new_sharded("item", "item", 3, ramp_rows, (3,))
    ex.new_sharded("user", "user", 3, ramp_rows, (3,))
    stats = [ex.solve("user", sum_task, "item", "user", (1.0,), with_prev=True)]
    stats.append(ex.solve("item", sum_task, "user", "item", (0.5,), with_prev=True))
    return stats


def _reference():
    from recsys_dist.executors.inprocess import InProcessExecutor

    with InProcessExecutor() as ex:
        stats = _sharded_steps(ex)
        stats.append(ex.solve("user", sum_task, "item", "user", (1.0,), with_prev=True))
        return ex.fetch("user"), ex.fetch("item"), stats


@pytest.mark.parametrize("engine", ["shm", pytest.param("dask", marks=pytest.mark.dask)])
def test_sharded_matrices_give_the_in_process_result(engine):
    from recsys_dist.executors import make_executor

    user, item, stats = _reference()
    with make_executor(EngineConfig(name=engine, workers=2)) as ex:
        got = _sharded_steps(ex)
        got.append(ex.solve("user", sum_task, "item", "user", (1.0,), with_prev=True))
        with pytest.raises(KeyError, match="sharded matrix: read it with fetch|not a driver matrix"):
            ex.matrix("user")
        np.testing.assert_array_equal(ex.fetch("user"), user)
        np.testing.assert_array_equal(ex.fetch("item"), item)
        assert ex.fetches == 2
    assert [[s.tolist() for s in step] for step in got] == [[s.tolist() for s in step] for step in stats]


@pytest.mark.dask
@pytest.mark.parametrize("routing", ["broadcast", "routed"])
def test_dask_worker_killed_mid_half_step_on_sharded_matrices_gives_the_same_result(tmp_path, routing):
    """The killed worker held blocks and row futures of both matrices, made by earlier half-steps (and, routed,
    routing tables): Dask rebuilds them from their lineage (loader, init, the half-steps since) and the result is
    unchanged."""
    from recsys_dist.executors.dask import DaskExecutor

    user, item, _ = _reference()
    with DaskExecutor(scheduler="local", workers=2, retries=2, routing_mode=routing) as ex:
        _sharded_steps(ex)
        ex.solve("user", killed_once_task, "item", "user", (str(tmp_path), 1), with_prev=True)
        assert attempts(tmp_path, 1) == 2  # the killed attempt and the one Dask rescheduled
        np.testing.assert_array_equal(ex.fetch("user"), user)
        np.testing.assert_array_equal(ex.fetch("item"), item)


def _arrays_reachable_from(root, limit=200_000):
    """Every ndarray reachable from ``root`` by references (what the client process holds through it).

    The walk does not enter modules, classes or a function's globals: through those everything in the process
    is reachable (streamlit's resource cache holding the explorer tests' model, for one), which is not what
    ``root`` holds. A function's closure and defaults are followed."""
    seen, stack, arrays = set(), [root], []
    while stack and len(seen) < limit:
        obj = stack.pop()
        # type(), not isinstance: isinstance on a dead weakref proxy raises ReferenceError (a proxy is not a
        # strong reference anyway)
        if id(obj) in seen or type(obj) in weakref.ProxyTypes or isinstance(obj, (type, type(gc))):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            arrays.append(obj)
            continue
        if isinstance(obj, types.FunctionType):
            stack.extend(gc.get_referents(*obj.__closure__ or ()))  # a cell's contents; none when empty
            stack.extend((obj.__defaults__, obj.__kwdefaults__))
            continue
        stack.extend(gc.get_referents(obj))
    assert not stack, f"the walk stopped at {limit} objects with {len(stack)} still to visit"
    return arrays


@pytest.mark.dask
def test_dask_training_never_brings_a_factor_matrix_to_the_client(small_split):
    """Explicit ALS iterations, the objective, the non-finite check and the test RMSE on a real multi-process
    LocalCluster: the client holds no array with a row per user or item, and nothing was fetched."""
    from recsys_dist.executors.dask import DaskExecutor
    from recsys_dist.models.explicit import ExplicitSteps
    from recsys_dist.train_blocks import load_rating_side
    from recsys_dist.train_metrics import reduced_test_rmse
    from recsys_dist.als import block_is_finite, init_rows

    train = Dataset.open(str(small_split / "train"))
    mu = float(train.manifest["rating_stats"]["mean"])
    steps = ExplicitSteps(MODEL, mu)
    with DaskExecutor(scheduler="local", workers=2) as ex:
        counts = {}
        for number, (side, n, loader) in enumerate((("user", train.n_users, load_user_block),
                                                    ("item", train.n_items, load_item_block))):
            bounds = block_bounds(n, 3)
            counts[side] = np.concatenate(ex.load_blocks(side, loader, [(train.url, b, lo, hi)
                                                                        for b, (lo, hi) in enumerate(bounds)]))
            ex.new_sharded(side, side, MODEL.rank + 1, init_rows, (MODEL.seed, number, MODEL.rank))
        load_rating_side(ex, "test", str(small_split / "test"), block_bounds(train.n_users, 3))
        steps.prepare(ex, counts, {"user": 3, "item": 3})
        for iteration in range(2):
            record = steps.iteration(ex, iteration)
            assert all(ex.map_blocks("user", block_is_finite, None, "user", ()))
            rmse = reduced_test_rmse(ex, mu, "als", {"model": {"clip": True}}, train.rating_scale[:2])
        assert np.isfinite(record["objective"]) and 0 < rmse < 2
        held = _arrays_reachable_from(ex)
        assert [a.shape for a in held if a.ndim == 2 and a.shape[0] in (train.n_users, train.n_items)] == []
        assert [a.shape for a in held if a.ndim == 2 and a.shape[1] == MODEL.rank + 1] == []  # not even a block
        assert ex.fetches == 0
        assert ex.fetch("user").shape == (train.n_users, MODEL.rank + 1) and ex.fetches == 1


@pytest.mark.parametrize("engine", ["inprocess", pytest.param("dask", marks=pytest.mark.dask)])
def test_the_reduced_test_rmse_is_the_models_own(small_split, engine):
    """The per-iteration test RMSE, reduced in the blocks, equals the final model's ``predict_idx`` RMSE."""
    result = fit(TrainConfig(train=str(small_split / "train"), test=str(small_split / "test")), MODEL,
                 EngineConfig(name=engine, workers=2))
    test = Dataset.open(str(small_split / "test")).read_all()
    expected = rating_metrics(result.model.predict_idx(test.user_idx, test.item_idx), test.rating)["rmse"]
    assert result.history[-1]["test_rmse"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("engine", ["inprocess", "shm", pytest.param("dask", marks=pytest.mark.dask)])
def test_a_model_trained_out_of_memory_is_saved_and_scored_from_its_blocks(small_split, tmp_path, engine, monkeypatch):
    """``fit(in_memory=False)``: the engine writes the model block by block and scores it by reductions over the
    blocks, the driver fetching no matrix; the saved model is the one trained in memory and the reduced
    metrics are its own, on train, test, cold (users without training ratings) and test with cold."""
    from recsys_dist.checkpoint import load_model, read_json
    from recsys_dist.config import SplitConfig
    from recsys_dist.data.split import split
    from recsys_dist.executors.dask import DaskExecutor
    from recsys_dist.executors.inprocess import InProcessExecutor
    from recsys_dist.executors.shared_memory import SharedMemoryExecutor

    split(SplitConfig(data=str(small_split.parent / "ds"), out=str(tmp_path / "split"), method="cold-users",
                      fraction=0.1, seed=3))
    train_cfg = TrainConfig(train=str(tmp_path / "split" / "train"), test=str(tmp_path / "split" / "test"))
    engine_cfg = EngineConfig(name=engine, workers=2)
    kept = fit(train_cfg, MODEL, engine_cfg, final_metrics=True)

    def refuse(self, name):
        raise AssertionError(f"the driver fetched {name}")

    for executor in (DaskExecutor, InProcessExecutor, SharedMemoryExecutor):
        monkeypatch.setattr(executor, "fetch", refuse)
    out = fit(train_cfg, MODEL, engine_cfg, save_to=str(tmp_path / "model"), in_memory=False, final_metrics=True)
    assert out.model is None
    files = read_json(str(tmp_path / "model"), "model.json")["files"]
    assert any(f.startswith("user_matrix/part-") for f in files) and "user_matrix.npy" not in files
    saved = load_model(str(tmp_path / "model"))
    np.testing.assert_array_equal(saved.user_matrix_, kept.model.user_matrix_)
    np.testing.assert_array_equal(saved.item_matrix_, kept.model.item_matrix_)
    np.testing.assert_array_equal(saved.user_counts_, kept.model.user_counts_)
    assert saved.config == kept.model.config
    assert set(out.final) == set(kept.final) == {"train", "test", "cold", "test_with_cold"}
    assert kept.final["cold"]["n"] > 0
    for part, metrics in kept.final.items():
        assert out.final[part]["n"] == metrics["n"]
        assert out.final[part]["rmse"] == pytest.approx(metrics["rmse"], rel=1e-9)
        assert out.final[part]["mae"] == pytest.approx(metrics["mae"], rel=1e-9)


@pytest.mark.dask
@pytest.mark.parametrize("kind, gather_dtype", [("als", "float32"), ("als", "float16"), ("implicit_als", "float32")])
def test_routed_and_broadcast_half_steps_give_the_same_model(small_split, kind, gather_dtype):
    """Routed sending (each worker receives only the src rows its blocks read, the blocks re-indexed to them)
    and broadcast give the same model, bit for bit, on a real multi-process cluster (float16 gathers: each
    src block narrowed where it lives, then sent)."""
    import dataclasses

    models = {}
    model_cfg = dataclasses.replace(MODEL, kind=kind, gather_dtype=gather_dtype,
                                    rank=20 if gather_dtype == "float16" else MODEL.rank)  # float16 from rank 16
    for mode in ("broadcast", "routed"):
        result = fit(TrainConfig(train=str(small_split / "train")), model_cfg,
                     EngineConfig(name="dask", workers=3, routing=mode, user_blocks=5, item_blocks=4))
        assert {side: r["mode"] for side, r in result.history[-1]["routing"].items()} == {"user": mode, "item": mode}
        assert result.history[-1]["transferred_bytes"] > 0
        models[mode] = result.model
    np.testing.assert_array_equal(models["routed"].user_matrix_, models["broadcast"].user_matrix_)
    np.testing.assert_array_equal(models["routed"].item_matrix_, models["broadcast"].item_matrix_)


def _unpredicted_steps(ex):
    """Half-steps in an order the rows sent ahead do not expect (the same side twice, a map between): each
    reads the rows it should, not the ones sent ahead for another step (the map reads the whole item matrix,
    the half-steps on a routed engine only the rows their blocks read)."""
    ex.load_blocks("user", spread_block, [(b, lo, hi, 10) for b, (lo, hi) in enumerate(BOUNDS)])
    ex.load_blocks("item", spread_block, [(0, 0, 5, 10), (1, 5, 10, 10)])
    ex.new_sharded("item", "item", 3, ramp_rows, (3,))
    ex.new_sharded("user", "user", 3, ramp_rows, (3,))
    out = [ex.solve("user", sum_task, "item", "user", (1.0,), with_prev=True),
           ex.solve("item", sum_task, "user", "item", (0.5,), with_prev=True),
           ex.solve("item", sum_task, "user", "item", (2.0,), with_prev=True),
           ex.map_blocks("user", describe_task, "item", None, (0,)),
           ex.solve("user", sum_task, "item", "user", (1.0,), with_prev=True),
           ex.solve("user", sum_task, "item", "user", (3.0,), with_prev=False),
           ex.solve("item", sum_task, "user", "item", (1.0,), with_prev=True)]
    return [np.asarray(step, dtype=object).tolist() for step in out], ex.fetch("user"), ex.fetch("item")


@pytest.mark.dask
@pytest.mark.parametrize("routing", ["broadcast", "routed"])
def test_half_steps_in_any_order_give_the_in_process_result(routing):
    from recsys_dist.executors import make_executor
    from recsys_dist.executors.inprocess import InProcessExecutor

    with InProcessExecutor() as ex:
        want = _unpredicted_steps(ex)
    with make_executor(EngineConfig(name="dask", workers=2, routing=routing)) as ex:
        got = _unpredicted_steps(ex)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])


@pytest.mark.dask
def test_dask_spreads_the_blocks_evenly_over_the_workers():
    """A block's tasks run where it lives, so a worker holding more blocks than another makes every half-step
    wait for it: 12 user blocks and 6 item blocks on 3 workers are 4-4-4 and 2-2-2, even when one block is slow
    to load (left to Dask, the other workers took the rest: 2-4-6)."""
    from recsys_dist.executors import make_executor

    with make_executor(EngineConfig(name="dask", workers=3)) as ex:
        ex.load_blocks("user", slow_toy_block, [(b, b, b + 1, 1.5 if b == 0 else 0.0) for b in range(12)])
        ex.load_blocks("item", slow_toy_block, [(b, b, b + 1, 1.5 if b == 0 else 0.0) for b in range(6)])
        held = ex.client.has_what()
        for side, n in (("user", 12), ("item", 6)):
            counts = sorted(sum(str(key).startswith(f"inblock-{side}-") for key in keys) for keys in held.values())
            assert sum(counts) == n and counts[-1] - counts[0] <= 1, (side, counts)


@pytest.mark.dask
def test_float16_gathers_send_half_the_bytes_between_workers(small_split):
    """With model.gather_dtype = "float16" each src block is narrowed where it lives, so the workers send each
    other half the bytes per half-step, as the cost model predicts (Dask's own transfer counters)."""
    import dataclasses

    sent, predicted = {}, {}
    for dtype in ("float32", "float16"):
        result = fit(TrainConfig(train=str(small_split / "train")),
                     dataclasses.replace(MODEL, rank=32, n_iter=2, gather_dtype=dtype),
                     EngineConfig(name="dask", workers=3, routing="routed", user_blocks=5, item_blocks=4))
        sent[dtype] = result.history[-1]["transferred_bytes"]  # the second iteration: no routing tables built
        predicted[dtype] = sum(r["routed_bytes"] for r in result.history[-1]["routing"].values())
    assert predicted["float16"] == pytest.approx(predicted["float32"] / 2, rel=0.01)
    assert 0.4 < sent["float16"] / sent["float32"] < 0.6
