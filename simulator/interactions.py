"""Reading interaction logs into one validated table.

An :class:`Interactions` table has one row per (user, item) event with the columns
``user`` and ``item`` (the IDs of the source file, int64), ``value`` (a rating or 1.0
for implicit feedback, float64) and ``time`` (int64, seconds or any increasing unit).

Readers accept the embedded MovieLens data, MovieLens files at a path the user
gives (``u.data``, ``ratings.dat``, ``ratings.csv``) and any CSV with a header whose
columns can be mapped onto those four. A bad file gives a :class:`DataError` that
names the file, the line and the problem; nothing is silently dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shopgym.data import data_path
from shopgym.simulator.errors import DataError

COLUMNS = ("user", "item", "value", "time")

# Header names seen in public rating files, mapped onto our columns.
_HEADER_ALIASES = {
    "user": ("user", "userid", "user_id"),
    "item": ("item", "itemid", "item_id", "movieid", "movie_id"),
    "value": ("value", "rating", "score"),
    "time": ("time", "timestamp", "ts"),
}


@dataclass(frozen=True)
class Interactions:
    """A validated interaction table and where it came from.

    Attributes:
        frame: columns ``user, item, value, time`` (int64, int64, float64, int64).
        source: a short description of the origin (file path or embedded data name).
        sha256: hash of the source file's bytes, recorded in every World card.
    """

    frame: pd.DataFrame
    source: str
    sha256: str

    @property
    def num_users(self) -> int:
        return int(self.frame["user"].nunique())

    @property
    def num_items(self) -> int:
        return int(self.frame["item"].nunique())

    def __len__(self) -> int:
        return len(self.frame)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def embedded_ratings_path() -> Path:
    return data_path("movielens-small", "ratings.csv.gz")


def embedded_movies_path() -> Path:
    return data_path("movielens-small", "movies.csv.gz")


def load_ratings(path: str | Path | None = None) -> Interactions:
    """Read MovieLens-style ratings; ``None`` reads the embedded MovieLens-small.

    The format follows the file name: ``u.data`` (tab-separated ``user item rating
    timestamp``, no header), ``*.dat`` (``user::item::rating::timestamp``, no
    header), anything else a CSV with a header naming the columns (``userId,
    movieId, rating, timestamp`` or ``user, item, value, time``). ``.gz`` works too.

    Raises:
        DataError: the file is missing, unreadable, or has a malformed line or value.
    """
    path = embedded_ratings_path() if path is None else Path(path)
    stem = path.name.removesuffix(".gz")
    if stem == "u.data":
        return read_delimited(path, sep="\t")
    if stem.endswith(".dat"):
        return read_delimited(path, sep="::")
    return read_csv(path)


def read_delimited(path: str | Path, sep: str) -> Interactions:
    """Read a header-less file of ``user<sep>item<sep>rating<sep>timestamp`` lines."""
    path = _existing_file(path)
    raw = _read_table(path, sep=sep, header=None, first_data_line=1)
    if raw.shape[1] != 4:
        raise DataError(
            f"{path}: expected 4 fields per line (user, item, rating, timestamp) "
            f"separated by {sep!r}, found {raw.shape[1]}"
        )
    raw.columns = list(COLUMNS)
    return _validated(raw, path, first_data_line=1)


def read_csv(path: str | Path, columns: Mapping[str, str] | None = None) -> Interactions:
    """Read a CSV with a header.

    Args:
        path: the file (``.csv`` or ``.csv.gz``).
        columns: optional mapping from our column names (``user, item, value, time``)
            to the file's header names. Without it, common names are recognised
            (``userId``, ``movieId``, ``rating``, ``timestamp``, ...). ``value`` may be
            absent (implicit feedback: every row counts 1.0) and so may ``time``
            (the row order is then used).
    """
    path = _existing_file(path)
    raw = _read_table(path, sep=",", header=0, first_data_line=2)
    mapping = dict(columns) if columns else _guess_columns(raw.columns, path)
    for ours, theirs in mapping.items():
        if ours not in COLUMNS:
            raise DataError(f"{path}: unknown target column {ours!r}; use one of {COLUMNS}")
        if theirs not in raw.columns:
            raise DataError(
                f"{path}: column {theirs!r} (for {ours}) not in header {list(raw.columns)}"
            )
    for required in ("user", "item"):
        if required not in mapping:
            raise DataError(
                f"{path}: no {required} column found in header {list(raw.columns)}; "
                f"name it with columns={{'{required}': '<header name>'}}"
            )
    table = pd.DataFrame({ours: raw[theirs] for ours, theirs in mapping.items()})
    if "value" not in table:
        table["value"] = "1"
    if "time" not in table:
        table["time"] = np.arange(len(table)).astype(str)
    return _validated(table[list(COLUMNS)], path, first_data_line=2)


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def _read_table(path: Path, sep: str, header: int | None, first_data_line: int) -> pd.DataFrame:
    """Read every cell as a string, so that validation can name the bad cell."""
    try:
        return pd.read_csv(
            path,
            sep=sep,
            header=header,
            dtype=str,
            keep_default_na=False,
            engine="python" if len(sep) > 1 else "c",
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed file: {exc}") from exc
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the file ({exc})") from exc


def _guess_columns(header: pd.Index, path: Path) -> dict[str, str]:
    lowered = {str(name).strip().lower(): str(name) for name in header}
    mapping = {}
    for ours, aliases in _HEADER_ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                mapping[ours] = lowered[alias]
                break
    return mapping


def _validated(table: pd.DataFrame, path: Path, first_data_line: int) -> Interactions:
    """Convert string cells to numbers, naming the first bad cell's line and column."""
    if table.empty:
        raise DataError(f"{path}: no data rows")
    converted = {}
    for column in COLUMNS:
        cells = table[column].astype(str).str.strip()
        numbers = pd.to_numeric(cells, errors="coerce")
        bad = numbers.isna().to_numpy() | ~np.isfinite(numbers.to_numpy(dtype=float))
        if column in ("user", "item", "time"):
            integral = np.isclose(numbers.fillna(0).to_numpy(dtype=float) % 1, 0)
            bad |= ~integral
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            cell = cells.iloc[row]
            kind = "an integer" if column != "value" else "a finite number"
            raise DataError(
                f"{path}, line {row + first_data_line}: {column} must be {kind}, "
                f"got {cell!r} ({int(bad.sum())} bad value(s) in this column)"
            )
        converted[column] = numbers.astype("float64" if column == "value" else "int64")
    frame = pd.DataFrame(converted).reset_index(drop=True)
    return Interactions(frame=frame, source=str(path), sha256=file_sha256(path))


def load_movies(path: str | Path | None = None) -> pd.DataFrame:
    """Read MovieLens ``movies.csv`` (``movieId, title, genres``; ``None``: the embedded one).

    Returns:
        A frame with ``item`` (int64), ``title`` (str) and ``genres`` (list of str,
        empty for ``(no genres listed)``).
    """
    path = _existing_file(embedded_movies_path() if path is None else path)
    raw = _read_table(path, sep=",", header=0, first_data_line=2)
    for column in ("movieId", "genres"):
        if column not in raw.columns:
            raise DataError(f"{path}: column {column!r} not in header {list(raw.columns)}")
    ids = pd.to_numeric(raw["movieId"], errors="coerce")
    if ids.isna().any():
        row = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise DataError(f"{path}, line {row + 2}: movieId must be an integer")
    genres = [
        [] if text in ("", "(no genres listed)") else text.split("|") for text in raw["genres"]
    ]
    title = raw["title"] if "title" in raw.columns else pd.Series([""] * len(raw))
    return pd.DataFrame({"item": ids.astype("int64"), "title": title, "genres": genres})
