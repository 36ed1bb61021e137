"""The benchmark job runs and records its figures (it is measured by people, never asserted on time)."""

import json
import re
import subprocess
import sys
from pathlib import Path

from recsys_dist.bench import PEER_SCRIPT, half_step_bytes, half_step_flops, parse_peer_output, roofline
from tests.conftest import run_cli


def test_bench_runs_and_appends_a_json_line(tmp_path):
    args = ["bench", "--shape", "ml-100k", "--rank", "4", "--iterations", "2", "--engine", "inprocess",
            "--work-dir", str(tmp_path / "wd")]
    for extra in ([], ["--score-k", "20"]):  # the second run reuses the generated data and split
        proc = run_cli(*args, *extra)
        assert proc.returncode == 0, proc.stderr
    assert "of the" in proc.stdout and "matmul rate" in proc.stdout and "peak memory" in proc.stdout
    assert "roofline (cg)" in proc.stdout and "triad bandwidth" in proc.stdout
    lines = (tmp_path / "wd" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2
    figures = json.loads(lines[-1])
    assert figures["train_ratings"] > 70_000 and figures["rank"] == 4 and figures["iterations"] == 2
    for key in ("seconds_per_iteration", "setup_seconds", "gflops", "matmul_gflops", "fraction_of_matmul",
                "peak_memory_gb", "user_half_step_seconds", "item_half_step_seconds", "triad_gbs", "gb_per_iteration",
                "memory_floor_seconds", "flop_floor_seconds", "fraction_of_roofline"):
        assert figures[key] > 0, key
    assert figures["score_k"] == 20 and figures["score_users_per_second"] > 0 and "users/s per core" in proc.stdout
    # the rate is the score job's: the model saved in the work dir, top-K Parquet published beside it
    assert figures["score_driver_peak_memory_gb"] > 0 and (tmp_path / "wd" / "scores" / "_SUCCESS").exists()
    assert (tmp_path / "wd" / "model" / "model.json").exists()
    assert abs(figures["gflops"] - figures["gflop_per_iteration"] / figures["seconds_per_iteration"]) < 1e-6 * figures["gflops"]


def test_bench_work_count_follows_the_documented_formula():
    # ml-25m shape at rank 64: 20M training ratings, every user and item solved -> about 190 GFLOP
    work = half_step_flops(20_000_000, 162_541, 64) + half_step_flops(20_000_000, 59_047, 64)
    assert 185e9 < work < 195e9
    assert half_step_flops(10, 2, 1) == 10 * 2 * 3 + 2 * 8 / 3


def test_bench_counts_cg_work_as_cg_does_it_not_as_the_cholesky_formula():
    # ml-25m shape at rank 64, 3 CG steps: (6 + 4 * 3) nnz K per half-step -> about 46.8 GFLOP per iteration,
    # a quarter of the exact solve's count above
    work = half_step_flops(20_002_908, 162_541, 64, 3) + half_step_flops(20_002_908, 59_047, 64, 3)
    assert 46e9 < work < 47.5e9
    assert half_step_flops(10, 2, 20, 3) == 10 * 21 * 18
    # up to rank 15 CG runs on each row's Gram matrix, formed whole: 2 nnz K (K + 1), then (2 + steps) K x K products
    assert half_step_flops(10, 2, 1, 3) == 2 * 10 * 2 * 3 + 2 * 5 * 2 * 4


def test_bench_bytes_count_one_src_row_per_rating_and_the_dst_rows():
    # the floor: 20 M ratings x 65 float32 = 5.2 GB of gathered rows per half-step, plus index and value
    assert half_step_bytes(20_000_000, 0, 64) == 20_000_000 * (8 + 260)
    assert half_step_bytes(0, 10, 1) == 10 * 8 and half_step_bytes(0, 10, 1, 3) == 10 * 16  # CG also reads prev
    assert half_step_bytes(20_000_000, 0, 64, 3, src_bytes=2) == 20_000_000 * (8 + 130)  # float16 gathers


def test_bench_roofline_binds_on_the_slower_limit():
    r = roofline(2.0, 100e9, 10e9, 200.0, 20.0)  # 0.5 s of arithmetic, 0.5 s of memory traffic
    assert r["binding_limit"] == "memory" and r["fraction_of_roofline"] == 0.25
    r = roofline(1.0, 100e9, 1e9, 200.0, 20.0)
    assert r["binding_limit"] == "compute" and r["flop_floor_seconds"] == 0.5 and r["fraction_of_roofline"] == 0.5


FAKE_PEER = """#!/bin/sh
# stands in for a peer's python: bench runs it as PY bench_peer.py --train DIR ...; it checks its arguments
case "$1" in *bench_peer.py) ;; *) echo "unexpected arguments: $*" >&2; exit 3;; esac
[ "$2" = "--train" ] || exit 3
echo "some peer logging"
echo 'PEER {"peer": "lenskit", "missing": "No module named lenskit"}'
echo 'PEER {"peer": "implicit", "version": "0.7.3", "seconds_per_iteration": 0.5, "threads": 2}'
"""


def test_bench_times_the_peers_in_their_own_interpreter_and_prints_the_ratio(tmp_path):
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PEER)
    fake.chmod(0o755)
    proc = run_cli("bench", "--shape", "ml-100k", "--rank", "4", "--iterations", "2", "--engine", "inprocess",
                   "--model", "implicit_als", "--work-dir", str(tmp_path / "wd"), "--peer-python", str(fake))
    assert proc.returncode == 0, proc.stderr
    assert "peer lenskit: not installed in" in proc.stdout and "install it there" in proc.stdout
    figures = json.loads((tmp_path / "wd" / "results.jsonl").read_text().splitlines()[-1])
    implicit = [p for p in figures["peers"] if p["peer"] == "implicit"][0]
    assert implicit["ratio"] == 0.5 / figures["seconds_per_iteration"]
    assert "peer implicit 0.7.3: 0.500 s per iteration" in proc.stdout
    assert f"{implicit['ratio']:.2f} x ours" in proc.stdout


def test_bench_peer_output_parsing_keeps_peer_lines_only():
    text = "INFO loading\nPEER {\"peer\": \"implicit\", \"version\": \"0.7.3\", \"seconds_per_iteration\": 3.0}\n"
    assert parse_peer_output(text, 1.5) == [{"peer": "implicit", "version": "0.7.3", "seconds_per_iteration": 3.0,
                                             "ratio": 2.0}]


def test_bench_with_a_peer_python_that_does_not_exist_stops_before_training_naming_the_flag(tmp_path):
    proc = run_cli("bench", "--shape", "ml-100k", "--rank", "4", "--engine", "inprocess", "--work-dir",
                   str(tmp_path / "wd"), "--peer-python", str(tmp_path / "no-such-python"))
    assert proc.returncode == 2 and "--peer-python" in proc.stderr and "no such executable" in proc.stderr
    assert not (tmp_path / "wd").exists()  # nothing generated: it failed first


def test_bench_peer_script_reports_a_missing_peer_in_a_python_without_it(tmp_path):
    """The real peer script in this interpreter (no LensKit here: recsys_dist never depends on it)."""
    import subprocess

    proc = subprocess.run([sys.executable, str(PEER_SCRIPT), "--train", str(tmp_path), "--model", "als"],
                          capture_output=True, text=True)
    lines = parse_peer_output(proc.stdout, 1.0)
    assert proc.returncode == 0 and lines == [{"peer": "lenskit", "missing": lines[0]["missing"]}]
    assert "lenskit" in lines[0]["missing"]


def test_bench_kernel_job_times_one_kernel_and_cg_converges_to_the_exact_solve():
    job = Path(__file__).resolve().parents[1] / "jobs" / "bench_kernel.py"
    sse = {}
    for solver, steps, dtype in (("cholesky", 3, "float32"), ("cg", 40, "float32"), ("cg", 40, "float16")):
        proc = subprocess.run([sys.executable, str(job), "--rank", "6", "--solver", solver, "--steps", str(steps),
                               "--rows", "300", "--src-rows", "500", "--repeats", "1", "--gather-dtype", dtype],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        found = re.search(r"one thread: ([0-9.]+) ns per rating .*squared error ([0-9.e+]+)", proc.stdout)
        assert found, proc.stdout
        assert float(found.group(1)) > 0
        sse[solver, dtype] = float(found.group(2))
    # 40 CG steps on 7 unknowns per row: the exact solve, so the same squared error (float16 src rows: close)
    assert abs(sse["cg", "float32"] - sse["cholesky", "float32"]) <= 1e-4 * sse["cholesky", "float32"]
    assert abs(sse["cg", "float16"] - sse["cg", "float32"]) <= 1e-2 * sse["cg", "float32"]
    bad = subprocess.run([sys.executable, str(job), "--rank", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--rank" in bad.stderr
    bad = subprocess.run([sys.executable, str(job), "--solver", "cholesky", "--gather-dtype", "float16"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--gather-dtype" in bad.stderr
