"""The report's plots, drawn with matplotlib (the optional ``report`` extra) on the Agg backend:
every figure has a title, axis labels with units and a legend where colours mean something."""

from __future__ import annotations

from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from recsys_dist.report.models import bucket_labels  # noqa: E402

plt.rcParams.update({"font.size": 11, "axes.titlesize": 13, "axes.labelsize": 11, "legend.fontsize": 9,
                     "figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3})
WIDE, SQUARE = (10, 4), (6.5, 5.5)


def _log_log(ax: Any, counts: np.ndarray, exponent: float, what: str, colour: str) -> None:
    """The complementary CDF (share with at least x ratings), which a power law p(x) ~ x^-alpha
    makes a straight line of slope 1 - alpha, with the fit drawn from where it starts (the median)."""
    x = np.sort(counts[counts > 0])
    values = np.unique(x)
    ccdf = 1.0 - np.searchsorted(x, values, side="left") / max(len(x), 1)
    ax.loglog(values, ccdf, "o", ms=3, alpha=0.6, color=colour, label=f"{what}s")
    if np.isfinite(exponent) and len(values):
        start = max(int(np.median(x)), 1)
        line = np.logspace(np.log10(start), np.log10(values.max()), 20)
        anchor = ccdf[min(np.searchsorted(values, start), len(ccdf) - 1)]
        ax.loglog(line, anchor * (line / start) ** (1.0 - exponent), "k--",
                  label=f"power-law fit, alpha = {exponent:.2f}")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no crowded 2x10^1, 3x10^1 labels
    ax.set_xlabel(f"ratings per {what} (count)")
    ax.set_ylabel(f"share of {what}s with at least that many (fraction)")
    ax.legend()


def power_laws(p: dict[str, Any]) -> Figure:
    fig, (left, right) = plt.subplots(1, 2, figsize=WIDE, layout="constrained")
    _log_log(left, p["user_counts"], p["user_exponent"], "user", "tab:blue")
    left.set_title("User activity (log-log)")
    _log_log(right, p["item_counts"], p["item_exponent"], "item", "tab:orange")
    right.set_title("Item popularity (log-log)")
    return fig


def rating_distribution(p: dict[str, Any]) -> Figure:
    fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    values = np.asarray(p["rating_values"], float)
    width = 0.8 * (np.min(np.diff(values)) if len(values) > 1 else 1.0)
    ax.bar(values, np.asarray(p["rating_counts"]) / 1e3, width=width, color="tab:blue")
    ax.set(title="Rating distribution", xlabel="rating (stars)", ylabel="ratings (thousands)", xticks=values)
    return fig


def long_tail(p: dict[str, Any]) -> Figure:
    counts = np.sort(p["item_counts"][p["item_counts"] > 0])[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    share = np.cumsum(counts) / max(counts.sum(), 1)
    ax.plot(100 * np.arange(1, len(counts) + 1) / max(len(counts), 1), 100 * share, color="tab:purple",
            label="cumulative share of ratings")
    ax.axvline(20, color="k", ls="--", label=f"top 20 % of items: {100 * p['top_item_share']:.1f} % of ratings")
    ax.set(title="Long tail: ratings on the most-rated items", xlabel="items, most rated first (% of rated items)",
           ylabel="ratings covered (%)", ylim=(0, 101))
    ax.legend(loc="lower right")
    return fig


def activity_over_time(p: dict[str, Any]) -> Figure | None:
    if not p["months"]:
        return None
    fig, ax = plt.subplots(figsize=WIDE, layout="constrained")
    months = np.array(p["months"], "datetime64[M]")
    ax.bar(months.astype("datetime64[D]"), np.asarray(p["month_counts"]) / 1e3, width=25, color="tab:green")
    ax.set(title="Activity over time", xlabel="month", ylabel="ratings per month (thousands)")
    return fig


def genre_frequencies(p: dict[str, Any]) -> Figure | None:
    if not p["genres"]:
        return None
    order = np.argsort(p["genre_ratings"])
    names = [p["genres"][i] for i in order]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.3 * len(names) + 1.5), sharey=True, layout="constrained")
    left.barh(names, np.asarray(p["genre_items"])[order], color="tab:blue")
    left.set(title="Genres by items", xlabel="items in the genre (count)")
    right.barh(names, np.asarray(p["genre_ratings"])[order] / 1e3, color="tab:orange")
    right.set(title="Genres by ratings", xlabel="ratings of the genre's items (thousands)")
    return fig


def genre_cooccurrence(p: dict[str, Any]) -> Figure | None:
    if len(p["genres"]) < 2:
        return None
    m = np.asarray(p["genre_cooccurrence"], float)
    fig, ax = plt.subplots(figsize=(8, 7), layout="constrained")
    image = ax.imshow(np.log10(m + 1), cmap="viridis")
    ticks = range(len(p["genres"]))
    ax.set_xticks(ticks, p["genres"], rotation=70, ha="right")
    ax.set_yticks(ticks, p["genres"])
    ax.grid(False)
    ax.set_title("Genre co-occurrence (items carrying both genres)")
    fig.colorbar(image, ax=ax, label="log10(1 + items)")
    return fig


def convergence(s: dict[str, Any]) -> Figure | None:
    h = s["history"]
    if not h:
        return None
    it = [r["iteration"] for r in h]
    fig, (left, right) = plt.subplots(1, 2, figsize=WIDE, layout="constrained")
    if "objective" in h[0]:
        left.plot(it, [r["objective"] for r in h], "o-", label="objective after the item half-step")
        left.set(ylabel="objective (loss + penalty)", title="Objective per iteration")
    elif "sampled_auc" in h[0]:
        left.plot(it, [r["sampled_auc"] for r in h], "o-", label="sampled AUC of the epoch's triples")
        left.set(ylabel="AUC (fraction)", title="Sampled AUC per epoch")
    elif "noise_precision" in h[0]:  # bpmf: the chain's noise precision, a first look at its mixing
        left.plot(it, [r["noise_precision"] for r in h], "-", label="noise precision drawn for the sweep")
        left.set(ylabel="noise precision (1 / stars²)", title="Noise precision per Gibbs sweep")
    left.set_xlabel("iteration")
    if left.get_legend_handles_labels()[0]:
        left.legend()
    for ax in (left, right):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    for key, name in (("train_rmse", "train"), ("test_rmse", "test")):
        if key in h[0]:
            right.plot(it, [r[key] for r in h], "o-", label=f"{name} RMSE")
    right.set(title="RMSE per iteration", xlabel="iteration", ylabel="RMSE (stars)")
    if right.lines:
        right.legend()
    else:
        right.text(0.5, 0.5, "a ranking model: no rating error", ha="center", transform=right.transAxes)
    fig.suptitle(s["label"])
    return fig


def half_step_seconds(s: dict[str, Any]) -> Figure | None:
    h = [r for r in s["history"] if "user_seconds" in r]
    if not h:
        return None
    it = np.array([r["iteration"] for r in h])
    fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    ax.bar(it - 0.2, [r["user_seconds"] for r in h], 0.4, label="user half-step")
    ax.bar(it + 0.2, [r["item_seconds"] for r in h], 0.4, label="item half-step")
    ax.set(title=f"Seconds per half-step: {s['label']}", xlabel="iteration", ylabel="wall time (s, log scale)",
           yscale="log")  # the first iteration includes any JIT compilation: a linear axis would hide the rest
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend()
    return fig


def bucket_curves(models: list[dict[str, Any]]) -> Figure | None:
    rated = [s for s in models if "buckets" in s]
    if not rated:
        return None
    fig, axes = plt.subplots(1, 2, figsize=WIDE, sharey=True, layout="constrained")
    for ax, side in zip(axes, ("user", "item")):
        labels = bucket_labels(rated[0]["buckets"]["edges"])
        for s in rated:
            ax.plot(labels, s["buckets"][side]["rmse"], "o-", label=s["label"])
        ax.set(title=f"Test RMSE by {side} {'activity' if side == 'user' else 'popularity'}",
               xlabel=f"training ratings of the {side} (count)", ylabel="RMSE (stars)")
        ax.tick_params(axis="x", rotation=30)
        ax.legend()
    return fig


def ranking_at_k(models: list[dict[str, Any]]) -> Figure | None:
    ranked = [s for s in models if s.get("ranking") and len(s["ranking"].get("at", {})) > 1]
    if not ranked:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), layout="constrained")
    for ax, metric in zip(axes, ("precision", "recall", "ndcg")):
        for s in ranked:
            ks = sorted(s["ranking"]["at"], key=int)
            ax.plot([int(k) for k in ks], [s["ranking"]["at"][k][metric] for k in ks], "o-", label=s["label"])
        ks = sorted({int(k) for s in ranked for k in s["ranking"]["at"]})
        ax.set(title=f"{metric.upper() if metric == 'ndcg' else metric.capitalize()}@K", xlabel="K (items, log scale)",
               ylabel=f"{metric} (fraction)", xscale="log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend()
    return fig


def popularity_of_recommendations(s: dict[str, Any]) -> Figure:
    b = s["bias"]
    fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    top = max(int(b["catalogue_counts"].max()), 2)
    bins = np.logspace(0, np.log10(top + 1), 30)
    for values, label in ((b["catalogue_counts"], "catalogue items (rated ones)"),
                          (b["recommended_popularity"], f"recommendations (top {b['k']} of {b['users']} users)")):
        if len(values):  # shares, not densities: on log bins a density hides the wide bins' mass
            ax.hist(values, bins=bins, weights=np.full(len(values), 1 / len(values)), alpha=0.5, label=label)
    ax.set(xscale="log", title=f"Popularity bias: {s['label']}",
           xlabel="training ratings of the item (count, log scale)", ylabel="share of items or recommendations")
    ax.legend()
    return fig


def item_factor_map(s: dict[str, Any], labels: int = 10, colours: int = 10) -> Figure | None:
    m = s["item_map"]
    if m is None:
        return None
    genres = np.array(m["genre"], dtype=object)
    names, freq = np.unique(genres, return_counts=True)
    shown = list(names[np.argsort(-freq, kind="stable")][:colours])
    fig, ax = plt.subplots(figsize=(9, 7), layout="constrained")
    other = ~np.isin(genres, shown)
    ax.scatter(m["xy"][other, 0], m["xy"][other, 1], s=6, c="lightgrey", label="other genres")
    cmap = plt.get_cmap("tab10")
    for j, g in enumerate(shown):
        hit = genres == g
        ax.scatter(m["xy"][hit, 0], m["xy"][hit, 1], s=8, color=cmap(j % 10), label=g)
    for i in np.argsort(-np.asarray(m["count"]), kind="stable")[:labels]:
        if m["title"][i]:
            ax.annotate(m["title"][i][:32], m["xy"][i], fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set(title=f"Item factors, first two principal axes ({100 * m['explained']:.0f} % of variance): {s['label']}",
           xlabel="principal axis 1 (factor units)", ylabel="principal axis 2 (factor units)")
    ax.title.set_fontsize(11)
    ax.legend(title="main (rarest) genre", markerscale=2, loc="best")
    return fig


def tuning_scores(results: Any, metric: str, params: list[str]) -> Figure | None:  # noqa: ANN401 - a DataFrame
    """One panel per searched parameter: each trial's mean validation score against the parameter's value
    (log x for ranges spanning more than 10x), completed and pruned trials marked apart."""
    numeric = [p for p in params if np.issubdtype(results[p].dtype, np.number)]
    if not numeric or metric not in results:
        return None
    per_trial = results.groupby("trial").agg({**{p: "first" for p in numeric}, metric: "mean", "state": "first"})
    fig, axes = plt.subplots(1, len(numeric), figsize=(4.2 * len(numeric), 4), layout="constrained", squeeze=False)
    for ax, p in zip(axes[0], numeric):
        for state, marker, colour in (("complete", "o", "tab:blue"), ("pruned", "x", "tab:grey")):
            rows = per_trial[per_trial["state"] == state]
            ax.scatter(rows[p], rows[metric], marker=marker, c=colour, label=f"{state} ({len(rows)})")
        values = per_trial[p][per_trial[p] > 0]
        log = len(values) == len(per_trial) and values.max() > 10 * values.min()
        ax.set(title=p.removeprefix("model."), xlabel=p.removeprefix("model.") + (" (log scale)" if log else ""),
               ylabel=f"validation {metric} (mean over folds)", xscale="log" if log else "linear")
        if log:  # major ticks only: minor labels of a short log range overlap
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend()
    return fig
