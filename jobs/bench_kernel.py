"""Time one explicit ALS half-step kernel alone, on one thread: CPU ns per rating.

`python jobs/bench_kernel.py --rank 10 --solver cg [--steps 3]` solves every row of one synthetic block
(CSR rows with long-tailed rating counts over src rows of long-tailed popularity, as MovieLens users
over items) and prints the best of ``--repeats`` timed calls after one warm-up call. What the `bench`
job's wall time cannot show: the kernel's own cost per rating, free of the engine, of the other
process and of the block layout; ``--steps 0`` leaves CG's gather pass and squared error alone, so the
cost of one step is the difference of two runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from recsys_dist.kernels.als import solve_in_block
from recsys_dist.kernels.als_cg import solve_in_block_cg
from recsys_dist.kernels.half import half_copy
from recsys_dist.kernels.row_threads import set_threads


def synthetic_block(rows: int, src_rows: int, rank: int, seed: int):
    rng = np.random.default_rng(seed)
    counts = np.minimum((rng.pareto(1.2, rows) * 40 + 15).astype(np.int64), min(3000, src_rows))
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    popularity = rng.pareto(1.0, src_rows) + 1
    popularity /= popularity.sum()
    indices = np.concatenate([np.sort(rng.choice(src_rows, c, replace=False, p=popularity))
                              for c in counts]).astype(np.int32)
    values = rng.integers(1, 6, indptr[-1]).astype(np.float32)
    src = rng.normal(0, 0.3, (src_rows, rank + 1)).astype(np.float32)
    prev = rng.normal(0, 0.3, (rows, rank + 1)).astype(np.float32)
    return indptr, indices, values, src, prev


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--solver", choices=("cholesky", "cg"), default="cg")
    p.add_argument("--steps", type=int, default=3, help="CG steps (0: the gather pass and squared error only)")
    p.add_argument("--rows", type=int, default=16000)
    p.add_argument("--src-rows", type=int, default=60000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--gather-dtype", choices=("float32", "float16"), default="float32",
                   help="cg: gather from a float16 copy of the src rows (model.gather_dtype)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.rank < 1 or a.rows < 1 or a.src_rows < 1 or a.repeats < 1 or a.steps < 0:
        p.error("--rank, --rows, --src-rows and --repeats must be at least 1, --steps at least 0")
    if a.gather_dtype == "float16" and a.solver != "cg":
        p.error("--gather-dtype float16 needs --solver cg")
    indptr, indices, values, src, prev = synthetic_block(a.rows, a.src_rows, a.rank, a.seed)
    if a.gather_dtype == "float16":
        src = half_copy(src)
    out = np.empty_like(prev)
    sse = np.empty(a.rows)
    set_threads(1)

    def call() -> None:
        if a.solver == "cg":
            solve_in_block_cg(indptr, indices, values, src, prev, 3.5, 0.1, 0.1, True, a.steps, out, sse)
        elif solve_in_block(indptr, indices, values, src, 3.5, 0.1, 0.1, True, out, sse) >= 0:
            raise SystemExit("bench_kernel: a row's normal equations were not positive definite")

    call()  # compiles or loads the kernel
    best = float("inf")
    for _ in range(a.repeats):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    what = a.solver if a.solver == "cholesky" else f"cg, {a.steps} steps, {a.gather_dtype} gathers"
    print(f"kernel rank {a.rank} ({what}): {indptr[-1]:,} ratings in {a.rows:,} rows over {a.src_rows:,} src rows, "
          f"one thread: {best * 1e9 / indptr[-1]:.1f} ns per rating (best of {a.repeats}); "
          f"squared error {sse.sum():.6g}")


if __name__ == "__main__":
    main()
