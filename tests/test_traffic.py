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
