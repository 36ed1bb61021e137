"""User demographics (gender, age, occupation, zip code) from MovieLens user files (genre_als one-hot
encodes them: models/genre_als.py's ``demographic_features``).

ml-100k's ``u.user`` is ``user id | age | gender | occupation | zip code`` with the age in years and
the occupation by name; ml-1m's ``users.dat`` is ``UserID::Gender::Age::Occupation::Zip-code`` with the
age as the lower bound of its group (1, 18, 25, 35, 45, 50, 56) and the occupation as a code 0-20. Both
become the same columns of users.parquet: ``gender`` (M/F), ``age`` (years, or the group's lower
bound), ``age_group`` (ml-1m's groups, which ml-100k ages are put in too, so features mean the same
for both), ``occupation`` (a name) and ``zip``. Later releases have no user file: no columns.
"""

from __future__ import annotations

import pandas as pd

from recsys_dist.data.sources import Source
from recsys_dist.errors import DataError

USER_COLUMNS = ["user_id", "gender", "age", "age_group", "occupation", "zip"]

# ml-1m's age groups by their lower bound, and ml-100k ages bucketed the same way
AGE_GROUPS = {1: "Under 18", 18: "18-24", 25: "25-34", 35: "35-44", 45: "45-49", 50: "50-55", 56: "56+"}
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer", "programmer",
    "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
)


def age_group(age: int) -> str:
    """The ml-1m age group of an age in years."""
    return AGE_GROUPS[max(lo for lo in AGE_GROUPS if lo <= max(age, 1))]


def read_users(source: Source, fmt_name: str, users_file: str | None) -> pd.DataFrame | None:
    """Parse the user file of a MovieLens source; None when the source has none."""
    if users_file is None:
        return None
    label = source.describe(users_file)
    with source.open(users_file) as fh:
        lines = fh.read().decode("latin-1").split("\n")
    parse = _parse_u_user if fmt_name == "ml-100k" else _parse_users_dat
    rows, seen = [], {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        row = parse(line.rstrip("\r"), label, n)
        if row[0] in seen:
            raise DataError(f"{label} line {n}: user id {row[0]} listed twice (first on line {seen[row[0]]})")
        seen[row[0]] = n
        rows.append(row)
    frame = pd.DataFrame(rows, columns=USER_COLUMNS)
    frame["age"] = frame["age"].astype("Int16")
    return frame


def _int(value: str, what: str, label: str, n: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{label} line {n}: {what} {value!r} is not an integer") from None


def _gender(value: str, label: str, n: int) -> str:
    if value not in ("M", "F"):
        raise DataError(f"{label} line {n}: gender must be M or F, found {value!r}")
    return value


def _parse_u_user(line: str, label: str, n: int) -> tuple:
    fields = line.split("|")
    if len(fields) != 5:
        raise DataError(f"{label} line {n}: expected 5 '|'-separated fields (id|age|gender|occupation|zip), "
                        f"found {len(fields)}")
    age = _int(fields[1], "age", label, n)
    if not 0 < age < 130:
        raise DataError(f"{label} line {n}: age {age} is not an age in years")
    occupation = fields[3].strip()
    if not occupation:
        raise DataError(f"{label} line {n}: empty occupation")
    return (_int(fields[0], "user id", label, n), _gender(fields[2], label, n), age, age_group(age), occupation,
            fields[4].strip())


def _parse_users_dat(line: str, label: str, n: int) -> tuple:
    fields = line.split("::")
    if len(fields) != 5:
        raise DataError(f"{label} line {n}: expected 5 '::'-separated fields "
                        f"(UserID::Gender::Age::Occupation::Zip-code), found {len(fields)}")
    age = _int(fields[2], "age group", label, n)
    if age not in AGE_GROUPS:
        raise DataError(f"{label} line {n}: age group {age} is not one of {sorted(AGE_GROUPS)}")
    code = _int(fields[3], "occupation code", label, n)
    if not 0 <= code < len(ML1M_OCCUPATIONS):
        raise DataError(f"{label} line {n}: occupation code {code} is not in 0-{len(ML1M_OCCUPATIONS) - 1}")
    return (_int(fields[0], "user id", label, n), _gender(fields[1], label, n), age, AGE_GROUPS[age],
            ML1M_OCCUPATIONS[code], fields[4].strip())
