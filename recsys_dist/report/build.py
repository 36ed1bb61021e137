"""The ``report`` job: the dataset profile, a section per model and their comparison, as one HTML file."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from recsys_dist.checkpoint import read_json, write_text
from recsys_dist.data.dataset import Dataset
from recsys_dist.errors import DataError
from recsys_dist.report import figures as F
from recsys_dist.report.models import bucket_labels, summarize_model
from recsys_dist.report.page import Page
from recsys_dist.report.profile import profile_dataset, profile_summary

log = logging.getLogger(__name__)


def build_report(data: str, models: list[str], evaluations: list[str], out: str, figures_dir: str = "",
                 title: str = "", tune: str = "") -> dict[str, Any]:
    """Write the report to ``out``; return what it holds (sections, figures, bytes, seconds)."""
    started = time.perf_counter()
    if not data and not models and not tune:
        raise DataError("report needs --data DATASET, --model DIR [DIR ...] and/or --tune DIR")
    if not out:
        raise DataError("report needs --out FILE.html")
    evals = [_evaluation(url) for url in evaluations]
    if figures_dir:
        Path(figures_dir).mkdir(parents=True, exist_ok=True)
    page = Page(title or f"recsys_dist report: {Path(data.rstrip('/')).name if data else 'models'}", figures_dir)
    if data:
        _dataset_section(page, Dataset.open(data), data)
    summaries = []
    for i, url in enumerate(models):
        log.info("report: model %s", url)
        summaries.append(summarize_model(url, evals))
        _model_section(page, summaries[-1], i)
    if len(summaries) > 1:
        _comparison_section(page, summaries)
    if tune:
        _tuning_section(page, tune)
    text = page.render()
    write_text(out, text)  # a path or an fsspec URL
    return {"out": out, "sections": [a for a, _ in page.sections], "figures": len(page.figures),
            "bytes": len(text.encode()), "seconds": time.perf_counter() - started}


def _evaluation(url: str) -> dict[str, Any]:
    found = read_json(url, "metrics.json")
    if found is None or "ranking" not in found:
        raise DataError(f"--evaluation {url}: no evaluate metrics.json there; pass a directory written by evaluate --out")
    return found


def _dataset_section(page: Page, ds: Dataset, url: str) -> None:
    p = profile_dataset(ds)
    page.section("dataset", "Dataset profile")
    page.text(f"{url}: computed block by block over its {ds.n_blocks} Parquet partitions.", note=True)
    page.table(["figure", "value"], [list(r) for r in profile_summary(p)])
    page.figure(F.rating_distribution(p), "rating_distribution")
    page.figure(F.power_laws(p), "power_laws", "Complementary CDFs on log-log axes with the maximum-likelihood "
                "power-law fit above the median count")
    page.figure(F.long_tail(p), "long_tail")
    page.figure(F.activity_over_time(p), "activity_over_time")
    if not p["months"]:
        page.text("No timestamps in this dataset: no activity-over-time plot.", note=True)
    page.figure(F.genre_frequencies(p), "genre_frequencies")
    page.figure(F.genre_cooccurrence(p), "genre_cooccurrence")
    if not p["genres"]:
        page.text("The items table has no genres: no genre plots.", note=True)
    page.end_section()


def _rating_rows(s: dict[str, Any]) -> list[list[Any]]:
    return [[name, m["rmse"], m["mae"], m["n"]] for name, m in s["rating"].items()]


def _model_section(page: Page, s: dict[str, Any], i: int) -> None:
    page.section(f"model-{i + 1}", f"Model: {s['label']}")
    settings = ", ".join(f"{k}={v}" for k, v in s["settings"].items() if k in
                         ("kind", "rank", "reg", "bias_reg", "alpha", "n_iter", "solver", "learning_rate", "threshold"))
    page.text(f"{s['url']}: {settings}", note=True)
    page.heading("Convergence")
    page.figure(F.convergence(s), f"model{i + 1}_convergence")
    page.figure(F.half_step_seconds(s), f"model{i + 1}_half_step_seconds")
    if not s["history"]:
        page.text("This kind has no iterations (a closed-form model): no convergence plot.", note=True)
    page.heading("Metrics")
    if s["rating"]:
        page.table(["data", "RMSE", "MAE", "ratings"], _rating_rows(s))
    r = s["ranking"]
    if r and r.get("at"):
        page.table(["K", "precision", "recall", "NDCG", "MAP", "hit rate", "coverage"],
                   [[k, v["precision"], v["recall"], v["ndcg"], v["map"], v["hit_rate"], v["coverage"]]
                    for k, v in sorted(r["at"].items(), key=lambda kv: int(kv[0]))])
        page.text(f"Ranking over {r['users']} test users, relevant: rating >= {r['relevance']:g}, training items "
                  f"excluded; whole-list AUC {r['auc']:.4f}, MRR {r['mrr']:.4f}.", note=True)
    if "buckets" in s:
        page.figure(F.bucket_curves([s]), f"model{i + 1}_buckets")
        b = s["buckets"]
        page.table(["training ratings", "users' test ratings", "user RMSE", "items' test ratings", "item RMSE"],
                   [[lab, b["user"]["n"][j], b["user"]["rmse"][j], b["item"]["n"][j], b["item"]["rmse"][j]]
                    for j, lab in enumerate(bucket_labels(b["edges"]))])
    page.figure(F.ranking_at_k([s]), f"model{i + 1}_ranking_at_k")
    page.heading("Popularity bias of the recommendations")
    b = s["bias"]
    page.table(["measure", "value"], [
        ["users (the first with training ratings)", b["users"]], ["K", b["k"]],
        ["catalogue coverage (share of rated items recommended)", b["coverage"]],
        ["Gini of recommendation counts", b["gini"]],
        ["mean training ratings of a recommended item", b["mean_popularity"]],
        ["mean training ratings of a catalogue item", b["catalogue_popularity"]]])
    page.figure(F.popularity_of_recommendations(s), f"model{i + 1}_popularity")
    page.heading("Item factors")
    page.figure(F.item_factor_map(s), f"model{i + 1}_item_map")
    if s["item_map"] is None:
        page.text("This model has no item factors to map (rank 0 or fewer than 2 factors).", note=True)
    for what, rows in s.get("embeddings", {}).items():  # genre_als: what it learned of genres and demographics
        page.heading(f"Learned {what} embedding")
        page.table([what, "bias", "nearest by cosine"], [[name, bias, ", ".join(near)] for name, bias, near in rows])
    page.heading("Example users")
    for e in s["examples"]:
        _example(page, e)
    page.end_section()


def _example(page: Page, e: dict[str, Any]) -> None:
    if e.get("error"):
        page.text(f"user {e['user']}: {e['error']}", note=True)
        return
    page.text(f"User {e['user']} ({e['rated']} training ratings): top {len(e['items'])}")
    rows = []
    for item in e["items"]:
        because = "; ".join(("" if b["toward"] else "unlike ") + f"{b['title'] or b['item_id']} ({b['rating']:g})"
                            for b in item["because"])
        rows.append([item["rank"], item["title"] or item["item_id"], item["score"], because or "-"])
    page.table(["rank", "item", "ranking score", "because you rated (unlike: rated low)"], rows)


def _comparison_section(page: Page, summaries: list[dict[str, Any]]) -> None:
    page.section("comparison", "Comparison")
    rows = []
    for s in summaries:
        test = s["rating"].get("test", {})
        at = (s["ranking"] or {}).get("at", {})
        ten = at.get("10", {})
        rows.append([s["label"], test.get("rmse"), test.get("mae"), ten.get("precision"), ten.get("recall"),
                     ten.get("ndcg"), (s["ranking"] or {}).get("auc"), s["bias"]["coverage"], s["bias"]["gini"],
                     s["bias"]["mean_popularity"]])
    page.table(["model", "test RMSE", "test MAE", "P@10", "R@10", "NDCG@10", "AUC", "coverage@10", "Gini@10",
                "mean popularity@10"], rows)
    page.figure(F.bucket_curves(summaries), "comparison_buckets", "Test RMSE per bucket on shared axes (rating "
                "models only: ranking models predict no ratings)")
    page.figure(F.ranking_at_k(summaries), "comparison_ranking_at_k")
    page.end_section()


def _tuning_section(page: Page, url: str) -> None:
    """A tune search: its leaderboard and each parameter against the validation score."""
    import pandas as pd

    summary = read_json(url, "tune.json")
    if summary is None:
        raise DataError(f"--tune {url}: no tune.json there; pass a directory written by tune --out")
    results = pd.read_parquet(f"{url.rstrip('/')}/results.parquet")
    params = [c for c in results.columns if c.startswith("model.")]
    metric = summary["metric"]
    page.section("tuning", "Hyperparameter search")
    page.text(f"{url}: {summary['search']} search, {summary['trials']} trials ({summary['pruned']} pruned, "
              f"{summary['failed']} failed) over {', '.join(params)}, {summary['cv']}, {metric} "
              f"({summary['direction']}), {summary['seconds']:.0f} s; {summary['mode']}.")
    page.table(["trial", f"mean {metric}", "std", "folds", *[p.removeprefix("model.") for p in params]],
               [[r["trial"], r["mean"], r["std"], r["folds"], *[r[p] for p in params]] for r in summary["leaderboard"]])
    refit = summary.get("refit")
    if refit and "test" in refit:
        page.text(f"Best configuration refit on all the search data: {metric} {refit[metric]:.4f} on {refit['test']}.")
    page.figure(F.tuning_scores(results, metric, params), "tuning_scores", "Each trial's mean validation score "
                "against each searched parameter; pruned trials show their score when they were stopped")
    page.end_section()
