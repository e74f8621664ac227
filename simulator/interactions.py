"""Reading interaction logs into one validated table.

An :class:`Interactions` table has one row per (user, item) event with the columns
``user`` and ``item`` (the IDs of the source file, int64), ``value`` (a rating or 1.0
for implicit feedback, float64) and ``time`` (int64, seconds or any increasing unit).

Readers accept the embedded MovieLens data, MovieLens files at a path the user
gives (``u.data``, ``ratings.dat``, ``ratings.csv``) and any CSV, TSV or Parquet table
with a header whose columns can be mapped onto those four. A bad file gives a
:class:`DataError` that names the file, the line (for Parquet: the 1-based row) and the
problem. Nothing is dropped except blank lines (and lines whose every field is empty,
which the CSV reader cannot tell from blank ones).
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

# File name endings read as Parquet (the rest are delimited text).
PARQUET_SUFFIXES = (".parquet", ".pq")

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
    header), anything else a table with a header naming the columns (``userId,
    movieId, rating, timestamp`` or ``user, item, value, time``) read by
    :func:`read_table`: CSV, ``.tsv`` or ``.parquet``. ``.gz`` works for text files.

    Raises:
        DataError: the file is missing, unreadable, or has a malformed line or value.
    """
    path = embedded_ratings_path() if path is None else Path(path)
    stem = path.name.removesuffix(".gz")
    if stem == "u.data":
        return read_delimited(path, sep="\t")
    if stem.endswith(".dat"):
        return read_delimited(path, sep="::")
    return read_table(path)


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
    return _validated(raw, path)


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
    return _mapped(raw, path, columns, unit="line")


def read_table(path: str | Path, columns: Mapping[str, str] | None = None) -> Interactions:
    """Read a table with named columns: CSV, TSV or Parquet, chosen by the file name.

    ``.parquet`` and ``.pq`` are read as Parquet (this needs pyarrow: ``pip install
    "shopgym[parquet]"``), ``.tsv`` and ``.tsv.gz`` as tab-separated text with a header,
    anything else as a CSV with a header (see :func:`read_csv`). The columns are mapped
    or guessed as in :func:`read_csv`. Error messages name the 1-based line of a text
    file, or the 1-based row of a Parquet file.

    Parquet columns keep their types; a timestamp column used as ``time`` becomes whole
    seconds since 1970-01-01 UTC, like the MovieLens timestamps.

    Raises:
        DataError: the file is missing, unreadable, or has a malformed value; or
            pyarrow is missing for a Parquet file.
    """
    path = _existing_file(path)
    raw, unit = _read_named_columns(path)
    return _mapped(raw, path, columns, unit)


def _read_named_columns(path: Path) -> tuple[pd.DataFrame, str]:
    """A table with a header, read as Parquet or as CSV/TSV by its file name, and the
    word (``row`` or ``line``) its index stands for in error messages."""
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return _read_parquet(path), "row"
    sep = "\t" if name.removesuffix(".gz").endswith(".tsv") else ","
    return _read_table(path, sep=sep, header=0, first_data_line=2), "line"


def _mapped(raw: pd.DataFrame, path: Path, columns: Mapping[str, str] | None, unit: str) -> Interactions:
    """Pick our four columns out of a table with a header, then validate them.

    ``raw`` is indexed by the line (or row) number that ``unit`` names in messages.
    """
    mapping = dict(columns) if columns else _guess_columns(raw.columns, _HEADER_ALIASES)
    for ours, theirs in mapping.items():
        if ours not in COLUMNS:
            raise DataError(f"{path}: unknown target column {ours!r}; use one of {COLUMNS}")
        if theirs not in raw.columns:
            raise DataError(f"{path}: column {theirs!r} (for {ours}) not in header {list(raw.columns)}")
    for required in ("user", "item"):
        if required not in mapping:
            raise DataError(
                f"{path}: no {required} column found in header {list(raw.columns)}; "
                f"name it with columns={{'{required}': '<header name>'}}"
            )
    table = pd.DataFrame({ours: raw[theirs] for ours, theirs in mapping.items()})
    if "value" not in table:
        table["value"] = 1.0
    if "time" not in table:
        table["time"] = np.arange(len(table))
    return _validated(table[list(COLUMNS)], path, unit)


_ITEM_ALIASES = {
    "item": _HEADER_ALIASES["item"],
    "categories": ("categories", "category", "genres", "genre"),
    "price": ("price",),
}


def load_item_attributes(path: str | Path, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Item categories and prices from a CSV, TSV or Parquet table with a header.

    ``columns`` maps ``item`` (required: the item ids of the interactions),
    ``categories`` (names joined by ``|``, as in MovieLens ``movies.csv``) and
    ``price`` (positive) to header names; ``None`` finds them by name (``movieId``,
    ``genres``, ``category``, ... are recognised). A MovieLens ``movies.csv`` loads
    as it is.

    Returns:
        ``item`` (int64, unique), ``genres`` (list of str: the categories) and, if the
        table has a price column, ``price`` (float64).
    """
    path = _existing_file(path)
    raw, unit = _read_named_columns(path)
    mapping = dict(columns) if columns else _guess_columns(raw.columns, _ITEM_ALIASES)
    for ours, theirs in mapping.items():
        if ours not in _ITEM_ALIASES:
            raise DataError(f"{path}: unknown item column {ours!r}; use one of {tuple(_ITEM_ALIASES)}")
        if theirs not in raw.columns:
            raise DataError(f"{path}: column {theirs!r} (for {ours}) not in header {list(raw.columns)}")
    if "item" not in mapping:
        raise DataError(f"{path}: no item column found in header {list(raw.columns)}")
    items = _numbers(raw[mapping["item"]], path, mapping["item"], integer=True, unit=unit)
    repeated = items.duplicated()
    if repeated.any():
        raise DataError(
            f"{path}, {unit} {items.index[repeated.argmax()]}: item {items[repeated].iloc[0]} repeats"
        )
    table = pd.DataFrame({"item": items.to_numpy()})
    cells = raw[mapping["categories"]] if "categories" in mapping else pd.Series("", index=raw.index)
    table["genres"] = [
        [] if pd.isna(cell) or str(cell).strip() in ("", "(no genres listed)") else str(cell).split("|")
        for cell in cells
    ]
    if "price" in mapping:
        prices = _numbers(raw[mapping["price"]], path, mapping["price"], integer=False, unit=unit)
        if (prices <= 0).any():
            row = prices.index[(prices <= 0).argmax()]
            raise DataError(f"{path}, {unit} {row}: price must be > 0, got {prices[row]}")
        table["price"] = prices.to_numpy()
    return table


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def _read_table(path: Path, sep: str, header: int | None, first_data_line: int) -> pd.DataFrame:
    """Read every cell as a string, so that validation can name the bad cell.

    The returned frame's index is each row's 1-based line number in the file; blank
    lines are skipped but still counted.
    """
    try:
        table = pd.read_csv(
            path,
            sep=sep,
            header=header,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            engine="python" if len(sep) > 1 else "c",
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed file: {exc}") from exc
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the file ({exc})") from exc
    table.index = table.index + first_data_line
    # Blank lines go; pandas reads them exactly like a line of empty fields (",,,"),
    # so such a line is skipped as blank too.
    table = table[~(table.isna() | (table == "")).all(axis=1)]
    if table.empty:
        raise DataError(f"{path}: no data rows (the file is empty or blank)")
    return table


def _read_parquet(path: Path) -> pd.DataFrame:
    """Read a Parquet file with its column types, indexed by 1-based row number.

    A stored pandas index comes back as an ordinary column (``ignore_metadata``), so
    that an index named ``user`` can still be mapped; timestamps become seconds.
    """
    try:
        # Imported here, not at the top: pyarrow is an optional dependency.
        import pyarrow
        import pyarrow.parquet as parquet
    except ImportError as exc:
        raise DataError(f'{path}: reading Parquet needs pyarrow: pip install "shopgym[parquet]"') from exc
    try:
        table = parquet.read_table(path).to_pandas(ignore_metadata=True)
    except (OSError, ValueError, pyarrow.ArrowException) as exc:
        raise DataError(f"{path}: cannot read the Parquet file ({exc})") from exc
    if table.empty:
        raise DataError(f"{path}: no data rows")
    table.index = pd.RangeIndex(1, len(table) + 1)
    for name, column in table.items():
        if pd.api.types.is_datetime64_any_dtype(column):
            # Divide rather than cast: a cast would turn a missing time (NaT) into a
            # huge negative integer instead of a cell that validation reports.
            epoch = pd.Timestamp(0, tz=column.dt.tz)
            table[name] = np.floor((column - epoch) / pd.Timedelta(seconds=1))
    return table


def _numbers(cells: pd.Series, path: Path, column: str, integer: bool, unit: str = "line") -> pd.Series:
    """Parse cells as finite numbers (exact integers if ``integer``), or raise
    :class:`DataError` naming the first bad cell's line (the series index) and column.

    Cells are strings read from a text file, or already numbers (from Parquet, or
    defaults filled in by a reader). ``unit`` is the word for the index in messages:
    ``"line"`` for text files, ``"row"`` for Parquet.
    """
    if pd.api.types.is_numeric_dtype(cells) and not pd.api.types.is_bool_dtype(cells):
        numbers = cells.astype("float64")
    else:
        cells = cells.astype(str).str.strip()
        numbers = pd.to_numeric(cells, errors="coerce").astype("float64")
    values = numbers.to_numpy()
    finite = np.isfinite(values)  # NaN covers unparsable and empty cells
    bad = ~finite
    if integer:
        # Parsed as float64, which is exact for integers up to 2**53 only.
        bad[finite] = (values[finite] != np.floor(values[finite])) | (np.abs(values[finite]) > 2**53)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        kind = "an integer" if integer else "a finite number"
        raise DataError(
            f"{path}, {unit} {cells.index[row]}: {column} must be {kind}, got {str(cells.iloc[row])!r} "
            f"({int(bad.sum())} bad value(s) in this column)"
        )
    return numbers.astype("int64") if integer else numbers


def _guess_columns(header: pd.Index, aliases_of: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """Our column name -> the header's, by the first alias (case-insensitive) present."""
    lowered = {str(name).strip().lower(): str(name) for name in header}
    mapping = {}
    for ours, aliases in aliases_of.items():
        for alias in aliases:
            if alias in lowered:
                mapping[ours] = lowered[alias]
                break
    return mapping


def _validated(table: pd.DataFrame, path: Path, unit: str = "line") -> Interactions:
    """Convert cells to numbers, naming the first bad cell's line (or row) and column."""
    if table.empty:
        raise DataError(f"{path}: no data rows")
    frame = pd.DataFrame(
        {
            column: _numbers(table[column], path, column, integer=column != "value", unit=unit)
            for column in COLUMNS
        }
    ).reset_index(drop=True)
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
    ids = _numbers(raw["movieId"], path, "movieId", integer=True)
    genres = [[] if text in ("", "(no genres listed)") else text.split("|") for text in raw["genres"]]
    title = raw["title"] if "title" in raw.columns else pd.Series("", index=raw.index)
    return pd.DataFrame({"item": ids, "title": title, "genres": genres}).reset_index(drop=True)
