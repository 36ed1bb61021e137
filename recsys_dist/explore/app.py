"""The explorer's Streamlit script: ``python -m recsys_dist explore --model DIR`` serves it.

Five pages, chosen in the sidebar: a user's recommendations with reasons beside their history, a
new user's recommendations from a few ratings (fold-in, no retraining), similar movies, the dataset
profile and the model's metrics. Bad input (an unknown id, an empty search, a model without titles)
gets a message on the page, never a traceback."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from recsys_dist.errors import RecsysError
from recsys_dist.explore import SETTINGS
from recsys_dist.explore.service import Explorer

PAGES = ["Recommend for a user", "New user", "Similar movies", "Dataset profile", "Model metrics"]


@st.cache_resource(show_spinner="loading the model")
def explorer(model: str, data: str) -> Explorer:
    return Explorer(model, data)


@st.cache_resource(show_spinner="profiling the dataset, one partition at a time")
def dataset_profile(data: str) -> dict[str, Any]:
    from recsys_dist.data.dataset import Dataset
    from recsys_dist.report.profile import profile_dataset

    return profile_dataset(Dataset.open(data))


def recommendations_table(result: dict[str, Any], ex: Explorer) -> None:
    if result.get("cold_start"):
        st.info(f"Cold user: {result['cold_start']}.")
    rows = []
    for item in result["items"]:
        because = "; ".join(("unlike " if not b["toward"] else "") + f"{b['title'] or b['item_id']} ({b['rating']:g})"
                            for b in item["because"])
        genres = ex.items.loc[ex.items["item_id"] == item["item_id"], "genres"]
        rows.append({"rank": item["rank"], "title": item["title"] or str(item["item_id"]),
                     "genres": genres.iloc[0] if len(genres) else "", "score": round(item["score"], 3),
                     "because you rated": because or "-"})
    if not rows:
        st.warning("No item passes these filters: relax the genre or popularity filter.")
        return
    st.table(pd.DataFrame(rows).set_index("rank"))


def filters(ex: Explorer, key: str) -> tuple[int, list[str], int]:
    left, mid, right = st.columns(3)
    k = left.number_input("how many", 1, 50, 10, key=f"{key}_k")
    genres = mid.multiselect("only these genres", ex.genres, key=f"{key}_genres")
    top = int(ex.items["ratings"].max()) if len(ex.items) else 0
    least = right.number_input("at least this many ratings", 0, max(top, 0), 0, key=f"{key}_min")
    return int(k), genres, int(least)


def user_page(ex: Explorer) -> None:
    st.header("Recommendations for a user")
    user = st.text_input("user id", key="user_id", placeholder=f"e.g. {ex.model.user_ids_[0]}")
    k, genres, least = filters(ex, "user")
    if not user.strip():
        st.info("Enter a user id to see their recommendations and rating history.")
        return
    try:
        result = ex.recommend(user, k, genres, least)
        history = ex.user_history(user)
    except RecsysError as exc:
        st.error(str(exc))
        return
    left, right = st.columns([3, 2])
    with left:
        st.subheader(f"Top {k} for user {user}")
        recommendations_table(result, ex)
    with right:
        st.subheader(f"Their {len(history)} ratings")
        st.table(history.head(30).set_index("item_id"))


def pick_item(ex: Explorer, key: str) -> Any:
    """A title search and a choice among its matches; the chosen item id, or None."""
    label = "search a title" if ex.has_titles else "item id (this model's data has no titles)"
    query = st.text_input(label, key=f"{key}_search")
    if not query.strip():
        st.info("Type part of a title to search." if ex.has_titles else "Type an item id.")
        return None
    found = ex.search(query)
    if found.empty:
        st.warning(f"No movie matches {query!r}: try a shorter part of the title.")
        return None
    options = found["item_id"].tolist()
    names = dict(zip(options, found["title"].fillna("").tolist()))
    return st.selectbox("matches (most rated first)", options, key=f"{key}_pick",
                        format_func=lambda i: f"{names[i] or i} ({ex.items.loc[ex.items['item_id'] == i, 'ratings'].iloc[0]} ratings)")


def new_user_page(ex: Explorer) -> None:
    st.header("A new user: rate a few movies")
    st.caption("Recommendations come at once from fold-in: your row is solved against the fixed item factors, "
               "without retraining.")
    rated: dict[Any, float] = st.session_state.setdefault("new_ratings", {})
    item = pick_item(ex, "new")
    if item is not None:
        stars = st.slider("your rating", 1.0, 5.0, 4.0, 0.5, key="new_stars")
        if st.button("Add rating", key="add_rating"):
            rated[item] = float(stars)
    if rated:
        st.subheader(f"Your {len(rated)} ratings")
        st.table(pd.DataFrame([{"title": ex.title(i), "rating": r} for i, r in rated.items()]))
        if st.button("Clear my ratings", key="clear_ratings"):
            rated.clear()
            st.rerun()
        k, genres, least = filters(ex, "new")
        try:
            result = ex.recommend_new_user(rated, k, genres, least)
        except RecsysError as exc:
            st.error(str(exc))
            return
        st.subheader("Recommendations for you")
        recommendations_table(result, ex)


def similar_page(ex: Explorer) -> None:
    st.header("Similar movies")
    item = pick_item(ex, "similar")
    if item is None:
        return
    k = st.number_input("how many", 1, 50, 10, key="similar_k")
    try:
        st.subheader(f"Most similar to {ex.title(item)} (cosine of item factors)")
        st.table(ex.similar(item, int(k)).set_index("item_id"))
    except RecsysError as exc:
        st.error(str(exc))


def dataset_page(ex: Explorer) -> None:
    from recsys_dist.report import figures
    from recsys_dist.report.profile import profile_summary

    st.header("Dataset profile")
    st.caption(ex.data_url)
    p = dataset_profile(ex.data_url)
    st.table(pd.DataFrame(profile_summary(p), columns=["figure", "value"]).set_index("figure"))
    st.bar_chart(pd.DataFrame({"ratings": p["rating_counts"]}, index=[f"{v:g}" for v in p["rating_values"]]))
    for draw in (figures.power_laws, figures.long_tail, figures.activity_over_time, figures.genre_frequencies,
                 figures.genre_cooccurrence):
        fig = draw(p)
        if fig is not None:
            st.pyplot(fig)


def metrics_page(ex: Explorer) -> None:
    st.header("Model metrics")
    st.caption(f"{ex.model_url}: {ex.model!r}")
    m = ex.metrics
    rating = [{"data": name, **{k: m[name][k] for k in ("rmse", "mae", "n")}}
              for name in ("train", "test", "cold", "test_with_cold") if name in m]
    if rating:
        st.table(pd.DataFrame(rating).set_index("data"))
    ranking = m.get("test_ranking") or (ex.evaluation or {}).get("ranking")
    if ranking and ranking.get("at"):
        st.subheader(f"Ranking on the test set ({ranking['users']} users, relevant: rating >= {ranking['relevance']:g})")
        st.table(pd.DataFrame(ranking["at"]).T.rename_axis("K"))
    if not rating and not ranking:
        st.info("This model directory has no metrics.json (train writes one): no metrics to show.")
    if ex.history:
        frame = pd.DataFrame(ex.history).set_index("iteration")
        curves = [c for c in ("train_rmse", "test_rmse") if c in frame]
        if curves:
            st.subheader("RMSE per iteration")
            st.line_chart(frame[curves])
        if "objective" in frame:
            st.subheader("Objective per iteration")
            st.line_chart(frame[["objective"]])
        if "user_seconds" in frame:
            st.subheader("Seconds per half-step")
            st.bar_chart(frame[["user_seconds", "item_seconds"]])


def main() -> None:
    st.set_page_config(page_title="recsys_dist explorer", layout="wide")
    model = st.session_state.get("model_dir") or SETTINGS["model"]
    data = st.session_state.get("data_dir") or SETTINGS["data"]
    if not model:
        st.error("No model: start the app with python -m recsys_dist explore --model DIR")
        return
    try:
        ex = explorer(model, data)
    except RecsysError as exc:
        st.error(f"Cannot open the model: {exc}")
        return
    page = st.sidebar.radio("page", PAGES, key="page")
    st.sidebar.caption(f"{ex.model!r}")
    if not ex.has_titles:
        st.sidebar.warning("This model's training data has no titles: items are shown by id.")
    {"Recommend for a user": user_page, "New user": new_user_page, "Similar movies": similar_page,
     "Dataset profile": dataset_page, "Model metrics": metrics_page}[page](ex)


main()
