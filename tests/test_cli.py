"""The jobs as a user runs them: fresh interpreters, real files."""

import json
import sys
from pathlib import Path

import pytest

from recsys_dist.data.dataset import Dataset
from tests.conftest import ROOT, run_cli


def test_cli_main_job_runs_on_builtin_defaults(tmp_path):
    proc = run_cli("run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "runs" / "quickstart"
    assert Dataset.open(out / "dataset").n_ratings == 100_000
    summary = json.loads((out / "split" / "split.json").read_text())
    assert summary["counts"]["train"] + summary["counts"]["test"] + summary["counts"]["cold"] == 100_000
    # results to stdout, one summary per stage in the order the stages ran; diagnostics to stderr
    stages = [line.split(" ")[0].rstrip(":") for line in proc.stdout.splitlines()]
    # the report is written with the report extra installed; without it, the line says how to get it
    assert stages == ["synth", "split", "model", "evaluation", "scores", "report", "done"], proc.stdout
    assert "iteration 1:" in proc.stderr and "iteration 1:" not in proc.stdout
    rerun = run_cli("run", "--quiet", cwd=tmp_path)  # a rerun replaces the outputs in place
    assert rerun.returncode == 0 and rerun.stderr == ""
    assert rerun.stdout.count("\n") == proc.stdout.count("\n")  # --quiet keeps the results


def test_cli_main_job_writes_under_a_url_out(tmp_path):
    """run --out takes an fsspec URL like every other job's --out: it once joined the stage directories as Paths,
    turning file:///x into file:/x, and failed after leaving a local file: directory behind."""
    (tmp_path / "cwd").mkdir()
    proc = run_cli("run", "--quiet", "--out", f"file://{tmp_path}/url-run", cwd=tmp_path / "cwd")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "url-run"
    assert Dataset.open(out / "dataset").n_ratings == 100_000 and (out / "model" / "model.json").exists()
    assert (out / "scores" / "_SUCCESS").exists() and (out / "evaluation" / "metrics.json").exists()
    assert f"scores -> file://{tmp_path}/url-run/scores" in proc.stdout
    assert list((tmp_path / "cwd").iterdir()) == []


@pytest.mark.realdata
def test_cli_ingest_then_official_fold_via_jobs_scripts(tmp_path, ml100k_zip):
    import subprocess

    def job(name, *args):
        return subprocess.run([sys.executable, str(ROOT / "jobs" / f"{name}.py"), *args], capture_output=True,
                              text=True, timeout=300)

    ingest = job("ingest", "--source", str(ml100k_zip), "--out", str(tmp_path / "ds"))
    assert ingest.returncode == 0, ingest.stderr
    assert "100000 ratings, 943 users, 1682 items" in ingest.stdout
    split = job("split", "--data", str(tmp_path / "ds"), "--method", "folds", "--fold", "u2", "--out", str(tmp_path / "u2"))
    assert split.returncode == 0, split.stderr
    assert json.loads((tmp_path / "u2" / "split.json").read_text())["counts"]["train"] == 80_000


def test_cli_config_file_with_overrides_and_flags(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('[synth]\nshape = "custom"\nn_users = 50\nn_items = 200\nn_ratings = 2000\nseed = 3\n')
    proc = run_cli("synth", "--config", str(conf), "--set", "synth.n_ratings=2500", "--ratings", "3000",
                   "--out", str(tmp_path / "s"))
    assert proc.returncode == 0, proc.stderr
    assert Dataset.open(tmp_path / "s").n_ratings == 3000  # flag beats --set beats file
    conf.write_text("[synth]\nrank = -1\n")
    bad = run_cli("synth", "--config", str(conf), "--out", str(tmp_path / "t"))
    assert bad.returncode == 2 and f"{conf}: synth.rank: must be >= 1, got -1" in bad.stderr
    assert not (tmp_path / "t").exists()


def test_cli_every_job_has_help_and_a_script():
    from recsys_dist.cli import FLAGS

    for job in FLAGS:
        assert (ROOT / "jobs" / f"{job.replace('-', '_')}.py").exists()
        proc = run_cli(job, "--help")
        assert proc.returncode == 0 and "--config" in proc.stdout and "--set" in proc.stdout


@pytest.mark.slow
def test_cli_one_million_row_synthetic_ingest(tmp_path):
    raw = run_cli("synth", "--shape", "ml-1m", "--format", "ml-1m", "--out", str(tmp_path / "raw"))
    assert raw.returncode == 0, raw.stderr
    assert (tmp_path / "raw" / "ratings.dat").stat().st_size > 10_000_000
    proc = run_cli("ingest", "--source", str(tmp_path / "raw"), "--out", str(tmp_path / "ds"), "--chunk-mb", "4")
    assert proc.returncode == 0, proc.stderr
    ds = Dataset.open(tmp_path / "ds")
    assert (ds.n_ratings, ds.n_users, ds.n_items) == (1_000_209, 6040, 3706)
    assert ds.manifest["source"]["format"] == "ml-1m"
    ds.verify()


def _snapshot(root: Path, skip: set[Path]) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` (outside ``skip``) with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and not any(s == p or s in p.parents for s in skip)}


@pytest.mark.parametrize("engine", ["inprocess", "shm"])
def test_cli_jobs_write_only_under_their_output_locations(tmp_path, engine):
    """ingest, split, train, evaluate, score and fold-in, run from an unrelated directory with relative paths:
    the inputs, the working directory and the temporary directory are left exactly as they were."""
    import os
    import subprocess

    from tests.conftest import write_zip

    work, tmp = tmp_path / "work", tmp_path / "tmpdir"
    for d in (work / "in", tmp):
        d.mkdir(parents=True)
    lines = [f"{u}::{i}::{(u * i) % 5 + 1}::{1_000_000 + u * 7 + i}" for u in range(1, 41) for i in range(1, 31)
             if (u + i) % 3]
    write_zip(work / "in" / "ml-1m.zip", {"ml-1m/ratings.dat": "\n".join(lines).encode()})
    (work / "in" / "new.csv").write_text("user_id,item_id,rating\n999,1,5\n999,2,3\n")
    outputs = ["ds", "split", "model", "eval", "recs", "folded"]
    steps = [
        ("ingest", "--source", "in/ml-1m.zip", "--out", "out/ds"),
        ("split", "--data", "out/ds", "--out", "out/split"),
        ("train", "--train", "out/split/train", "--iterations", "3", "--engine", engine, "--out", "out/model",
         "--checkpoint-every", "1"),
        ("evaluate", "--model", "out/model", "--data", "out/split/test", "--engine", engine, "--out", "out/eval"),
        ("score", "--model", "out/model", "--engine", engine, "--k", "5", "--out", "out/recs"),
        ("fold-in", "--model", "out/model", "--ratings", "in/new.csv", "--out", "out/folded"),
    ]
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    for step in steps:
        before = _snapshot(tmp_path, {work / "out"})
        proc = subprocess.run([sys.executable, "-m", "recsys_dist", *step], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, (step, proc.stderr)
        assert _snapshot(tmp_path, {work / "out"}) == before, step[0]  # no stray file, no input touched
    assert sorted(p.name for p in (work / "out").iterdir()) == sorted(outputs)


def test_cli_an_explicit_scheduler_selects_dask_over_the_config_files_engine(tmp_path, monkeypatch):
    from recsys_dist.cli import build_parser, load_config
    from recsys_dist.errors import ConfigError

    conf = tmp_path / "c.toml"
    conf.write_text('[engine]\nname = "shm"\n')
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)

    def engine(*argv):
        return load_config(build_parser().parse_args(["train", "--config", str(conf), *argv]), "train").engine

    assert engine().name == "shm"
    got = engine("--scheduler", "tcp://10.0.0.1:8786")
    assert (got.name, got.scheduler) == ("dask", "tcp://10.0.0.1:8786")
    import dask.config

    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://10.0.0.2:8786")
    dask.config.refresh()  # a job reads the environment at start; this process already had
    try:
        assert engine().name == "dask"
        assert engine("--engine", "shm").name == "shm"  # the command line names the engine: the environment yields
    finally:
        monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
        dask.config.refresh()
    with pytest.raises(ConfigError, match="drop one of them"):
        engine("--engine", "inprocess", "--scheduler", "tcp://10.0.0.1:8786")


def test_cli_top_level_help_is_plain_text():
    proc = run_cli("--help")
    assert proc.returncode == 0 and "`" not in proc.stdout and "python -m recsys_dist run" in proc.stdout


def test_cli_a_bad_flag_value_names_the_flag_typed():
    proc = run_cli("train", "--train", "x", "--rank", "-1")
    assert proc.returncode == 2 and "--rank (model.rank): must be >= 1, got -1" in proc.stderr
    proc = run_cli("evaluate", "--model", "x", "--data", "y", "--cold", "maybe")
    assert proc.returncode == 2 and "--cold (evaluate.cold):" in proc.stderr
    proc = run_cli("train", "--rank", "3.5")  # argparse's own errors are one line too, not the usage block
    assert proc.returncode == 2 and proc.stderr == ("python -m recsys_dist train: error: argument --rank: invalid int "
                                                    "value: '3.5' (python -m recsys_dist train --help lists the "
                                                    "options)\n")


def test_cli_a_memory_output_from_the_shell_is_said_to_vanish(tmp_path):
    proc = run_cli("run", "--quiet", "--out", "memory://cli-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("run.out memory://cli-run: a memory:// output lives in this process only and is "
                                  "gone when the job exits"), proc.stderr


def test_cli_a_raw_archive_given_as_a_dataset_says_to_ingest_it(ml100k_zip, tmp_path):
    proc = run_cli("train", "--train", str(ml100k_zip), "--out", str(tmp_path / "m"))
    assert proc.returncode == 1 and f"{ml100k_zip}: a file, not a dataset directory; ingest it first" in proc.stderr
    assert not (tmp_path / "m").exists()


def test_cli_version_and_the_model_repr_are_one_line(small_split, tmp_path):
    import recsys_dist
    from recsys_dist.checkpoint import load_model

    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"recsys_dist {recsys_dist.__version__}"
    assert run_cli("train", "--train", str(small_split / "train"), "--rank", "3", "--iterations", "2",
                   "--out", str(tmp_path / "m")).returncode == 0
    text = repr(load_model(str(tmp_path / "m")))
    assert "\n" not in text and text.startswith("ALSModel(kind='als'") and "n_factors=3" in text
