"""Time a peer library's ALS on a bench training split: run by ``bench --peer-python PY`` as ``PY bench_peer.py``.

A standalone script for another interpreter (the benchmark environment where LensKit or implicit is
installed): it imports neither recsys_dist nor anything the peer's environment may lack beyond
numpy, scipy and pyarrow. For each peer it prints one line ``PEER {json}``: the peer's name and
version and its seconds per iteration, fit(3 iterations) - fit(1) halved, or ``missing`` (why it
could not be imported) or ``error``. Peers: LensKit's biased ALS for ``--model als``, its implicit
ALS and implicit's CG ALS for ``--model implicit_als``.
"""

import argparse
import glob
import importlib
import json
import os
import sys
import time


def emit(**fields):
    print("PEER " + json.dumps(fields), flush=True)


def read_train(train):
    import numpy as np
    import pyarrow.parquet as pq

    files = sorted(glob.glob(os.path.join(train, "ratings", "*", "*.parquet")))
    if not files:
        raise SystemExit(f"bench_peer: no ratings/*/*.parquet under {train}")
    cols = {"user_idx": [], "item_idx": [], "rating": []}
    for f in files:
        t = pq.read_table(f, columns=list(cols))
        for c in cols:
            cols[c].append(t.column(c).to_numpy())
    return (np.concatenate(cols[c]) for c in cols)


def per_iteration(fit):
    fit(1)  # warm up: compilation, thread pools
    one = fit(1)
    three = fit(3)
    return (three - one) / 2, one, three


def timed(fn):
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def lenskit_peer(args, users, items, ratings):
    import lenskit
    import pandas as pd
    from lenskit.data import from_interactions_df

    if args.model == "als":
        from lenskit.als import BiasedMFScorer as scorer
        extra = {}
    else:
        from lenskit.als import ImplicitMFScorer as scorer
        extra = {"weight": args.alpha, "use_ratings": True}  # c = 1 + alpha r, as ours
    data = from_interactions_df(pd.DataFrame({"user_id": users, "item_id": items, "rating": ratings}))

    def fit(iterations):
        model = scorer(embedding_size=args.rank, epochs=iterations, regularization=args.reg, **extra)
        return timed(lambda: model.train(data))

    return "lenskit", lenskit.__version__, fit


def implicit_peer(args, users, items, ratings):
    import implicit
    import numpy as np
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares

    mat = sp.csr_matrix((1.0 + args.alpha * ratings.astype(np.float32), (users, items)), dtype=np.float32)

    def fit(iterations):
        model = AlternatingLeastSquares(factors=args.rank, iterations=iterations, regularization=args.reg, use_cg=True,
                                        dtype=np.float32, num_threads=args.threads, random_state=0,
                                        calculate_training_loss=False)
        return timed(lambda: model.fit(mat, show_progress=False))

    return "implicit", implicit.__version__, fit


PEERS = {"als": [("lenskit", lenskit_peer)], "implicit_als": [("lenskit", lenskit_peer), ("implicit", implicit_peer)]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True, help="the bench split's training dataset directory")
    p.add_argument("--model", choices=sorted(PEERS), default="als")
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--reg", type=float, default=0.1)
    p.add_argument("--alpha", type=float, default=1.0, help="implicit confidence 1 + alpha * r")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit asks for it; LensKit uses its own threads
    data = None
    for name, make in PEERS[args.model]:
        try:
            importlib.import_module(name)  # before reading the data: a missing peer is reported at once
            if data is None:
                data = tuple(read_train(args.train))
            label, version, fit = make(args, *data)
        except ImportError as exc:
            emit(peer=name, missing=str(exc))
            continue
        try:
            seconds, one, three = per_iteration(fit)
        except Exception as exc:  # a peer's own failure is reported, not fatal to the other peers
            emit(peer=label, version=version, error=f"{type(exc).__name__}: {exc}")
            continue
        emit(peer=label, version=version, seconds_per_iteration=seconds, fit1_seconds=one, fit3_seconds=three,
             threads=args.threads, python=sys.executable)


if __name__ == "__main__":
    main()
