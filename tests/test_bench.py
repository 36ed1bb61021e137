"""The benchmark job runs and records its figures (it is measured by people, never asserted on time)."""

import json

from recsys_dist.bench import half_step_flops
from tests.conftest import run_cli


def test_bench_runs_and_appends_a_json_line(tmp_path):
    args = ["bench", "--shape", "ml-100k", "--rank", "4", "--iterations", "2", "--engine", "inprocess",
            "--work-dir", str(tmp_path / "wd")]
    for extra in ([], ["--score-k", "20"]):  # the second run reuses the generated data and split
        proc = run_cli(*args, *extra)
        assert proc.returncode == 0, proc.stderr
    assert "of the" in proc.stdout and "matmul rate" in proc.stdout and "peak memory" in proc.stdout
    lines = (tmp_path / "wd" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2
    figures = json.loads(lines[-1])
    assert figures["train_ratings"] > 70_000 and figures["rank"] == 4 and figures["iterations"] == 2
    for key in ("seconds_per_iteration", "setup_seconds", "gflops", "matmul_gflops", "fraction_of_matmul",
                "peak_memory_gb", "user_half_step_seconds", "item_half_step_seconds"):
        assert figures[key] > 0, key
    assert figures["score_k"] == 20 and figures["score_users_per_second"] > 0 and "users/s per core" in proc.stdout
    assert abs(figures["gflops"] - figures["gflop_per_iteration"] / figures["seconds_per_iteration"]) < 1e-6 * figures["gflops"]


def test_bench_work_count_follows_the_documented_formula():
    # ml-25m shape at rank 64: 20M training ratings, every user and item solved -> about 190 GFLOP
    work = half_step_flops(20_000_000, 162_541, 64) + half_step_flops(20_000_000, 59_047, 64)
    assert 185e9 < work < 195e9
    assert half_step_flops(10, 2, 1) == 10 * 2 * 3 + 2 * 8 / 3
