"""Progress bars: one per iteration and per scoring pass on every engine, only on a terminal, off with --quiet."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest

from recsys_dist import progress
from recsys_dist.config import EngineConfig, ModelConfig, ScoreConfig, TrainConfig
from tests.conftest import ROOT

BAR = re.compile(r"\x1b\[K([\w ,/]+?) \[[#-]{24}\] (\d+)/(\d+) blocks")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def bars(text: str) -> dict[str, list[tuple[int, int]]]:
    """Every drawing of every bar: label -> [(done, total), ...] in order."""
    drawn: dict[str, list[tuple[int, int]]] = {}
    for label, done, total in BAR.findall(text):
        drawn.setdefault(label, []).append((int(done), int(total)))
    return drawn


def lines_outside_bars(text: str) -> list[str]:
    """What stays on the screen: each line as left after its last carriage-return-and-erase."""
    return [line.split("\r\x1b[K")[-1] for line in text.split("\n")]


@pytest.mark.parametrize("engine", ["inprocess", "shm", pytest.param("dask", marks=pytest.mark.dask)])
def test_progress_bar_per_iteration_counts_every_block_on_each_engine(small_split, tmp_path, engine):
    from recsys_dist.scoring import run_scoring
    from recsys_dist.checkpoint import save_model
    from recsys_dist.train import fit

    screen = Terminal()
    with progress.to_console(screen):
        result = fit(TrainConfig(train=str(small_split / "train")), ModelConfig(rank=4, n_iter=3),
                     EngineConfig(name=engine, workers=2, user_blocks=3, item_blocks=2))
        save_model(result.model, str(tmp_path / "m"), {})
        run_scoring(ScoreConfig(model=str(tmp_path / "m"), out=str(tmp_path / "recs"), k=5),
                    EngineConfig(name=engine, workers=2))
    drawn = bars(screen.getvalue())
    for i in (1, 2, 3):  # each iteration's bar climbs from 0 to all tasks (3 + 2 blocks, a solve each), never back
        counts = [done for done, total in drawn[f"iteration {i}/3"] if total == 5]
        assert counts[0] == 0 and counts[-1] == 5 and counts == sorted(counts) and len(set(counts)) >= 3, counts
    assert drawn["building blocks"][0] == (0, 5) and drawn["building blocks"][-1] == (5, 5)  # set-up has its bar
    scoring = [label for label in drawn if label.startswith("scoring")]
    assert scoring == ["scoring 300 users, top 5"], drawn.keys()
    assert drawn[scoring[0]][-1][0] == drawn[scoring[0]][-1][1] >= 2  # every user block of the pass done
    assert screen.getvalue().endswith("\r\x1b[K")  # the last bar is erased when its pass ends


def test_progress_log_lines_are_never_drawn_over(small_split):
    import logging

    from recsys_dist.train import fit

    screen = Terminal()
    handler = progress.LogHandler(screen)
    logger = logging.getLogger("recsys_dist")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with progress.to_console(screen):
            fit(TrainConfig(train=str(small_split / "train")), ModelConfig(rank=4, n_iter=2), EngineConfig())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    shown = [line for line in lines_outside_bars(screen.getvalue()) if line]
    assert [line.split(":")[0] for line in shown if line.startswith("iteration")] == ["iteration 1", "iteration 2"]
    assert not [line for line in shown if "blocks" in line and "[" in line]  # no bar left behind a log line


def test_progress_nothing_is_drawn_without_a_console(small_split, capsys):
    from recsys_dist.train import fit

    fit(TrainConfig(train=str(small_split / "train")), ModelConfig(rank=4, n_iter=1), EngineConfig())
    out, err = capsys.readouterr()
    assert "\x1b[K" not in out + err


def test_progress_cli_on_a_terminal_unless_quiet(small_split, tmp_path, monkeypatch):
    from recsys_dist.cli import main

    args = ["train", "--train", str(small_split / "train"), "--iterations", "2", "--set", "model.rank=4"]
    for extra, expect_bars in (([], True), (["--quiet"], False)):
        screen = Terminal()
        monkeypatch.setattr(sys, "stderr", screen)
        assert main([*args, "--out", str(tmp_path / f"m{len(extra)}"), *extra]) == 0
        monkeypatch.undo()
        assert bool(bars(screen.getvalue())) is expect_bars, screen.getvalue()
    # not a terminal (a pipe, a log file): plain lines only
    piped = subprocess.run([sys.executable, "-m", "recsys_dist", *args, "--out", str(tmp_path / "piped")],
                           capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and "iteration 2:" in piped.stderr
    assert "\x1b[K" not in piped.stderr and not bars(piped.stderr)


def _read_terminal(fd: int, proc: subprocess.Popen, timeout: float) -> str:
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # the job closed its end
                break
            if not data:
                break
            chunks.append(data.decode(errors="replace"))
        elif proc.poll() is not None:
            break
    return "".join(chunks)


@pytest.mark.dask
def test_progress_submitted_job_draws_bars_on_its_terminal(small_split, tmp_path):
    """`jobs/train.py --scheduler` on real scheduler and worker processes, its stderr a pseudo-terminal."""
    from tests.cluster import real_cluster

    with real_cluster(2) as address:
        main, job_end = pty.openpty()
        proc = subprocess.Popen([sys.executable, str(ROOT / "jobs" / "train.py"), "--train", str(small_split / "train"),
                                 "--scheduler", address, "--iterations", "2", "--out", str(tmp_path / "m")],
                                stdin=subprocess.DEVNULL, stdout=job_end, stderr=job_end)
        os.close(job_end)
        try:
            screen = _read_terminal(main, proc, timeout=180)
            assert proc.wait(timeout=30) == 0, screen
        finally:
            proc.kill()
            os.close(main)
    drawn = bars(screen)
    assert [done for done, _ in drawn["iteration 2/2"]][-1] == drawn["iteration 2/2"][-1][1] == 8, screen  # 4 + 4 blocks, a solve each
    assert "dashboard" in screen
