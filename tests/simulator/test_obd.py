"""Open Bandit Dataset logs: the embedded files' published facts, the Wilson interval
against a hand computation, a user-given folder, and a DataError naming the file, the
line and the column for every kind of bad input."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopgym.data import data_path
from shopgym.simulator.errors import ConfigError, DataError
from shopgym.simulator.interactions import file_sha256
from shopgym.simulator.obd import BanditLog, load_obd, wilson_interval

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal


# ----------------------------------------------------------------------------- embedded data
@pytest.fixture(scope="module")
def random_all() -> BanditLog:
    return load_obd()


def test_embedded_random_all_facts(random_all):
    log = random_all
    assert (log.policy, log.campaign) == ("random", "all")
    assert len(log) == 10_000
    assert log.num_items == 80
    assert log.impressions["item"].nunique() == 80
    assert log.num_positions == 3
    assert int(log.impressions["click"].sum()) == 38
    assert log.impressions["click"].mean() == pytest.approx(0.0038)
    path = data_path("obd-small", "random", "all", "all.csv.gz")
    assert log.source == str(path)
    assert log.sha256 == file_sha256(path)


def test_embedded_columns_and_types(random_all):
    impressions = random_all.impressions
    dtypes = {column: str(dtype) for column, dtype in impressions.dtypes.items()}
    assert list(impressions.columns[:9]) == [
        "time",
        "item",
        "position",
        "click",
        "propensity",
        *(f"user_feature_{i}" for i in range(4)),
    ]
    assert dtypes["time"] == "datetime64[ns, UTC]"
    assert all(dtypes[c] == "int64" for c in ("item", "position", "click"))
    assert dtypes["propensity"] == "float64"
    assert all(isinstance(v, str) for c in range(4) for v in impressions[f"user_feature_{c}"].head())
    affinity = [c for c in impressions.columns if c.startswith("user-item_affinity_")]
    assert affinity == [f"user-item_affinity_{i}" for i in range(80)]
    assert all(dtypes[c] == "float64" for c in affinity)
    assert "Unnamed: 0" not in impressions.columns
    assert set(impressions["position"]) == {0, 1, 2}  # 0-based; the file has 1..3
    # The uniform random policy picks one of 80 items: propensity 1/80.
    assert np.allclose(impressions["propensity"], 1 / 80)
    assert impressions["time"].min() >= pd.Timestamp("2019-11-24", tz="UTC")
    pd.testing.assert_index_equal(impressions.index, pd.RangeIndex(10_000))

    context = random_all.item_context
    assert list(context.columns) == [
        "item",
        "item_feature_0",
        "item_feature_1",
        "item_feature_2",
        "item_feature_3",
    ]
    assert str(context["item"].dtype) == "int64"
    assert str(context["item_feature_0"].dtype) == "float64"
    assert sorted(context["item"]) == list(range(80))


@pytest.mark.parametrize(
    ("policy", "campaign", "items", "ctr"),
    [
        ("random", "all", 80, 0.0038),
        ("bts", "all", 80, 0.0042),
        ("random", "men", 34, 0.0046),
        ("bts", "men", 34, 0.0069),
        ("random", "women", 46, 0.0046),
        ("bts", "women", 46, 0.0046),
    ],
)
def test_embedded_click_through_rates(policy, campaign, items, ctr):
    log = load_obd(campaign, policy)
    assert len(log) == 10_000
    assert log.num_items == items
    assert log.impressions["click"].mean() == pytest.approx(ctr)
    assert log.impressions["propensity"].between(0, 1, inclusive="right").all()


@pytest.mark.parametrize("campaign", ["all", "men", "women"])
def test_random_policy_is_uniform_over_positions(campaign):
    table = load_obd(campaign, "random").position_ctr()
    assert table["position"].tolist() == [0, 1, 2]
    share = table["impressions"] / table["impressions"].sum()
    # 10,000 draws: the binomial standard deviation of a share is about 0.005.
    assert np.allclose(share, 1 / 3, atol=0.02)


# ----------------------------------------------------------------------------- CTR tables
def test_position_ctr_of_random_all(random_all):
    table = random_all.position_ctr()
    assert list(table.columns) == ["position", "impressions", "clicks", "ctr", "low", "high"]
    assert table["impressions"].tolist() == [3322, 3412, 3266]
    assert table["clicks"].tolist() == [13, 14, 11]
    assert table["ctr"].iloc[0] == pytest.approx(13 / 3322)
    # Hand computation: the Wilson bounds are the roots p of (13/3322 - p)^2 = z^2 p (1 - p) / 3322.
    assert table["low"].iloc[0] == pytest.approx(0.0022884311682268795, rel=1e-9)
    assert table["high"].iloc[0] == pytest.approx(0.006684172965247232, rel=1e-9)
    assert (table["low"] < table["ctr"]).all() and (table["ctr"] < table["high"]).all()


def test_item_ctr_of_random_all(random_all):
    table = random_all.item_ctr()
    assert list(table.columns) == ["item", "impressions", "clicks", "ctr", "low", "high"]
    assert table["item"].tolist() == list(range(80))
    assert table["impressions"].sum() == 10_000
    assert table["clicks"].sum() == 38
    never_clicked = table[table["clicks"] == 0]
    assert len(never_clicked) > 0
    assert (never_clicked["low"] == 0).all() and (never_clicked["high"] > 0).all()


@pytest.mark.parametrize(("clicks", "trials"), [(13, 3322), (0, 100), (1, 1), (5, 10), (100, 100), (3, 7)])
def test_wilson_interval_is_the_root_pair_of_its_quadratic(clicks, trials):
    low, high = wilson_interval(clicks, trials)
    rate = clicks / trials
    # (rate - p)^2 = z^2 p (1 - p) / n  <=>  a p^2 + b p + c = 0
    a = 1 + Z95**2 / trials
    b = -(2 * rate + Z95**2 / trials)
    c = rate**2
    root = math.sqrt(b * b - 4 * a * c)
    assert float(low) == pytest.approx((-b - root) / (2 * a), abs=1e-12)
    assert float(high) == pytest.approx((-b + root) / (2 * a), abs=1e-12)
    assert 0 <= low <= rate <= high <= 1


def test_wilson_interval_edges_and_confidence():
    low, high = wilson_interval(0, 50)
    assert low == 0.0
    assert high == pytest.approx(Z95**2 / (50 + Z95**2))  # the closed form at zero clicks
    narrow = wilson_interval(13, 3322, confidence=0.5)
    wide = wilson_interval(13, 3322, confidence=0.99)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    with pytest.raises(ConfigError, match="confidence"):
        wilson_interval(1, 2, confidence=1.0)
    with pytest.raises(ConfigError, match="trials"):
        wilson_interval(3, 2)


def test_position_ctr_rejects_a_bad_confidence(random_all):
    with pytest.raises(ConfigError, match="confidence"):
        random_all.position_ctr(confidence=0)


# ----------------------------------------------------------------------------- choosing a log
@pytest.mark.parametrize(
    ("campaign", "policy", "expected"),
    [
        ("kids", "random", r"unknown campaign 'kids'.*\['all', 'men', 'women'\]"),
        ("all", "greedy", r"unknown policy 'greedy'.*\['bts', 'random'\]"),
    ],
)
def test_unknown_campaign_or_policy(campaign, policy, expected):
    with pytest.raises(ConfigError, match=expected):
        load_obd(campaign, policy)


def test_copy_of_the_embedded_layout_reads_the_same(tmp_path, random_all):
    root = tmp_path / "open_bandit_dataset"
    shutil.copytree(data_path("obd-small"), root)
    log = load_obd("all", "random", root=root)
    pd.testing.assert_frame_equal(log.impressions, random_all.impressions)
    pd.testing.assert_frame_equal(log.item_context, random_all.item_context)
    assert log.sha256 == random_all.sha256
    assert log.source == str(root / "random" / "all" / "all.csv.gz")


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_obd(root=tmp_path / "nowhere")


# ----------------------------------------------------------------------------- small files
LOG_HEADER = (
    ",timestamp,item_id,position,click,propensity_score,"
    "user_feature_0,user_feature_1,user_feature_2,user_feature_3,"
    "user-item_affinity_0,user-item_affinity_1,user-item_affinity_2"
)
LOG_ROWS = [
    [
        "0",
        "2019-11-24 00:00:34.762830+00:00",
        "0",
        "1",
        "0",
        "0.3333",
        "a",
        "b",
        "c",
        "d",
        "0.0",
        "0.0",
        "1.0",
    ],
    [
        "1",
        "2019-11-24 00:00:53.965051+00:00",
        "2",
        "3",
        "1",
        "0.3333",
        "a",
        "e",
        "c",
        "d",
        "0.0",
        "2.0",
        "0.0",
    ],
    ["2", "2019-11-24 00:01:03.979311+00:00", "1", "2", "0", "1", "f", "b", "c", "d", "1.0", "0.0", "0.0"],
]
CONTEXT = (
    ",item_id,item_feature_0,item_feature_1,item_feature_2,item_feature_3\n"
    "0,0,-0.5,x,y,z\n1,1,0.25,x,y,w\n2,2,1.0,v,y,z\n"
)
FIELD = {name: i for i, name in enumerate(LOG_HEADER.split(","))}


def write_obd(root: Path, rows: list[list[str]], header: str = LOG_HEADER, context: str = CONTEXT) -> Path:
    """Write ``<root>/random/all/all.csv`` and ``item_context.csv``; return the log's path."""
    folder = root / "random" / "all"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "item_context.csv").write_text(context)
    path = folder / "all.csv"
    path.write_text(header + "\n" + "".join(",".join(row) + "\n" for row in rows))
    return path


def test_small_log_from_a_user_folder(tmp_path):
    path = write_obd(tmp_path, LOG_ROWS)
    log = load_obd(root=tmp_path)
    frame = log.impressions
    assert frame["item"].tolist() == [0, 2, 1]
    assert frame["position"].tolist() == [0, 2, 1]
    assert frame["click"].tolist() == [0, 1, 0]
    assert frame["propensity"].tolist() == [0.3333, 0.3333, 1.0]
    assert frame["user_feature_1"].tolist() == ["b", "e", "b"]
    assert frame["user-item_affinity_1"].tolist() == [0.0, 2.0, 0.0]
    assert frame["time"].iloc[0] == pd.Timestamp("2019-11-24 00:00:34.762830", tz="UTC")
    assert log.item_context["item_feature_0"].tolist() == [-0.5, 0.25, 1.0]
    assert log.item_context["item_feature_1"].tolist() == ["x", "x", "v"]
    assert (log.num_items, log.num_positions) == (3, 3)
    assert log.source == str(path)
    assert log.sha256 == file_sha256(path)
    assert log.position_ctr()["clicks"].tolist() == [0, 0, 1]


def with_cell(row: int, column: str, value: str) -> list[list[str]]:
    rows = [list(r) for r in LOG_ROWS]
    rows[row][FIELD[column]] = value
    return rows


BAD_LOGS = [
    # (rows, substrings the message must contain); data row i is on line i + 2
    (with_cell(1, "position", "4"), ["line 3", "position", "1..3", "'4'"]),
    (with_cell(0, "position", "0"), ["line 2", "position"]),
    (with_cell(2, "position", "1.5"), ["line 4", "position", "integer"]),
    (with_cell(1, "click", "2"), ["line 3", "click", "0 or 1", "'2'"]),
    (with_cell(2, "click", ""), ["line 4", "click"]),
    (with_cell(0, "propensity_score", "0"), ["line 2", "propensity_score", "(0, 1]"]),
    (with_cell(1, "propensity_score", "1.5"), ["line 3", "propensity_score"]),
    (with_cell(2, "propensity_score", "nan"), ["line 4", "propensity_score", "'nan'"]),
    (with_cell(1, "item_id", "7"), ["line 3", "item_id", "item_context", "'7'"]),
    (with_cell(1, "item_id", "x"), ["line 3", "item_id", "integer"]),
    (with_cell(0, "timestamp", "yesterday"), ["line 2", "timestamp", "'yesterday'"]),
    (with_cell(2, "user_feature_3", ""), ["line 4", "user_feature_3", "empty"]),
    (with_cell(1, "user-item_affinity_2", "NaN"), ["line 3", "user-item_affinity_2"]),
    (with_cell(1, "user-item_affinity_0", ""), ["line 3", "user-item_affinity_0"]),
]


@pytest.mark.parametrize(("rows", "expected"), BAD_LOGS)
def test_bad_log_names_file_line_and_column(tmp_path, rows, expected):
    path = write_obd(tmp_path, rows)
    with pytest.raises(DataError) as info:
        load_obd(root=tmp_path)
    message = str(info.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message


def test_missing_column_names_the_header_line(tmp_path):
    header = LOG_HEADER.replace(",click", "")
    rows = [r[: FIELD["click"]] + r[FIELD["click"] + 1 :] for r in LOG_ROWS]
    path = write_obd(tmp_path, rows, header=header)
    with pytest.raises(DataError, match=r", line 1: missing column\(s\) \['click'\]") as info:
        load_obd(root=tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (CONTEXT.replace("1,1,0.25", "1,1,nan"), ["line 3", "item_feature_0"]),
        (CONTEXT.replace("2,2,1.0", "2,1,1.0"), ["line 4", "item_id", "unique"]),
        (CONTEXT.replace("2,2,1.0,v", "2,2.5,1.0,v"), ["line 4", "item_id", "integer"]),
        (CONTEXT.replace(",x,y,w", ",,y,w"), ["line 3", "item_feature_1", "empty"]),
        (CONTEXT.replace(",item_feature_2", ",other"), ["line 1", "item_feature_2"]),
    ],
)
def test_bad_item_context_names_file_line_and_column(tmp_path, context, expected):
    write_obd(tmp_path, LOG_ROWS, context=context)
    with pytest.raises(DataError) as info:
        load_obd(root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "random" / "all" / "item_context.csv") in message
    for fragment in expected:
        assert fragment in message


def test_missing_item_context_file(tmp_path):
    write_obd(tmp_path, LOG_ROWS)
    (tmp_path / "random" / "all" / "item_context.csv").unlink()
    with pytest.raises(DataError, match=r"item_context\.csv: file not found"):
        load_obd(root=tmp_path)


def test_empty_log(tmp_path):
    path = write_obd(tmp_path, [])
    with pytest.raises(DataError, match="no data rows") as info:
        load_obd(root=tmp_path)
    assert str(path) in str(info.value)
