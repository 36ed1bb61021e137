"""Bad input: one clear error naming file and line, and nothing half-written left behind."""

import zipfile

import pytest

from recsys_dist.config import IngestConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.ingest import ingest
from recsys_dist.errors import DataError
from tests.conftest import run_cli, write_zip

HEADER = "userId,movieId,rating,timestamp\n"
GOOD = "1,10,4.0,100\n2,20,3.5,101\n"


def _csv_source(tmp_path, body: str, header: str = HEADER):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "ratings.csv").write_text(header + body)
    return src


@pytest.mark.parametrize(
    "body, header, pattern",
    [
        (GOOD + "3,30,abc,102\n", HEADER, r"ratings.csv line 4: rating 'abc' is not a number"),
        (GOOD + "3,30,NaN,102\n", HEADER, r"ratings.csv line 4: rating 'NaN' is not finite"),
        (GOOD + "3,30,7.0,102\n", HEADER, r"ratings.csv line 4: rating 7.0 outside the scale 0.5-5"),
        (GOOD + "3,30,3.3,102\n", HEADER, r"ratings.csv line 4: rating 3.3 outside the scale"),
        (GOOD + "3,30,4.0\n", HEADER, r"ratings.csv line 4: expected 4 fields, found 3"),
        (GOOD + "3,30,4.0,5,6\n", HEADER, r"ratings.csv line 4: expected 4 fields, found 5"),
        (GOOD + "x3,30,4.0,102\n", HEADER, r"ratings.csv line 4: user id 'x3' is not an integer"),
        (GOOD + ",30,4.0,102\n", HEADER, r"ratings.csv line 4: empty user id"),
        (GOOD + "3,30,4.0,soon\n", HEADER, r"ratings.csv line 4: timestamp 'soon' is not an integer"),
        (GOOD + "99999999999999999999,30,4.0,1\n", HEADER, r"line 4: user id .* not an integer within int64"),
        (GOOD, "userId,movieId,rating\n", r"ratings.csv line 1: header .* \(missing \['timestamp'\]\)"),
        (GOOD, "userId,movieId,rating,timestamp,tag\n", r"ratings.csv line 1: header .* \(unexpected \['tag'\]\)"),
        ("", HEADER, r"ratings.csv: no ratings \(empty input\)"),
        ("", "", r"ratings.csv: no ratings \(empty input\)"),
    ],
)
def test_bad_input_csv_errors_name_file_and_line(tmp_path, body, header, pattern):
    out = tmp_path / "out"
    with pytest.raises(DataError, match=pattern):
        ingest(IngestConfig(source=str(_csv_source(tmp_path, body, header)), out=str(out)))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no staging directory left behind


def test_bad_input_line_number_is_exact_in_a_later_chunk(tmp_path):
    rows = "".join(f"{u},{u % 97},3.0,{u}\n" for u in range(1, 150_001))  # about 2.6 MB: three 1 MiB chunks
    src = _csv_source(tmp_path, rows + "5,5,9.0,5\n" + rows)
    with pytest.raises(DataError, match=r"ratings.csv line 150002: rating 9.0 outside"):
        ingest(IngestConfig(source=str(src), out=str(tmp_path / "out"), chunk_mb=1))


def test_bad_input_ml1m_dat_bad_rating_names_member_and_line(tmp_path):
    src = write_zip(tmp_path / "ml-1m.zip", {"ml-1m/ratings.dat": b"1::2::5::9\n1::3::6::9\n", "ml-1m/users.dat": b""})
    with pytest.raises(DataError, match=r"ml-1m.zip:ml-1m/ratings.dat line 2: rating 6 outside the scale 1-5"):
        ingest(IngestConfig(source=str(src), out=str(tmp_path / "out")))


def test_bad_input_corrupt_and_truncated_archives(tmp_path, ml100k_zip):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"this is not a zip archive at all")
    with pytest.raises(DataError, match=r"bad.zip: not a readable zip archive"):
        ingest(IngestConfig(source=str(bad), out=str(tmp_path / "out")))
    data = ml100k_zip.read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"truncated.zip"):
        ingest(IngestConfig(source=str(truncated), out=str(tmp_path / "out")))
    # A member whose compressed bytes are damaged: the central directory is intact, the CRC is not.
    damaged = tmp_path / "damaged.zip"
    write_zip(damaged, {"d/u.data": b"1\t2\t3\t4\n" * 50_000})
    raw = bytearray(damaged.read_bytes())
    info = zipfile.ZipFile(damaged).getinfo("d/u.data")
    start = info.header_offset + 30 + len(info.filename) + 100
    raw[start:start + 50] = bytes(50)
    damaged.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"damaged.zip:d/u.data"):
        ingest(IngestConfig(source=str(damaged), out=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()


def test_bad_input_unreadable_sources(tmp_path):
    with pytest.raises(DataError, match=r"/no/such/place: no such file or directory"):
        ingest(IngestConfig(source="/no/such/place", out=str(tmp_path / "out")))
    with pytest.raises(DataError, match=r"nosuchproto://x"):
        ingest(IngestConfig(source="nosuchproto://x/y.zip", out=str(tmp_path / "out")))


def test_bad_input_shorthand_offline_names_url_and_suggests_source(tmp_path, monkeypatch):
    from recsys_dist.data import sources

    monkeypatch.setattr(sources, "GROUPLENS", "http://127.0.0.1:9")  # closed port on loopback
    with pytest.raises(DataError, match=r"cannot download http://127.0.0.1:9/ml-25m.zip .* --source PATH/ml-25m.zip"):
        sources.resolve_source("ml-25m", cache_dir=tmp_path / "cache", base_url=sources.GROUPLENS)
    assert not any((tmp_path / "cache").iterdir())  # no partial download left in the cache


def test_bad_input_failed_ingest_keeps_the_previous_dataset(tmp_path):
    out = tmp_path / "out"
    ingest(IngestConfig(source=str(_csv_source(tmp_path, GOOD)), out=str(out)))
    before = Dataset.open(out).manifest["files"]
    with pytest.raises(DataError):
        ingest(IngestConfig(source=str(_csv_source(tmp_path, GOOD + "1,1,NaN,1\n")), out=str(out)))
    assert Dataset.open(out).manifest["files"] == before
    Dataset.open(out).verify()


def test_bad_input_refuses_to_replace_a_foreign_directory(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("do not delete")
    with pytest.raises(DataError, match="refusing to replace"):
        ingest(IngestConfig(source=str(_csv_source(tmp_path, GOOD)), out=str(out)))
    assert (out / "thesis.tex").read_text() == "do not delete"


def test_bad_input_directory_without_manifest_is_not_a_dataset(tmp_path):
    (tmp_path / "half" / "ratings").mkdir(parents=True)
    with pytest.raises(DataError, match="not a dataset"):
        Dataset.open(tmp_path / "half")


def test_bad_input_cli_prints_one_line_and_exits_nonzero(tmp_path):
    src = _csv_source(tmp_path, GOOD + "3,30,abc,102\n")
    proc = run_cli("ingest", "--source", str(src), "--out", str(tmp_path / "out"))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [f"recsys_dist ingest: error: {src}/ratings.csv line 4: rating 'abc' is not a number"]
    bad_key = run_cli("ingest", "--source", str(src), "--out", "x", "--set", "ingest.partitons=3")
    assert bad_key.returncode == 2 and "unknown key ingest.partitons" in bad_key.stderr
