"""``python -m recsys_dist <job> ...``: read configuration and arguments, run a job, report.

Configuration precedence, lowest first: built-in defaults, ``--config FILE`` (TOML),
``--set section.key=value`` (repeatable), then the job's own flags. Errors are printed
on one line and give a non-zero exit code (2 for configuration, 1 for data). On a
terminal, without ``--quiet``, a progress bar follows each iteration and scoring pass.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn, Sequence

from recsys_dist import progress
from recsys_dist.cli_flags import DESCRIPTIONS, FLAGS, LIST_KEYS, VIEW_FLAGS
from recsys_dist.cli_jobs import RUNNERS, VIEW_RUNNERS
from recsys_dist.config import JobConfig, merge, parse_override, parse_toml
from recsys_dist.errors import ConfigError, RecsysError

log = logging.getLogger("recsys_dist")


class OneLineErrors(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (exit 2) like every other error, not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    import recsys_dist

    parser = OneLineErrors(prog="python -m recsys_dist", description=(
        "Distributed matrix-factorization recommenders: run a JOB (python -m recsys_dist JOB --help lists its "
        "options). The main job on the built-in default: python -m recsys_dist run"))
    parser.add_argument("--version", action="version", version=f"recsys_dist {recsys_dist.__version__}")
    sub = parser.add_subparsers(dest="job", required=True, metavar="JOB")
    for job, flags in FLAGS.items():
        p = sub.add_parser(job, help=DESCRIPTIONS[job], description=DESCRIPTIONS[job])
        p.add_argument("--config", help="TOML configuration file (see conf/)")
        p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a key")
        p.add_argument("--quiet", action="store_true", help="print only errors")
        if job == "train":
            p.add_argument("--resume", dest="train.resume", action="store_const", const=True, default=None,
                           help="continue from the last checkpoint in --out")
        if job == "tune":
            p.add_argument("--resume", dest="tune.resume", action="store_const", const=True, default=None,
                           help="continue the search in --out without re-running its finished trials")
            p.add_argument("--refit", dest="tune.refit", action="store_const", const=True, default=None,
                           help="train the best configuration on all of --data into OUT/model")
        for flag, key, kind, text in flags:
            nargs = "+" if key in LIST_KEYS else None
            p.add_argument(flag, dest=key, type=kind, nargs=nargs, default=None, help=text)
    for job, view_flags in VIEW_FLAGS.items():
        p = sub.add_parser(job, help=DESCRIPTIONS[job], description=DESCRIPTIONS[job])
        p.add_argument("--quiet", action="store_true", help="print only errors")
        for flag, dest, kind, nargs, text in view_flags:
            p.add_argument(flag, dest=dest, type=kind, nargs=nargs, default=None, help=text)
    return parser


def load_config(args: argparse.Namespace, job: str) -> JobConfig:
    base: dict[str, Any] = {}
    if args.config:
        try:
            text = Path(args.config).read_text()
        except OSError as exc:
            raise ConfigError(f"{args.config}: cannot read configuration: {exc.strerror}") from None
        base = parse_toml(text, args.config)
        JobConfig.from_mapping(base, origin=args.config)  # name the file in errors about its own keys
    overrides = [parse_override(item) for item in args.set]
    switches = {"train": ["train.resume"], "tune": ["tune.resume", "tune.refit"]}.get(job, [])
    for key in [k for _, k, _, _ in FLAGS[job]] + switches:
        value = getattr(args, key)
        if value is not None:
            section, name = key.split(".")
            overrides.append((section, name, value))
    cache = os.environ.get("RECSYS_DIST_CACHE")
    if cache and "cache_dir" not in base.get("ingest", {}):
        overrides.insert(0, ("ingest", "cache_dir", cache))
    merged = merge(base, overrides)
    if "engine.name" in [k for _, k, _, _ in FLAGS[job]]:
        merged = _with_scheduler(merged, {f"{section}.{name}" for section, name, _ in overrides},
                                 "scheduler" in base.get("engine", {}))
    from recsys_dist.config_paths import resolve_paths
    from recsys_dist.data.sources import SHORTHANDS

    try:
        cfg = JobConfig.from_mapping(merged, origin="command line")
    except ConfigError as exc:  # name the flag the user typed, beside the key it sets
        typed = {k: flag for flag, k, _, _ in FLAGS[job] if getattr(args, k) is not None}
        message = str(exc)
        for key, flag in typed.items():
            if message.startswith(f"command line: {key}:") or message.startswith(f"command line: {key}["):
                raise ConfigError(message.replace(f"command line: {key}", f"{flag} ({key})", 1)) from None
        raise
    # workers open the inputs from their own directory: hand them absolute paths (config_paths)
    return resolve_paths(cfg, {"synth", *SHORTHANDS})


def _with_scheduler(merged: dict[str, Any], command_line: set[str], in_file: bool) -> dict[str, Any]:
    """Where the Dask scheduler is, in Dask's precedence: --scheduler or the TOML/--set value, else
    DASK_SCHEDULER_ADDRESS, else a Dask YAML file. An address from the command line or the Dask
    configuration selects the dask engine even when the TOML file names another, unless the same command
    line names the engine; naming another engine there beside --scheduler ADDRESS is an error."""
    engine = dict(merged.get("engine", {}))
    source = "--scheduler" if "engine.scheduler" in command_line else "the config file" if in_file else ""
    if not source:
        from recsys_dist.executors.dask_cluster import configured_scheduler

        found = configured_scheduler()
        if found:
            engine["scheduler"], source = found, "DASK_SCHEDULER_ADDRESS or the Dask configuration"
            log.debug("scheduler %s from the Dask configuration", found)
    address = engine.get("scheduler", "local")
    if address != "local":
        if "engine.name" in command_line:
            if engine.get("name") != "dask" and source == "--scheduler":
                raise ConfigError(f"--scheduler {address} names a Dask scheduler but --engine {engine.get('name')} "
                                  "says to run elsewhere: drop one of them")
        elif source != "the config file":
            if engine.get("name", "dask") != "dask":
                log.info("scheduler %s (from %s): using the dask engine, not the config file's %s", address,
                         source, engine["name"])
            engine["name"] = "dask"
        else:
            engine.setdefault("name", "dask")
    return {**merged, "engine": engine} if engine else merged

def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = progress.LogHandler(sys.stderr)  # log lines and progress bars share the terminal
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, handlers=[handler], force=True)
    # distributed's INFO chatter drowns the job's lines. It sets its level when first imported (later, and
    # only for the dask engine), from the Dask config, which the environment can still override.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    logging.getLogger("distributed").setLevel(logging.WARNING)
    bars = progress.to_console(sys.stderr) if not args.quiet and sys.stderr.isatty() else contextlib.nullcontext()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)  # docker stop, kubectl delete: stop as cleanly as Ctrl-C
    cfg = None
    try:
        if args.job in VIEW_RUNNERS:  # no configuration: they read what other jobs wrote
            VIEW_RUNNERS[args.job](args)
            return 0
        cfg = load_config(args, args.job)
        _warn_memory_output(cfg, args.job)
        with bars:
            RUNNERS[args.job](cfg)
    except RecsysError as exc:
        print(f"recsys_dist {args.job}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"recsys_dist {args.job}: error: {exc.strerror}{where}; nothing was published: free space or "
              "choose another --out", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"recsys_dist {args.job}: {how}; nothing was published{_resume_hint(args.job, cfg)}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    return 0


def _warn_memory_output(cfg: JobConfig, job: str) -> None:
    """A memory:// output of a job run from the shell is gone when the job exits: say so before the work."""
    section = {"similar-items": "similar", "fold-in": "foldin"}.get(job, job)
    out = str(cfg.to_mapping().get(section, {}).get("out", ""))
    if out.startswith("memory://"):
        log.warning("%s.out %s: a memory:// output lives in this process only and is gone when the job exits "
                    "(a file system path or object-store URL keeps it)", section, out)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every context manager (shared memory, Dask clients,
    staging directories) unwinds exactly as for Ctrl-C."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def _resume_hint(job: str, cfg: JobConfig | None) -> str:
    """For an interrupted training run: which checkpoint ``--resume`` would continue from."""
    if job != "train" or cfg is None or not cfg.train.out:
        return ""
    from recsys_dist.checkpoint import latest_checkpoint

    found = latest_checkpoint(cfg.train.out)
    if found is None:
        return " (no checkpoint was written: set --checkpoint-every N to make training resumable)"
    return f"; the same command with --resume continues from {found}"


def run(argv: Sequence[str] | None = None) -> None:
    """Run a job and end the process with its exit code, skipping native destructors.

    A job that finished could still abort with SIGABRT at interpreter shutdown ("terminate called
    without an active exception", exit 134): Arrow's thread pools are torn down by static destructors
    while native threads are alive (compare apache/arrow#34314). Every output is written and closed
    by the time ``main`` returns, so the process runs its Python exit handlers, flushes its streams and
    leaves with ``os._exit``.
    """
    code = main(argv)
    import atexit

    atexit._run_exitfuncs()  # Python-level exit handlers (logging, multiprocessing's finalizers) still run
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)
