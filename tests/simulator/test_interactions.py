"""Reading interaction logs: the embedded MovieLens data, every supported file format,
and a DataError naming the file, the line and the column for every kind of bad input."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopgym.simulator.errors import DataError
from shopgym.simulator.interactions import (
    embedded_ratings_path,
    file_sha256,
    load_item_attributes,
    load_movies,
    load_ratings,
    read_csv,
    read_delimited,
    read_table,
)

EXPECTED_DTYPES = {"user": "int64", "item": "int64", "value": "float64", "time": "int64"}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def assert_table(interactions, rows: list[tuple]) -> None:
    frame = interactions.frame
    assert list(frame.columns) == ["user", "item", "value", "time"]
    assert {c: str(t) for c, t in frame.dtypes.items()} == EXPECTED_DTYPES
    assert [tuple(r) for r in frame.itertuples(index=False)] == rows


# ----------------------------------------------------------------------------- embedded data
def test_embedded_movielens_shape_and_types():
    ratings = load_ratings()
    assert len(ratings) == 100_004
    assert ratings.num_users == 671
    assert ratings.num_items == 9_066
    frame = ratings.frame
    assert {c: str(t) for c, t in frame.dtypes.items()} == EXPECTED_DTYPES
    # MovieLens ratings are half stars from 0.5 to 5.
    assert frame["value"].between(0.5, 5.0).all()
    assert np.allclose(frame["value"] * 2, np.round(frame["value"] * 2))
    assert ratings.sha256 == file_sha256(embedded_ratings_path())
    assert ratings.source == str(embedded_ratings_path())
    # ml-latest-small keeps only users with at least 20 ratings.
    assert frame.groupby("user").size().min() >= 20


def test_embedded_movies_cover_the_rated_items():
    movies = load_movies()
    assert str(movies["item"].dtype) == "int64"
    assert movies["item"].is_unique
    # The embedded movies file lists exactly the 9,066 rated movies (data/movielens-small).
    assert set(movies["item"]) == set(load_ratings().frame["item"])
    toy_story = movies.set_index("item").loc[1]
    assert toy_story["title"].startswith("Toy Story")
    assert "Animation" in toy_story["genres"]
    assert all(isinstance(g, list) for g in movies["genres"])
    assert "(no genres listed)" not in {g for gs in movies["genres"] for g in gs}


# ----------------------------------------------------------------------------- file formats
def test_u_data_tab_separated_without_header(tmp_path):
    path = write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\t3.5\t891717742\n")
    ratings = load_ratings(path)
    assert_table(ratings, [(196, 242, 3.0, 881250949), (186, 302, 3.5, 891717742)])
    assert ratings.source == str(path)
    assert ratings.sha256 == file_sha256(path)


def test_ratings_dat_double_colon(tmp_path):
    path = write(tmp_path, "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    assert_table(load_ratings(path), [(1, 1193, 5.0, 978300760), (1, 661, 3.0, 978302109)])


def test_ratings_csv_with_movielens_header(tmp_path):
    path = write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n2,10,4,5\n")
    assert_table(load_ratings(path), [(1, 31, 2.5, 1260759144), (2, 10, 4.0, 5)])


def test_ratings_csv_gz(tmp_path):
    path = tmp_path / "ratings.csv.gz"
    path.write_bytes(gzip.compress(b"userId,movieId,rating,timestamp\n7,8,0.5,9\n7,9,5,10\n"))
    ratings = load_ratings(path)
    assert_table(ratings, [(7, 8, 0.5, 9), (7, 9, 5.0, 10)])
    assert ratings.sha256 == file_sha256(path)  # the hash of the file as stored


def test_u_data_gz_keeps_the_tab_format(tmp_path):
    path = tmp_path / "u.data.gz"
    path.write_bytes(gzip.compress(b"1\t2\t3\t4\n"))
    assert_table(load_ratings(path), [(1, 2, 3.0, 4)])


def test_generic_csv_with_column_mapping(tmp_path):
    path = write(tmp_path, "log.csv", "when,stars,shopper,product\n100,4.5,3,30\n50,1,4,40\n")
    ratings = read_csv(path, columns={"user": "shopper", "item": "product", "value": "stars", "time": "when"})
    assert_table(ratings, [(3, 30, 4.5, 100), (4, 40, 1.0, 50)])


def test_generic_csv_without_value_and_time_is_implicit_in_row_order(tmp_path):
    path = write(tmp_path, "clicks.csv", "shopper,product,extra\n5,50,x\n6,60,y\n5,70,z\n")
    ratings = read_csv(path, columns={"user": "shopper", "item": "product"})
    assert_table(ratings, [(5, 50, 1.0, 0), (6, 60, 1.0, 1), (5, 70, 1.0, 2)])


def test_recognised_header_aliases_without_mapping(tmp_path):
    path = write(tmp_path, "events.csv", "item_id,user_id,score\n11,1,0.25\n12,2,0.75\n")
    assert_table(read_csv(path), [(1, 11, 0.25, 0), (2, 12, 0.75, 1)])


def test_read_delimited_directly_with_other_separator(tmp_path):
    path = write(tmp_path, "whatever.txt", "1;2;3;4\n5;6;7;8\n")
    assert_table(read_delimited(path, sep=";"), [(1, 2, 3.0, 4), (5, 6, 7.0, 8)])


# ----------------------------------------------------------------------------- bad inputs
RATINGS_HEADER = "userId,movieId,rating,timestamp\n"

BAD_FILES = [
    # (file name, content, substrings the message must contain)
    ("u.data", "1\t2\t3\t4\n1\t2\t3\t4\n1\t2\t3\n", ["line 3", "time"]),
    ("u.data", "1\t2\t3\t4\n1\t2\t3\t4\t5\n", ["line 2"]),
    ("u.data", "1\t2\t3\n1\t2\t3\n", ["expected 4 fields", "found 3"]),
    ("u.data", "1\t2\t3\t4\n1\t2\t3\t4\nabc\t2\t3\t4\n", ["line 3", "user", "'abc'"]),
    ("u.data", "1\t2\t3\t4\n1\t2\tNaN\t4\n", ["line 2", "value"]),
    ("u.data", "1\t2\t3\t4\n1\t2\t\t4\n", ["line 2", "value"]),
    ("u.data", "1\t2\t3\t4\n1\t2\t3\t4\n1\t2\tinf\t4\n", ["line 3", "value", "'inf'"]),
    ("u.data", "1\t2\t3\t4\n1\t2.5\t3\t4\n", ["line 2", "item", "'2.5'"]),
    ("ratings.dat", "1::2::3::4\n1::2::3::4\n1::x::3::4\n", ["line 3", "item"]),
    ("ratings.dat", "1::2::3::4\n1::2::3::4::5\n", ["line 2"]),
    ("ratings.dat", "1::2::3::4\n1::2::-inf::4\n", ["line 2", "value"]),
    ("ratings.csv", RATINGS_HEADER + "1,2,3,4\n1,2,3,4\nu9,2,3,4\n", ["line 4", "user", "'u9'"]),
    ("ratings.csv", RATINGS_HEADER + "1,2,3,4\n1,2,,4\n", ["line 3", "value"]),
    ("ratings.csv", RATINGS_HEADER + "1,2,3,4\n1,2,3,4.5\n", ["line 3", "time"]),
    ("ratings.csv", RATINGS_HEADER + "1,2,3,4\n1,2,3,4,5\n", ["line 3"]),
    ("ratings.csv", RATINGS_HEADER + "1,3.25,3,4\n", ["line 2", "item"]),
    ("ratings.csv", RATINGS_HEADER + "1,2,inf,4\n", ["line 2", "value"]),
    ("ratings.csv", "customer,movieId,rating,timestamp\n1,2,3,4\n", ["no user column"]),
    ("ratings.csv", "userId,product,rating,timestamp\n1,2,3,4\n", ["no item column"]),
    ("ratings.csv", RATINGS_HEADER, ["no data rows"]),
    ("ratings.csv", "", ["empty"]),
    ("u.data", "", ["empty"]),
    ("ratings.dat", "", ["empty"]),
]


@pytest.mark.parametrize(("name", "content", "expected"), BAD_FILES)
def test_bad_file_names_file_line_and_column(tmp_path, name, content, expected):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError) as info:
        load_ratings(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message


@pytest.mark.parametrize("bad_cell", ["x", "", "nan", "1.5", "4e"])
def test_line_number_is_the_one_based_line_of_the_bad_row(tmp_path, bad_cell):
    """The bad cell sits at a random data row; the message must point at its real line."""
    rng = np.random.default_rng(len(bad_cell))
    for bad_row in rng.choice(40, size=3, replace=False):
        lines = [f"{u},{u + 1},3,{u}" for u in range(40)]
        lines[bad_row] = f"{bad_row},{bad_row + 1},3,{bad_cell}"
        path = write(tmp_path, "ratings.csv", RATINGS_HEADER + "\n".join(lines) + "\n")
        with pytest.raises(DataError, match=rf", line {bad_row + 2}: time must be an integer"):
            load_ratings(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "u.data"
    with pytest.raises(DataError, match="file not found") as info:
        load_ratings(path)
    assert str(path) in str(info.value)


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_csv(tmp_path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "ratings.csv.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="cannot read") as info:
        load_ratings(path)
    assert str(path) in str(info.value)


def test_mapping_to_an_unknown_target_column(tmp_path):
    path = write(tmp_path, "log.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="unknown target column 'usr'") as info:
        read_csv(path, columns={"usr": "a", "item": "b"})
    assert str(path) in str(info.value)


def test_mapping_to_a_header_name_that_is_absent(tmp_path):
    path = write(tmp_path, "log.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match=r"column 'shopper' \(for user\) not in header \['a', 'b'\]"):
        read_csv(path, columns={"user": "shopper", "item": "b"})


def test_mapping_without_item(tmp_path):
    path = write(tmp_path, "log.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match="no item column"):
        read_csv(path, columns={"user": "a"})


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("u.data", "1\t2\t3\t4\n\n1\tx\t3\t4\n", 3),
        ("ratings.csv", RATINGS_HEADER + "1,2,3,4\n\n1,2,x,4\n", 4),
    ],
)
def test_line_number_counts_blank_lines(tmp_path, name, content, line):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError, match=rf", line {line}:"):
        load_ratings(path)


@pytest.mark.parametrize(("row", "column"), [("inf\t2\t3\t4", "user"), ("1\t2\t3\t-inf", "time")])
def test_infinite_id_gives_data_error_without_warning(tmp_path, row, column):
    path = write(tmp_path, "u.data", f"1\t2\t3\t4\n{row}\n")
    with pytest.raises(DataError, match=f"line 2: {column}"):
        load_ratings(path)


def test_almost_integral_item_id_is_rejected(tmp_path):
    path = write(tmp_path, "u.data", "1\t2.000000001\t3\t4\n")
    with pytest.raises(DataError, match="line 1: item"):
        load_ratings(path)


# ----------------------------------------------------------------------------- movies
MOVIES_HEADER = "movieId,title,genres\n"


def test_load_movies_from_path(tmp_path):
    path = write(
        tmp_path,
        "movies.csv",
        MOVIES_HEADER + '1,"Heat, The (1995)",Action|Crime\n2,Nothing,(no genres listed)\n',
    )
    movies = load_movies(path)
    assert movies["item"].tolist() == [1, 2]
    assert movies["title"].tolist() == ["Heat, The (1995)", "Nothing"]
    assert movies["genres"].tolist() == [["Action", "Crime"], []]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (MOVIES_HEADER + "1,A,Drama\n2,B,Drama\nx,C,Drama\n", "line 4"),
        ("movieId,title\n1,A\n", "'genres'"),
        ("", "empty"),
    ],
)
def test_load_movies_bad_inputs(tmp_path, content, expected):
    path = write(tmp_path, "movies.csv", content)
    with pytest.raises(DataError, match=expected) as info:
        load_movies(path)
    assert str(path) in str(info.value)


def test_load_movies_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_movies(tmp_path / "movies.csv")


# ------------------------------------------------------------------ item attributes
def test_item_attributes_read_a_movielens_movies_file_as_it_is(tmp_path):
    path = write(tmp_path, "movies.csv", MOVIES_HEADER + "1,A,Action|Crime\n2,B,(no genres listed)\n")
    items = load_item_attributes(path)
    assert items["item"].tolist() == [1, 2] and items["genres"].tolist() == [["Action", "Crime"], []]
    assert "price" not in items


def test_item_attributes_with_a_column_mapping_and_prices(tmp_path):
    path = write(tmp_path, "items.tsv", "sku\tcat\tunit_price\n7\tshoes\t19.5\n3\t\t2\n")
    items = load_item_attributes(path, {"item": "sku", "categories": "cat", "price": "unit_price"})
    assert items["item"].tolist() == [7, 3] and str(items["item"].dtype) == "int64"
    assert items["genres"].tolist() == [["shoes"], []]
    assert items["price"].tolist() == [19.5, 2.0]


def test_item_attributes_from_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "items.parquet"
    pd.DataFrame({"item_id": [1, 2], "category": ["a|b", "c"], "price": [1.0, 0.0]}).to_parquet(path)
    with pytest.raises(DataError, match="row 2: price must be > 0"):
        load_item_attributes(path)


@pytest.mark.parametrize(
    ("content", "columns", "expected"),
    [
        ("item,price\n1,3\n1,4\n", None, "line 3: item 1 repeats"),
        ("item,price\n1,3\n2,cheap\n", None, "line 3: price must be a finite number"),
        ("item,price\n1,3\n2,-1\n", None, "line 3: price must be > 0"),
        ("item,price\n1,3\nx,4\n", None, "line 3: item must be an integer"),
        ("sku,price\n1,3\n", None, "no item column"),
        ("item,price\n1,3\n", {"item": "item", "colour": "price"}, "unknown item column 'colour'"),
        ("item,price\n1,3\n", {"item": "item", "price": "cost"}, "column 'cost'"),
    ],
)
def test_item_attributes_bad_inputs(tmp_path, content, columns, expected):
    path = write(tmp_path, "items.csv", content)
    with pytest.raises(DataError, match=expected) as info:
        load_item_attributes(path, columns)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("bad_id", ["inf", "2.5"])
def test_load_movies_rejects_non_integer_ids(tmp_path, bad_id):
    path = write(tmp_path, "movies.csv", MOVIES_HEADER + f"1,A,Drama\n{bad_id},B,Drama\n")
    with pytest.raises(DataError, match="line 3"):
        load_movies(path)


def test_frame_is_a_fresh_zero_based_index(tmp_path):
    path = write(tmp_path, "u.data", "3\t1\t1\t1\n2\t1\t1\t1\n1\t1\t1\t1\n")
    frame = load_ratings(path).frame
    pd.testing.assert_index_equal(frame.index, pd.RangeIndex(3))


# ----------------------------------------------------------------------------- read_table: TSV
def test_read_table_on_a_csv_matches_read_csv(tmp_path):
    path = write(tmp_path, "ratings.csv", RATINGS_HEADER + "1,31,2.5,1260759144\n2,10,4,5\n")
    assert_table(read_table(path), [(1, 31, 2.5, 1260759144), (2, 10, 4.0, 5)])
    pd.testing.assert_frame_equal(read_table(path).frame, read_csv(path).frame)


@pytest.mark.parametrize("name", ["log.tsv", "log.tsv.gz"])
def test_tsv_with_header(tmp_path, name):
    text = "userId\tmovieId\trating\ttimestamp\n1\t31\t2.5\t7\n2\t10\t4\t8\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    assert_table(read_table(path), [(1, 31, 2.5, 7), (2, 10, 4.0, 8)])
    assert_table(load_ratings(path), [(1, 31, 2.5, 7), (2, 10, 4.0, 8)])


def test_tsv_with_column_mapping(tmp_path):
    path = write(tmp_path, "clicks.tsv", "who\twhat\n1\t2\n3\t4\n")
    assert_table(read_table(path, columns={"user": "who", "item": "what"}), [(1, 2, 1.0, 0), (3, 4, 1.0, 1)])


def test_tsv_bad_cell_names_file_line_and_column(tmp_path):
    path = write(tmp_path, "clicks.tsv", "who\twhat\n1\t2\n3\tfour\n")
    with pytest.raises(DataError, match=r", line 3: item must be an integer, got 'four'") as info:
        read_table(path, columns={"user": "who", "item": "what"})
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------- read_table: Parquet
def write_parquet(folder: Path, name: str, frame: pd.DataFrame, index: bool = False) -> Path:
    pytest.importorskip("pyarrow")
    path = folder / name
    frame.to_parquet(path, index=index)
    return path


@pytest.mark.parametrize("name", ["ratings.parquet", "ratings.pq"])
def test_parquet_round_trip(tmp_path, name):
    frame = pd.DataFrame(
        {"userId": [1, 2], "movieId": [31, 10], "rating": [2.5, 4.0], "timestamp": [1260759144, 5]}
    )
    path = write_parquet(tmp_path, name, frame)
    for ratings in (read_table(path), load_ratings(path)):
        assert_table(ratings, [(1, 31, 2.5, 1260759144), (2, 10, 4.0, 5)])
        assert ratings.source == str(path)
        assert ratings.sha256 == file_sha256(path)


def test_parquet_round_trip_of_a_loaded_table(tmp_path):
    """A table read from CSV, written to Parquet with pandas, reads back identical."""
    lines = [f"{u % 7},{u},{(u % 10) / 2 + 0.5},{1_000_000 + u}" for u in range(50)]
    original = read_csv(write(tmp_path, "ratings.csv", RATINGS_HEADER + "\n".join(lines) + "\n")).frame
    path = write_parquet(tmp_path, "ratings.parquet", original)
    pd.testing.assert_frame_equal(read_table(path).frame, original)


def test_parquet_with_mapping_strings_and_timestamps(tmp_path):
    """Mapped names; IDs stored as text; a timestamp column becomes whole seconds."""
    frame = pd.DataFrame(
        {
            "shopper": ["3", "4"],
            "product": [30, 40],
            "stars": [4.5, 1.0],
            "when": pd.to_datetime(["1970-01-01 00:01:40.9", "1970-01-01 00:00:50.0"], utc=True),
        }
    )
    path = write_parquet(tmp_path, "log.parquet", frame)
    ratings = read_table(
        path, columns={"user": "shopper", "item": "product", "value": "stars", "time": "when"}
    )
    assert_table(ratings, [(3, 30, 4.5, 100), (4, 40, 1.0, 50)])


def test_parquet_stored_index_is_a_column_and_aliases_are_guessed(tmp_path):
    frame = pd.DataFrame({"item_id": [11, 12], "score": [0.25, 0.75]}, index=pd.Index([1, 2], name="user_id"))
    path = write_parquet(tmp_path, "events.parquet", frame, index=True)
    assert_table(read_table(path), [(1, 11, 0.25, 0), (2, 12, 0.75, 1)])


@pytest.mark.parametrize(
    ("column", "values", "expected"),
    [
        ("rating", [1.0, 2.0, np.nan], "row 3: value must be a finite number, got 'nan'"),
        ("rating", [1.0, np.inf, 3.0], "row 2: value must be a finite number, got 'inf'"),
        ("movieId", [1.0, 2.5, 3.0], "row 2: item must be an integer, got '2.5'"),
        ("userId", ["1", "2", "abc"], "row 3: user must be an integer, got 'abc'"),
        ("userId", ["1", None, "3"], "row 2: user must be an integer, got 'nan'"),
        ("timestamp", [1, 2**60, 3], "row 2: time must be an integer"),
    ],
)
def test_parquet_bad_cell_names_file_row_and_column(tmp_path, column, values, expected):
    frame = pd.DataFrame(
        {"userId": [1, 2, 3], "movieId": [1, 2, 3], "rating": [1.0, 2.0, 3.0], "timestamp": [1, 2, 3]}
    )
    frame[column] = values
    path = write_parquet(tmp_path, "ratings.parquet", frame)
    with pytest.raises(DataError, match=expected) as info:
        read_table(path)
    assert str(path) in str(info.value)


def test_parquet_missing_timestamp_names_the_row(tmp_path):
    frame = pd.DataFrame({"user": [1, 2], "item": [1, 2], "time": pd.to_datetime(["2020-01-01", None])})
    path = write_parquet(tmp_path, "log.parquet", frame)
    with pytest.raises(DataError, match="row 2: time must be an integer"):
        read_table(path)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (pd.DataFrame({"customer": [1], "movieId": [2]}), "no user column"),
        (
            pd.DataFrame({"userId": pd.Series([], dtype="int64"), "movieId": pd.Series([], dtype="int64")}),
            "no data rows",
        ),
    ],
)
def test_parquet_bad_tables(tmp_path, frame, expected):
    path = write_parquet(tmp_path, "ratings.parquet", frame)
    with pytest.raises(DataError, match=expected) as info:
        read_table(path)
    assert str(path) in str(info.value)


def test_corrupt_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "ratings.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="cannot read the Parquet file") as info:
        load_ratings(path)
    assert str(path) in str(info.value)


def test_parquet_without_pyarrow_gives_the_install_hint(tmp_path, monkeypatch):
    path = tmp_path / "ratings.parquet"
    path.write_bytes(b"PAR1")
    # A None entry in sys.modules makes `import pyarrow` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DataError, match=r'pip install "shopgym\[parquet\]"') as info:
        load_ratings(path)
    assert str(path) in str(info.value)
