"""Top-K selection equals an argsort reference; the model API respects exclusions and filters."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_dist.kernels import reference, topk
from recsys_dist.model import ALSModel
from recsys_dist.recommend import lists_to_csr


def _score_inputs(rng, n_q, n_items, f, ties):  # noqa: ANN001, ANN202
    """Query and item factors and biases; with ``ties``, small integers, so that many scores are equal."""
    if ties:
        return (rng.integers(-1, 2, (n_q, f)).astype(np.float32), rng.integers(-1, 2, (n_items, f)).astype(np.float32),
                rng.integers(0, 2, n_q).astype(np.float64), rng.integers(0, 2, n_items).astype(np.float64))
    return (rng.normal(size=(n_q, f)).astype(np.float32), rng.normal(size=(n_items, f)).astype(np.float32),
            rng.normal(size=n_q), rng.normal(size=n_items))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.integers(1, 12), ties=st.booleans(), n_items=st.integers(1, 40))
def test_recommend_topk_kernel_equals_argsort_reference(seed, k, ties, n_items):
    rng = np.random.default_rng(seed)
    n_q, f = 7, 3
    queries, items, qb, ib = _score_inputs(rng, n_q, n_items, f, ties)
    allowed = rng.random(n_items) > 0.2
    indptr, indices = lists_to_csr([rng.choice(n_items, rng.integers(0, n_items + 1), replace=False) for _ in range(n_q)], n_q)
    got = np.empty((n_q, k), np.int32), np.empty((n_q, k), np.float32)
    want = np.empty((n_q, k), np.int32), np.empty((n_q, k), np.float32)
    topk.topk_rows(queries, items, qb, ib, allowed, indptr, indices, k, *got)
    reference.topk_rows(queries, items, qb, ib, allowed, indptr, indices, k, *want)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-5, equal_nan=True)


def _rank_stats_reference(scores, excluded, relevant):
    """AUC and reciprocal rank of one row by plain loops: the list is every item not excluded, by score
    then lower index; an excluded relevant item is not in it."""
    listed = [i for i in np.lexsort((np.arange(len(scores)), -scores)) if i not in excluded]
    rel = [i for i in listed if i in relevant]
    neg = [scores[i] for i in listed if i not in relevant]
    if not rel:
        return np.nan, np.nan
    auc = np.mean([np.mean([1.0 if scores[i] > s else 0.5 if scores[i] == s else 0.0 for s in neg])
                   for i in rel]) if neg else np.nan
    return auc, 1 / (1 + min(listed.index(i) for i in rel))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), ties=st.booleans(), n_items=st.integers(1, 40), threads=st.sampled_from([1, 2]))
def test_recommend_rank_stats_kernel_equals_plain_loops(seed, ties, n_items, threads):
    # rows of very different candidate counts, relevant items that are also excluded (or listed twice),
    # after a call on a larger problem has left its scratch memory dirty
    rng = np.random.default_rng(seed)
    n_q, f = 9, 3
    queries, items, qb, ib = _score_inputs(rng, n_q, n_items, f, ties)
    excluded = [rng.choice(n_items, rng.integers(0, n_items + 1), replace=False) for _ in range(n_q)]
    relevant = [np.sort(rng.choice(n_items, rng.integers(0, n_items + 1))) for _ in range(n_q)]  # repeats allowed
    ex_indptr, ex_indices = lists_to_csr(excluded, n_q)
    rel_indptr = np.concatenate([[0], np.cumsum([len(r) for r in relevant])]).astype(np.int64)
    rel_indices = np.concatenate(relevant).astype(np.int32)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        big = rng.normal(size=(50, f)).astype(np.float32), rng.normal(size=(500, f)).astype(np.float32)
        noise = lists_to_csr([rng.choice(500, 30) for _ in range(50)], 50)
        topk.rank_stats_rows(*big, rng.normal(size=50), rng.normal(size=500), *noise, *noise, np.empty(50), np.empty(50))
        auc, rr = np.empty(n_q), np.empty(n_q)
        topk.rank_stats_rows(queries, items, qb, ib, ex_indptr, ex_indices, rel_indptr, rel_indices, auc, rr)
    finally:
        numba.set_num_threads(before)
    for q in range(n_q):
        scores = qb[q] + ib + (queries[q].astype(np.float64) * items).sum(axis=1)
        want = _rank_stats_reference(scores, set(excluded[q].tolist()), set(relevant[q].tolist()))
        np.testing.assert_allclose([auc[q], rr[q]], want, rtol=1e-9, equal_nan=True, err_msg=f"row {q}")


@pytest.mark.parametrize("threads", [1, 2])
def test_recommend_topk_kernel_gives_any_block_of_users_the_bits_the_whole_gets(rng, threads):
    # a rank and counts that fill no vector evenly; each block puts its users on other rows and threads
    n_q, n_items, f, k = 23, 101, 37, 7
    queries = rng.normal(size=(n_q, f)).astype(np.float32)
    items = rng.normal(size=(n_items, f)).astype(np.float32)
    qb, ib = rng.normal(size=n_q), rng.normal(size=n_items)
    allowed = rng.random(n_items) > 0.1
    exclude = [rng.choice(n_items, rng.integers(0, 20), replace=False) for _ in range(n_q)]

    def top(rows):
        indptr, indices = lists_to_csr([exclude[r] for r in rows], len(rows))
        out = np.empty((len(rows), k), np.int32), np.empty((len(rows), k), np.float32)
        topk.topk_rows(queries[rows], items, qb[rows], ib, allowed, indptr, indices, k, *out)
        return out

    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        whole = top(np.arange(n_q))
        for rows in (np.arange(3, 14), np.array([22]), rng.permutation(n_q)):
            part = top(rows)
            np.testing.assert_array_equal(part[0], whole[0][rows])
            np.testing.assert_array_equal(part[1], whole[1][rows])
    finally:
        numba.set_num_threads(before)


def _model(rng, n_users=6, n_items=9, rank=3):
    return ALSModel("als", 3.0, rng.normal(size=(n_users, rank + 1)).astype(np.float32),
                    rng.normal(size=(n_items, rank + 1)).astype(np.float32),
                    np.arange(100, 100 + n_users, dtype=np.int64), np.arange(10, 10 + n_items, dtype=np.int64))


def test_recommend_model_returns_the_best_predicted_items_with_exclusions_and_filters(rng):
    model = _model(rng)
    users = np.array([100, 103, 105])
    items, scores = model.recommend(users, k=3, exclude=[[10, 11], [], [18]], deny=[12])
    for row, user in enumerate(users):
        candidates = [i for i in range(10, 19) if i != 12 and i not in ([10, 11], [], [18])[row]]
        preds = model.predict(np.full(len(candidates), user), np.array(candidates))
        best = [candidates[j] for j in np.argsort(-preds, kind="stable")[:3]]
        assert items[row].tolist() == best
        np.testing.assert_allclose(scores[row], np.sort(preds)[::-1][:3], rtol=1e-5)
    allow, _ = model.recommend([101], k=5, items=[13, 14])
    assert sorted(allow[0][:2].tolist()) == [13, 14] and allow[0][2:].tolist() == [-1, -1, -1]


def test_recommend_unknown_users_get_the_highest_item_biases(rng):
    model = _model(rng)
    items, scores = model.recommend([999], k=4)
    assert items[0].tolist() == (10 + np.argsort(-model.item_bias_, kind="stable")[:4]).tolist()
    np.testing.assert_allclose(scores[0], 3.0 + np.sort(model.item_bias_)[::-1][:4], rtol=1e-5)


def test_recommend_similar_items_by_cosine_excluding_itself(rng):
    model = _model(rng, n_items=12)
    items, scores = model.similar_items([10, 15], k=4)
    factors = model.item_factors_.astype(np.float64)
    unit = factors / np.linalg.norm(factors, axis=1, keepdims=True)
    for row, item in enumerate([0, 5]):
        sims = unit @ unit[item]
        sims[item] = -np.inf
        assert items[row].tolist() == (10 + np.argsort(-sims, kind="stable")[:4]).tolist()
        np.testing.assert_allclose(scores[row], np.sort(sims)[::-1][:4], rtol=1e-5)
    from recsys_dist.errors import DataError

    with pytest.raises(DataError, match="unknown item id 99"):
        model.similar_items([99])
