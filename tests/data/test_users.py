"""User demographics: ml-100k's u.user and ml-1m's users.dat land in users.parquet, indexed by the
dataset's user index, in the same columns and age groups; bad rows name the file and line."""

import numpy as np
import pytest

from recsys_dist.config import IngestConfig, SplitConfig
from recsys_dist.data.dataset import Dataset
from recsys_dist.data.ingest import ingest
from recsys_dist.data.split import split
from recsys_dist.models.genre_als import demographic_features
from recsys_dist.errors import DataError
from tests.conftest import write_zip


def test_users_ml100k_demographics_match_the_raw_file(ml100k_dataset, ml100k_zip):
    import zipfile

    raw = zipfile.ZipFile(ml100k_zip).read("ml-100k/u.user").decode("latin-1").splitlines()
    ds = Dataset.open(str(ml100k_dataset))
    users = ds.read_users().set_index("user_id")
    assert len(users) == 943 and ds.manifest["counts"]["users_without_demographics"] == 0
    for line in raw[::97]:
        uid, age, gender, occupation, zipcode = line.split("|")
        row = users.loc[int(uid)]
        assert (int(row.age), row.gender, row.occupation, row.zip) == (int(age), gender, occupation, zipcode)
    assert users.loc[1, "age_group"] == "18-24" and users.loc[2, "age_group"] == "50-55"  # ages 24 and 53
    f, names = demographic_features(ds.read_users(), ds.n_users)
    assert len(names) == 2 + 7 + 21  # gender, ml-1m's age groups, ml-100k's 21 occupations
    np.testing.assert_allclose(f.sum(axis=1), 1.0)
    assert f[0, names.index("occupation=technician")] == pytest.approx(1 / 3)


def _ml1m(tmp_path, users: str):
    src = tmp_path / "ml-1m"
    src.mkdir(exist_ok=True)
    (src / "ratings.dat").write_text("1::10::4::100\n2::10::5::101\n3::20::1::102\n")
    (src / "movies.dat").write_text("10::A (1999)::Drama\n20::B (2000)::Comedy|Drama\n")
    (src / "users.dat").write_text(users)
    return src


def test_users_ml1m_codes_become_the_same_columns_and_unlisted_users_have_none(tmp_path):
    src = _ml1m(tmp_path, "1::F::1::10::48067\n2::M::56::16::70072\n")
    m = ingest(IngestConfig(source=str(src), out=str(tmp_path / "ds")))
    users = Dataset.open(str(tmp_path / "ds")).read_users().set_index("user_id")
    assert users.loc[1, ["gender", "age_group", "occupation", "zip"]].tolist() == ["F", "Under 18", "K-12 student",
                                                                                   "48067"]
    assert users.loc[2, ["age_group", "occupation"]].tolist() == ["56+", "self-employed"]
    assert users.loc[3].drop("user_idx").isna().all() and m["counts"]["users_without_demographics"] == 1
    f, names = demographic_features(users.reset_index(), 3)
    assert not f[users.loc[3, "user_idx"]].any()


@pytest.mark.parametrize("body, pattern", [
    ("1::F::1::10::48067\n2::X::56::16::70072\n", r"users.dat line 2: gender must be M or F, found 'X'"),
    ("1::F::1::10::48067\n\n2::M::30::16::70072\n", r"users.dat line 3: age group 30 is not one of"),
    ("1::F::1::21::48067\n", r"users.dat line 1: occupation code 21 is not in 0-20"),
    ("1::F::1::10\n", r"users.dat line 1: expected 5 '::'-separated fields"),
    ("1::F::1::10::1\n1::M::1::10::2\n", r"users.dat line 2: user id 1 listed twice \(first on line 1\)"),
])
def test_users_bad_ml1m_rows_name_file_and_line(tmp_path, body, pattern):
    with pytest.raises(DataError, match=pattern):
        ingest(IngestConfig(source=str(_ml1m(tmp_path, body)), out=str(tmp_path / "ds")))
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("body, pattern", [
    ("1|24|M|technician|85711\n2|x|F|other|94043\n", r"u.user line 2: age 'x' is not an integer"),
    ("1|24|M|technician\n", r"u.user line 1: expected 5 '\|'-separated fields"),
])
def test_users_bad_u_user_rows_name_file_and_line(tmp_path, body, pattern):
    src = write_zip(tmp_path / "ml-100k.zip", {"ml-100k/u.data": b"1\t10\t4\t100\n2\t10\t3\t101\n",
                                               "ml-100k/u.user": body.encode()})
    with pytest.raises(DataError, match=r"ml-100k.zip:ml-100k/" + pattern):
        ingest(IngestConfig(source=str(src), out=str(tmp_path / "ds")))


def test_users_later_releases_have_no_demographics_and_splits_keep_them(tmp_path, ml100k_dataset):
    src = tmp_path / "ml-latest"
    src.mkdir()
    (src / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4.0,100\n2,10,3.5,101\n")
    ingest(IngestConfig(source=str(src), out=str(tmp_path / "ds")))
    ds = Dataset.open(str(tmp_path / "ds"))
    assert list(ds.read_users().columns) == ["user_idx", "user_id"]
    assert demographic_features(ds.read_users(), ds.n_users)[0].shape == (2, 0)
    split(SplitConfig(data=str(ml100k_dataset), out=str(tmp_path / "s"), method="cold-users", fraction=0.1, seed=1))
    for part in ("train", "cold"):
        assert Dataset.open(str(tmp_path / "s" / part)).read_users().equals(Dataset.open(str(ml100k_dataset)).read_users())
