"""What each job of the command line runs and prints: results (summaries, tables, lists) to stdout
through ``_result``, diagnostics through logging (``cli`` sends those to stderr). ``cli`` parses the
arguments and the configuration and calls ``RUNNERS[job]`` (or ``VIEW_RUNNERS`` for the jobs that take
no configuration)."""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any, Callable

from recsys_dist.config import JobConfig
from recsys_dist.errors import ConfigError

log = logging.getLogger("recsys_dist")


def _result(fmt: str, *args: Any) -> None:
    """One line of a job's results (summaries, metric tables, recommendation lists): to stdout, so
    ``JOB > file`` keeps them and ``--quiet`` (which silences the diagnostics on stderr) does not."""
    print(fmt % args if args else fmt, flush=True)


def _report_dataset(label: str, m: dict[str, Any], out: str) -> None:
    c = m["counts"]
    seconds = m.get("seconds") or m.get("write_seconds", 0) + m.get("generate_seconds", 0)
    rate = c["ratings"] / seconds if seconds else float("nan")
    _result("%s: %d ratings, %d users, %d items -> %s (%.1f s, %.0f ratings/s)",
             label, c["ratings"], c["users"], c["items"], out, seconds, rate)
    if c.get("duplicates_dropped"):
        log.warning("dropped %d duplicate (user, item) ratings, keeping the latest of each", c["duplicates_dropped"])
    if c.get("items_without_metadata"):
        log.warning("%d rated items have no title or genres in the items file", c["items_without_metadata"])


def _report_split(s: dict[str, Any], out: str) -> None:
    c = s["counts"]
    _result("split (%s): train %d, test %d, cold %d (cold users %d, cold items %d) -> %s",
             s["method"], c["train"], c["test"], c["cold"], c["cold_users"], c["cold_items"], out)


def _run_ingest(cfg: JobConfig) -> None:
    from recsys_dist.data.ingest import ingest

    _report_dataset("ingest", ingest(cfg.ingest), cfg.ingest.out)


def _run_synth(cfg: JobConfig) -> None:
    from recsys_dist.data.synth_output import synth

    _report_dataset(f"synth {cfg.synth.shape}", synth(cfg.synth), cfg.synth.out)


def _run_split(cfg: JobConfig) -> None:
    from recsys_dist.data.split import split

    _report_split(split(cfg.split), cfg.split.out)


def _report_training(metrics: dict[str, Any], out: str) -> None:
    parts = [f"{name} RMSE {metrics[name]['rmse']:.4f} MAE {metrics[name]['mae']:.4f} ({metrics[name]['n']} ratings)"
             for name in ("train", "test", "cold", "test_with_cold") if name in metrics]
    if "test_ranking" in metrics:
        r = metrics["test_ranking"]
        parts += [f"test P@10 {r['at']['10']['precision']:.4f} NDCG@10 {r['at']['10']['ndcg']:.4f} AUC {r['auc']:.4f} "
                  f"({r['users']} users)"]
    _result("model -> %s: %s", out, "; ".join(parts) or "saved")


def _run_train(cfg: JobConfig) -> None:
    from recsys_dist.pipeline import run_training

    _report_training(run_training(cfg), cfg.train.out)


def _run_evaluate(cfg: JobConfig) -> None:
    from recsys_dist.batch import run_evaluation

    m = run_evaluation(cfg.evaluate, cfg.engine)
    if "rmse" in m:
        _result("evaluate %s on %s: RMSE %.4f, MAE %.4f over %d ratings (%d cold: %d unknown users, %d unknown "
                 "items; policy %s)", m["model"], m["data"], m["rmse"], m["mae"], m["n"], m["cold_ratings"],
                 m["unknown_users"], m["unknown_items"], m["cold_policy"])
    else:
        _result("evaluate %s (%s, a ranking model: no rating metrics) on %s", m["model"], m["kind"], m["data"])
    if "calibration" in m:  # bpmf: the predictive intervals
        c = m["calibration"]
        _result("predictive intervals: %.1f %% of ratings inside mean +- 1 std (68 %% expected), %.1f %% inside "
                "+- 1.96 std (95 %%); mean std %.3f", 100 * c["inside_68"], 100 * c["inside_95"], c["mean_std"])
    r = m["ranking"]
    if not r["users"]:
        _result("no ranking metrics: %s", r["note"])
        return
    _result("whole-list AUC %.4f, MRR %.4f", r["auc"], r["mrr"])
    _result("%-6s %9s %9s %9s %9s %9s %9s   (%d users, relevant: rating >= %g, train items excluded)",
             "K", "precision", "recall", "ndcg", "map", "hit_rate", "coverage", r["users"], r["relevance"])
    for k, v in r["at"].items():
        _result("%-6s %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f", k, v["precision"], v["recall"], v["ndcg"], v["map"],
                 v["hit_rate"], v["coverage"])


def _run_score(cfg: JobConfig) -> None:
    from recsys_dist.scoring import run_scoring

    m = run_scoring(cfg.score, cfg.engine, cfg.filter)
    _result("score: %d recommendations for %d users (%d cold: the most-rated items) -> %s (%s)",
            m["rows"], m["users"], m["cold_users"], cfg.score.out, m["run"])


def _run_recommend(cfg: JobConfig) -> None:
    from recsys_dist.user_jobs import run_recommend

    r = run_recommend(cfg.recommend, cfg.filter, cfg.ingest)
    if not r["known"]:
        _result("user %s is cold (no training ratings in the model): %s", r["user"], r["cold_start"])
    else:
        _result("user %s (%d rated items): top %d", r["user"], r["rated"], len(r["items"]))
    for item in r["items"]:
        score = f"{item['score']:.2f}" if item["score"] is not None else "    "
        _result(f"{item['rank']:>3}. {score}  {item['title'] or item['item_id']}")
        liked = [b for b in item["because"] if b["toward"]]
        low = [b for b in item["because"] if not b["toward"]]  # rated below the biases' guess: this is far from it
        if liked:
            _result(f"       because you rated {_titled(liked)}")
        if low:
            _result(f"       {'and ' if liked else ''}unlike what you rated low: {_titled(low)}")
        if item.get("liked_genre"):
            _result(f"       because you like {item['liked_genre']}")
        elif not item["because"] and r.get("explanation"):  # the model explains, but no rated item raises this one
            _result("       no rated item pulls toward this")


def _titled(reasons: list[dict]) -> str:
    return "; ".join(f"{b['title'] or b['item_id']} ({b['rating']:g})" for b in reasons)


def _run_similar_items(cfg: JobConfig) -> None:
    from recsys_dist.similar_job import run_similar_items

    m = run_similar_items(cfg.similar, cfg.engine)
    _result("similar-items: %d rows for %d items -> %s (%s)", m["rows"], m["items"], cfg.similar.out, m["run"])


def _run_fold_in(cfg: JobConfig) -> None:
    from recsys_dist.user_jobs import run_fold_in

    r = run_fold_in(cfg.foldin, cfg.ingest)
    _result("fold-in: %d users (%d new) from %d ratings (%d of unknown items ignored) in %.1f ms -> %s",
             r["users"], r["new_users"], r["ratings"], r["unknown_item_ratings"], 1000 * r["seconds"], r["out"])


def _run_bench(cfg: JobConfig) -> None:
    from recsys_dist.bench import run_bench

    f = run_bench(cfg)
    _result("bench %s: %d users x %d items, %d training ratings, rank %d, %s",
             f["shape"], f["n_users"], f["n_items"], f["train_ratings"], f["rank"], f["engine"])
    _result("  setup (blocks, initialisation) %.2f s; first iteration (with any compilation) %.2f s",
             f["setup_seconds"], f["first_iteration_seconds"])
    _result("  per iteration %.3f s (user half-step %.3f s, item half-step %.3f s; kernels %.3f s summed over blocks)",
             f["seconds_per_iteration"], f["user_half_step_seconds"], f["item_half_step_seconds"],
             f["kernel_seconds_per_iteration"])
    if f["gflop_per_iteration"] is not None:
        _result("  work %.3g GFLOP per iteration: %.3g GFLOP/s = %.2g%% of the %.1f GFLOP/s matmul rate",
                 f["gflop_per_iteration"], f["gflops"], 100 * f["fraction_of_matmul"], f["matmul_gflops"])
    else:
        _result("  model %s: no flop count (the matmul rate, %.1f GFLOP/s, is for reference)", f["model"],
                 f["matmul_gflops"])
    if "fraction_of_roofline" in f:
        _result("  roofline (%s): %.3g GB per iteration at the %.1f GB/s triad bandwidth = %.3f s, the flops at the "
                 "matmul rate = %.3f s; %s-bound, %.0f%% of that limit achieved", f["solver"], f["gb_per_iteration"],
                 f["triad_gbs"], f["memory_floor_seconds"], f["flop_floor_seconds"], f["binding_limit"],
                 100 * f["fraction_of_roofline"])
    else:
        _result("  memory bandwidth %.1f GB/s (STREAM triad, for reference)", f["triad_gbs"])
    _result("  engine overhead %.3f s per iteration; peak memory of all processes %.2f GB, of the driver process "
             "%.2f GB (%.2f GB before training)", f["engine_overhead_seconds"], f["peak_memory_gb"],
             f["driver_peak_memory_gb"], f["driver_baseline_memory_gb"])
    if "routing" in f:
        predicted = sum(r.get(f"{r['mode']}_bytes", 0.0) for r in f["routing"].values())
        _result("  sending: %s; workers sent each other %.3f GB per iteration (the cost model predicted %.3f GB of "
                 "factor rows)", ", ".join(f"{side} half-steps {r['mode']}" for side, r in f["routing"].items()),
                 f["transferred_gb_per_iteration"], predicted / 1e9)
    if "score_seconds" in f:
        _result("  the score job, every user at K=%d: %.1f s = %.0f users/s (%.0f users/s per core), its process's "
                 "peak %.2f GB; first pass with engine start-up %.1f s", f["score_k"], f["score_seconds"],
                 f["score_users_per_second"], f["score_users_per_second_per_core"], f["score_driver_peak_memory_gb"],
                 f["score_first_pass_seconds"])
    for peer in f.get("peers", []):
        if "missing" in peer:
            _result("  peer %s: not installed in %s (%s); install it there to compare", peer["peer"],
                     f["peer_python"], peer["missing"])
        elif "error" in peer:
            _result("  peer %s %s failed: %s", peer["peer"], peer.get("version", ""), peer["error"])
        else:
            _result("  peer %s %s: %.3f s per iteration (fit(3) - fit(1) halved, %s threads): %.2f x ours",
                     peer["peer"], peer["version"], peer["seconds_per_iteration"], peer.get("threads", "?"),
                     peer["ratio"])
    _result("  figures appended to %s", f["results_file"])


def _run_tune(cfg: JobConfig) -> None:
    from recsys_dist.tuning.search import tune_job

    s = tune_job(cfg)
    _result("tune %s: %d trials (%d pruned, %d failed) in %.1f s; %s", s["out"], s["trials"], s["pruned"], s["failed"],
            s["seconds"], s["mode"])
    params = [k for k in s["leaderboard"][0] if k.startswith("model.")]
    _result("%-6s %10s %8s %6s  %s", "trial", s["metric"], "std", "folds", "  ".join(p.removeprefix("model.") for p in params))
    for row in s["leaderboard"]:
        values = "  ".join(f"{row[p]:.4g}" if isinstance(row[p], float) else str(row[p]) for p in params)
        _result("%-6d %10.4f %8.4f %6d  %s", row["trial"], row["mean"], row["std"] if row["std"] == row["std"] else 0.0,
                row["folds"], values)
    _result("best configuration -> %s/best.toml (train --config %s/best.toml ...)", s["out"], s["out"])
    refit = s.get("refit")
    if refit:
        scored = f"; {s['metric']} {refit[s['metric']]:.4f} on {refit['test']}" if "test" in refit else ""
        _result("refit model -> %s%s", refit["model"], scored)

def _run_report(args: argparse.Namespace) -> None:
    from recsys_dist import report

    if not report.available():
        raise ConfigError(f"report needs matplotlib, the report extra: {report.INSTALL_HINT}")
    from recsys_dist.report.build import build_report

    r = build_report(args.data or "", args.models or [], args.evaluations or [], args.out or "report.html",
                     args.figures or "", tune=args.tune or "")
    _result("report -> %s: %d sections, %d figures, %.1f MB in %.1f s%s", r["out"], len(r["sections"]), r["figures"],
            r["bytes"] / 1e6, r["seconds"], f" (each figure also in {args.figures})" if args.figures else "")


def _run_explore(args: argparse.Namespace) -> None:
    from recsys_dist import explore

    if not explore.available():
        raise ConfigError(f"explore needs streamlit, the explore extra: {explore.INSTALL_HINT}")
    if not args.model:
        raise ConfigError("explore needs --model DIR (a model directory written by train or run)")
    from recsys_dist.checkpoint import load_model

    load_model(args.model)  # a wrong directory fails here, with its message, not inside the browser
    address, port = args.address or "127.0.0.1", args.port or 8501
    _result("explore: http://%s:%d (Ctrl-C stops it)", address, port)
    explore.serve(args.model, args.data or "", address, port)


VIEW_RUNNERS: dict[str, Callable[[argparse.Namespace], None]] = {"report": _run_report, "explore": _run_explore}


def _run_pipeline(cfg: JobConfig) -> None:
    from recsys_dist.pipeline import run_dirs, run_pipeline

    started = time.perf_counter()
    where = run_dirs(cfg.run.out)

    def report(stage: str, r: dict[str, Any]) -> None:  # each stage's summary as soon as it is done
        if stage in ("synth", "ingest"):
            _report_dataset(stage, r, where["dataset"])
        elif stage == "split":
            _report_split(r, where["split"])
        elif stage == "train":
            _report_training(r, where["model"])
        elif stage == "evaluate":
            k = min(r["ranking"]["at"], key=int)
            at = r["ranking"]["at"][k]
            rating = f"test RMSE {r['rmse']:.4f}, MAE {r['mae']:.4f}; " if "rmse" in r else ""
            _result("evaluation -> %s: %sranking P@%s %.4f, NDCG %.4f, AUC %.4f", where["evaluation"], rating, k,
                    at["precision"], at["ndcg"], r["ranking"]["auc"])
        elif stage == "score":
            _result("scores -> %s: top %d for %d users (%s)", where["scores"], cfg.score.k, r["users"], r["run"])

    run_pipeline(cfg, report)
    _report_of_run(where)
    _result("done in %.1f s", time.perf_counter() - started)


def _report_of_run(where: dict[str, str]) -> None:
    """``run`` ends with the HTML report of what it did, when the report extra is installed."""
    from recsys_dist import report

    if not report.available():
        _result("report: not written (it needs matplotlib: %s), then python -m recsys_dist report --data %s "
                "--model %s --evaluation %s --out %s", report.INSTALL_HINT, where["dataset"], where["model"],
                where["evaluation"], where["report.html"])
        return
    from recsys_dist.report.build import build_report

    r = build_report(where["dataset"], [where["model"]], [where["evaluation"]], where["report.html"])
    _result("report -> %s: %d figures, %.1f MB (%.1f s)", r["out"], r["figures"], r["bytes"] / 1e6, r["seconds"])


RUNNERS: dict[str, Callable[[JobConfig], None]] = {
    "ingest": _run_ingest, "synth": _run_synth, "split": _run_split, "train": _run_train,
    "evaluate": _run_evaluate, "bench": _run_bench, "score": _run_score, "recommend": _run_recommend,
    "fold-in": _run_fold_in, "similar-items": _run_similar_items, "tune": _run_tune, "run": _run_pipeline,
}
