"""The traffic model counts, on small blocks with known answers, what each worker must receive."""

import numpy as np

from recsys_dist.traffic import half_step_traffic, owners


def test_traffic_owners_are_round_robin_over_blocks():
    assert owners([(0, 2), (2, 3), (3, 6)], 2).tolist() == [0, 0, 1, 0, 0, 0]


def test_traffic_broadcast_sends_every_remote_row_and_routed_only_the_rows_read():
    # src: 6 rows in 3 blocks on 2 workers -> worker 0 holds rows 0-1 and 3-5, worker 1 holds row 2
    src = [(0, 2), (2, 3), (3, 6)]
    # dst block 0 (worker 0) reads rows 0, 2, 2; dst block 1 (worker 1) reads 1, 4; dst block 2 (worker 0) reads 2, 5
    reads = [np.array([0, 2, 2]), np.array([1, 4]), np.array([2, 5])]
    t = half_step_traffic(reads, src, 2, rank=1)  # 2 floats, 8 bytes a row
    # broadcast: worker 0 receives row 2 (1 row); worker 1 receives rows 0, 1, 3, 4, 5 (5 rows)
    assert t["broadcast"] == 6 * 8 and t["broadcast_per_worker"] == 5 * 8
    # routed: worker 0 reads 0, 2, 5 -> receives row 2 once; worker 1 reads 1, 4 -> receives both
    assert t["routed"] == 3 * 8 and t["routed_per_worker"] == 2 * 8


def test_traffic_one_worker_moves_nothing():
    t = half_step_traffic([np.array([0, 1])], [(0, 2)], 1, rank=4)
    assert t == {"broadcast": 0.0, "routed": 0.0, "broadcast_per_worker": 0.0, "routed_per_worker": 0.0}


def test_traffic_of_a_real_dataset_routed_never_exceeds_broadcast(ml100k_dataset):
    from recsys_dist.bench import dataset_traffic

    one = dataset_traffic(str(ml100k_dataset), 4, 1, 8)
    assert all(v == 0 for side in one.values() for v in side.values())
    t = dataset_traffic(str(ml100k_dataset), 4, 4, 8)
    for side in ("user", "item"):
        assert 0 < t[side]["routed"] <= t[side]["broadcast"]
    # broadcast sends each worker every item row the other 3 hold: 3 x 1682 rows in all, 9 floats each
    assert t["user"]["broadcast"] == 3 * 1682 * 9 * 4 and t["item"]["broadcast"] == 3 * 943 * 9 * 4


def test_routing_tables_cut_the_rows_read_by_src_block_and_reindex_the_block_to_them():
    from recsys_dist.blocking import build_in_block
    from recsys_dist.executors.dask_routing import localize, needed_rows

    edges = np.array([0, 2, 3, 6])  # the src blocks of the test above
    a = build_in_block(0, 0, 2, np.array([0, 0, 1]), np.array([5, 2, 2]), np.ones(3, np.float32))
    b = build_in_block(2, 4, 5, np.array([4, 4]), np.array([0, 2]), np.ones(2, np.float32))
    needed = needed_rows(edges, a, b)
    assert needed[0].tolist() == [0, 2, 5] and [r.tolist() for r in needed[1]] == [[0], [0], [2]]
    src = np.arange(12, dtype=np.float32).reshape(6, 2)
    compact = np.concatenate([src[lo:hi][local] for (lo, hi), local in zip([(0, 2), (2, 3), (3, 6)], needed[1])])
    for block in (a, b):  # each rating reads the same row values from the compact matrix
        np.testing.assert_array_equal(compact[localize(block, needed).indices], src[block.indices])


def test_routing_cost_model_routes_only_when_it_saves_a_quarter_of_the_busiest_workers_bytes():
    from recsys_dist.executors.dask_routing import choose

    src = [(0, 2), (2, 3), (3, 6)]
    group = [0, 1, 0]  # src block b on group b mod 2, as above
    # group 0 reads 1 row of block 1; group 1 reads 1 of block 0 and 1 of block 2
    mode, bytes_ = choose("auto", src, group, {0: [2, 1, 1], 1: [1, 0, 1]}, 8)
    assert bytes_ == {"broadcast_bytes_per_worker": 5 * 8, "routed_bytes_per_worker": 2 * 8,
                      "broadcast_bytes": 6 * 8, "routed_bytes": 3 * 8} and mode == "routed"
    # group 1 reads every remote row: routing saves nothing
    assert choose("auto", src, group, {0: [0, 1, 0], 1: [2, 0, 3]}, 8)[0] == "broadcast"
    assert choose("routed", src, group, {0: [0, 1, 0], 1: [2, 0, 3]}, 8)[0] == "routed"
