"""Every supported raw format, written small by the test, ingests to the same answer."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys_dist.config import IngestConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.ingest import ingest
from tests.conftest import write_zip

# (user, item, rating, timestamp): three users, three items, one duplicate pair (1, 10).
ROWS = [(1, 10, 4, 100), (1, 20, 3, 101), (2, 10, 5, 102), (3, 30, 1, 103), (2, 30, 2, 104), (1, 10, 2, 200)]


def _load(out):
    ds = Dataset.open(out)
    users, items = ds.user_index(), ds.item_index()
    r = ds.read_all()
    rows = sorted(zip(users.to_raw(r.user_idx).tolist(), items.to_raw(r.item_idx).tolist(), r.rating.tolist(),
                      r.timestamp.tolist()))
    return ds, rows


EXPECTED = sorted([(1, 10, 2.0, 200), (1, 20, 3.0, 101), (2, 10, 5.0, 102), (3, 30, 1.0, 103), (2, 30, 2.0, 104)])


def test_formats_ml100k_zip_with_latin1_titles(tmp_path):
    data = "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ROWS).encode()
    flags = "|".join(["0"] * 19)
    item = "\n".join(f"{i}|Caf\xe9 {i} (1999)|01-Jan-1999||http://x|{flags[:-1]}1" for i in (10, 20, 30))
    src = write_zip(tmp_path / "ml-100k.zip", {"ml-100k/u.data": data, "ml-100k/u.item": item.encode("latin-1")})
    m = ingest(IngestConfig(source=str(src), out=str(tmp_path / "out")))
    ds, rows = _load(tmp_path / "out")
    assert rows == EXPECTED
    assert m["counts"]["duplicates_dropped"] == 1 and m["counts"]["rows_read"] == 6
    items = ds.read_items()
    assert items.title.tolist() == ["Café 10 (1999)", "Café 20 (1999)", "Café 30 (1999)"]
    assert list(items.genres[0]) == ["Western"]


def test_formats_ml1m_dat_folder_with_windows_line_endings(tmp_path):
    src = tmp_path / "ml-1m"
    src.mkdir()
    (src / "ratings.dat").write_bytes("".join(f"{u}::{i}::{r}::{t}\r\n" for u, i, r, t in ROWS).encode())
    (src / "movies.dat").write_bytes("10::Am\xe9lie (2001)::Comedy|Romance\r\n20::B (1990)::Drama\r\n".encode("latin-1"))
    (src / "users.dat").write_text("1::M::25::0::0\n")
    m = ingest(IngestConfig(source=str(src), out=str(tmp_path / "out")))
    ds, rows = _load(tmp_path / "out")
    assert rows == EXPECTED and m["source"]["format"] == "ml-1m"
    items = ds.read_items().set_index("item_id")
    assert items.loc[10, "title"] == "Amélie (2001)" and list(items.loc[10, "genres"]) == ["Comedy", "Romance"]
    assert pd.isna(items.loc[30, "title"]) and m["counts"]["items_without_metadata"] == 1


def test_formats_ml10m_half_stars_and_utf8_titles(tmp_path):
    rows = [(u, i, r - 0.5, t) for u, i, r, t in ROWS]
    src = tmp_path / "ml-10M100K"
    src.mkdir()
    (src / "ratings.dat").write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in rows))
    (src / "movies.dat").write_text("10::Amélie (2001)::Comedy\n", encoding="utf-8")
    m = ingest(IngestConfig(source=str(src), out=str(tmp_path / "out")))
    assert m["source"]["format"] == "ml-10m" and m["rating_scale"]["step"] == 0.5
    ds, got = _load(tmp_path / "out")
    assert [g[2] for g in got] == [e[2] - 0.5 for e in EXPECTED]
    assert ds.read_items().set_index("item_id").loc[10, "title"] == "Amélie (2001)"


def test_formats_ml_csv_quoted_titles_and_unsorted_rows_via_file_url(tmp_path):
    src = tmp_path / "ml-latest-small"
    src.mkdir()
    shuffled = [ROWS[i] for i in (5, 3, 0, 4, 1, 2)]
    (src / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" +
                                     "".join(f"{u},{i},{r:.1f},{t}\n" for u, i, r, t in shuffled))
    (src / "movies.csv").write_text('movieId,title,genres\n10,"Good, the Bad (1966)",Western\n'
                                    '20,Plain (2000),(no genres listed)\n30,"Quote ""Q"" (1980)",Drama|War\n')
    ingest(IngestConfig(source=src.as_uri(), out=str(tmp_path / "out")))
    ds, rows = _load(tmp_path / "out")
    assert rows == EXPECTED
    items = ds.read_items().set_index("item_id")
    assert items.loc[10, "title"] == "Good, the Bad (1966)" and items.loc[10, "year"] == 1966
    assert list(items.loc[20, "genres"]) == [] and items.loc[30, "title"] == 'Quote "Q" (1980)'


def test_formats_generic_csv_with_string_ids_and_named_columns(tmp_path):
    path = tmp_path / "events.tsv"
    path.write_text("who\twhat\tstars\twhen\textra\n" + "".join(f"u{u}\tit{i}\t{r}\t{t}\tz\n" for u, i, r, t in ROWS))
    cfg = IngestConfig(source=str(path), out=str(tmp_path / "out"), format="csv", delimiter="\t", user_col="who",
                       item_col="what", rating_col="stars", timestamp_col="when", scale=[1, 5, 1])
    m = ingest(cfg)
    ds, _ = _load(tmp_path / "out")
    assert ds.user_index().ids.tolist() == ["u1", "u2", "u3"]
    assert m["counts"]["ratings"] == 5 and m["counts"]["duplicates_dropped"] == 1


def test_formats_generic_parquet_ids_beyond_int32_in_memory_url(tmp_path):
    import fsspec

    big = 2**40
    table = pa.table({"user_id": [u + big for u, *_ in ROWS], "item_id": [i * big for _, i, *_ in ROWS],
                      "rating": [float(r) for *_, r, _ in ROWS], "timestamp": [t for *_, t in ROWS]})
    with fsspec.open("memory://bucket/ratings.parquet", "wb") as fh:
        pq.write_table(table, fh)
    ingest(IngestConfig(source="memory://bucket/ratings.parquet", out=str(tmp_path / "out")))
    ds, rows = _load(tmp_path / "out")
    assert rows == sorted((u + big, i * big, r, t) for u, i, r, t in EXPECTED)
    assert ds.manifest["source"]["format"] == "parquet"


def test_formats_generic_csv_without_timestamp_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user_id,item_id,rating\n1,2,3.5\n2,2,4\n")
    m = ingest(IngestConfig(source=str(path), out=str(tmp_path / "out"), timestamp_col=""))
    assert m["has_timestamp"] is False and m["rating_scale"] == {"min": 3.5, "max": 4.0, "step": 0.5}


def test_formats_partition_count_does_not_change_the_data(tmp_path):
    path = tmp_path / "r.csv"
    rng = np.random.default_rng(1)
    u, i = rng.integers(0, 500, 3000), rng.integers(0, 80, 3000)
    path.write_text("user_id,item_id,rating,timestamp\n" + "".join(f"{a},{b},3,{n}\n" for n, (a, b) in enumerate(zip(u, i))))
    outs = []
    for parts in (1, 7):
        ingest(IngestConfig(source=str(path), out=str(tmp_path / f"p{parts}"), partitions=parts, chunk_mb=1))
        outs.append(Dataset.open(tmp_path / f"p{parts}"))
    assert [o.n_blocks for o in outs] == [1, 7]
    a, b = (o.read_all() for o in outs)
    np.testing.assert_array_equal(a.user_idx, b.user_idx)
    np.testing.assert_array_equal(a.item_idx, b.item_idx)
    np.testing.assert_array_equal(a.timestamp, b.timestamp)


def test_formats_shorthand_uses_the_cache_without_network(tmp_path, ml100k_zip):
    import shutil

    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(ml100k_zip, cache / "ml-100k.zip")
    m = ingest(IngestConfig(source="ml-100k", out=str(tmp_path / "out"), cache_dir=str(cache)))
    assert m["counts"]["ratings"] == 100_000
