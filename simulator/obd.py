"""Reading Open Bandit Dataset logs (real slates from ZOZOTOWN) into one validated table.

The Open Bandit Dataset (Saito et al., NeurIPS Datasets and Benchmarks 2021) logs one
row per impression: which item a behaviour policy showed in which of three slots of a
slate, whether it was clicked, and with what probability the policy chose it. The
small version is embedded under ``shopgym.data`` (``obd-small/<policy>/<campaign>/``);
the full one, or the copy shipped in the ``obp`` package, has the same layout and can
be read from a folder the user gives.

The logs of the ``random`` policy show every item in every position uniformly, so they
estimate per-position and per-item click-through rates without selection bias: this is
what :meth:`BanditLog.position_ctr` and :meth:`BanditLog.item_ctr` report, with Wilson
score intervals because the clicks are few (about 40 a file).

A bad file gives a :class:`DataError` naming the file, the line and the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from shopgym.data import data_path
from shopgym.simulator.errors import ConfigError, DataError
from shopgym.simulator.interactions import _numbers, _read_table, file_sha256

# ZOZOTOWN's slate has three slots: left, centre, right (1..3 in the files).
NUM_POSITIONS = 3

USER_FEATURES = tuple(f"user_feature_{i}" for i in range(4))
ITEM_FEATURES = tuple(f"item_feature_{i}" for i in range(1, 4))
AFFINITY_PREFIX = "user-item_affinity_"

# Columns every impressions file must have (the affinity columns are optional).
_LOG_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score", *USER_FEATURES)


@dataclass(frozen=True)
class BanditLog:
    """A validated Open Bandit Dataset log of one behaviour policy and campaign.

    Attributes:
        impressions: one row per impression, in file order: ``time`` (datetime64[ns,
            UTC]), ``item`` (int64), ``position`` (int64, 0-based: 0 left, 1 centre,
            2 right), ``click`` (int64, 0 or 1), ``propensity`` (float64: the
            probability that the behaviour policy showed this item here),
            ``user_feature_0..3`` (str, hashed categories) and the
            ``user-item_affinity_<item>`` columns (float64, past clicks).
        item_context: one row per item of the campaign: ``item`` (int64),
            ``item_feature_0`` (float64) and ``item_feature_1..3`` (str, hashed).
        policy: the behaviour policy, ``random`` or ``bts`` (Bernoulli Thompson sampling).
        campaign: ``all``, ``men`` or ``women``.
        source: path of the impressions file.
        sha256: hash of the impressions file's bytes.
    """

    impressions: pd.DataFrame
    item_context: pd.DataFrame
    policy: str
    campaign: str
    source: str
    sha256: str

    @property
    def num_positions(self) -> int:
        """Number of slots in a slate (the highest position seen, plus one)."""
        return int(self.impressions["position"].max()) + 1

    @property
    def num_items(self) -> int:
        """Number of items in the campaign's catalogue (``item_context``)."""
        return len(self.item_context)

    def __len__(self) -> int:
        return len(self.impressions)

    def position_ctr(self, confidence: float = 0.95) -> pd.DataFrame:
        """Click-through rate per position with a Wilson score interval.

        Returns:
            Columns ``position, impressions, clicks, ctr, low, high``, one row per
            position seen, in position order.
        """
        return _ctr_table(self.impressions, "position", confidence)

    def item_ctr(self, confidence: float = 0.95) -> pd.DataFrame:
        """Click-through rate per item shown, with a Wilson score interval.

        Returns:
            Columns ``item, impressions, clicks, ctr, low, high``, one row per item
            shown at least once, in item order.
        """
        return _ctr_table(self.impressions, "item", confidence)


def wilson_interval(
    clicks: np.ndarray | int, trials: np.ndarray | int, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion ``clicks / trials``.

    Unlike the normal approximation, it stays inside [0, 1] and is not empty when
    there are no clicks, which matters at click rates below 1%.
    """
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    clicks = np.asarray(clicks, dtype="float64")
    trials = np.asarray(trials, dtype="float64")
    if np.any(trials <= 0) or np.any(clicks < 0) or np.any(clicks > trials):
        raise ConfigError("wilson_interval needs trials > 0 and 0 <= clicks <= trials")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    rate = clicks / trials
    shrink = 1.0 + z**2 / trials
    centre = (rate + z**2 / (2.0 * trials)) / shrink
    half = z / shrink * np.sqrt(rate * (1.0 - rate) / trials + z**2 / (4.0 * trials**2))
    # At 0 clicks (or 0 misses) the bound is exactly 0 (or 1), but centre - half
    # cancels to a rounding error of about 1e-18: set the ends exactly.
    low = np.where(clicks == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    high = np.where(clicks == trials, 1.0, np.clip(centre + half, 0.0, 1.0))
    return low, high


def _ctr_table(impressions: pd.DataFrame, by: str, confidence: float) -> pd.DataFrame:
    groups = impressions.groupby(by, sort=True)["click"]
    table = pd.DataFrame(
        {
            by: groups.size().index.to_numpy(dtype="int64"),
            "impressions": groups.size().to_numpy(dtype="int64"),
            "clicks": groups.sum().to_numpy(dtype="int64"),
        }
    )
    table["ctr"] = table["clicks"] / table["impressions"]
    table["low"], table["high"] = wilson_interval(table["clicks"], table["impressions"], confidence)
    return table


def embedded_obd_root() -> Path:
    return data_path("obd-small")


def load_obd(campaign: str = "all", policy: str = "random", root: str | Path | None = None) -> BanditLog:
    """Read one Open Bandit Dataset log; ``root=None`` reads the embedded small version.

    Args:
        campaign: ``all`` (80 items), ``men`` (34) or ``women`` (46).
        policy: the behaviour policy, ``random`` or ``bts``.
        root: a folder laid out like the dataset (and the ``obp`` package's copy):
            ``<root>/<policy>/<campaign>/<campaign>.csv`` and ``item_context.csv``,
            each optionally gzipped.

    Raises:
        ConfigError: ``campaign`` or ``policy`` is not a folder of ``root`` (the
            message lists those that are).
        DataError: a file is missing, or has a missing column or a bad cell (the
            message names the file, the line and the column).
    """
    root = embedded_obd_root() if root is None else Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: Open Bandit Dataset folder not found")
    folder = _subfolder(_subfolder(root, policy, "policy"), campaign, "campaign")
    log_path = _text_file(folder, campaign)
    context_path = _text_file(folder, "item_context")
    item_context = _read_item_context(context_path)
    impressions = _read_impressions(log_path, set(item_context["item"]))
    return BanditLog(
        impressions=impressions,
        item_context=item_context,
        policy=policy,
        campaign=campaign,
        source=str(log_path),
        sha256=file_sha256(log_path),
    )


def _subfolder(parent: Path, name: str, what: str) -> Path:
    """``parent / name`` if it is a folder; else a ConfigError listing the folders there."""
    valid = sorted(child.name for child in parent.iterdir() if child.is_dir() and child.name[0] not in "._")
    if name not in valid:
        raise ConfigError(f"unknown {what} {name!r} in {parent}; use one of {valid}")
    return parent / name


def _text_file(folder: Path, stem: str) -> Path:
    """``<stem>.csv`` or, as embedded, ``<stem>.csv.gz``."""
    for candidate in (folder / f"{stem}.csv", folder / f"{stem}.csv.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder / stem}.csv: file not found (nor .csv.gz)")


def _read_csv_with_index(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Read an OBD CSV as strings indexed by line, drop its unnamed row-index column,
    and check that the header has the ``required`` columns."""
    raw = _read_table(path, sep=",", header=0, first_data_line=2)
    # pandas names the empty first header cell "Unnamed: 0"; it is only a row counter.
    if str(raw.columns[0]).startswith("Unnamed: "):
        raw = raw.drop(columns=raw.columns[0])
    missing = [column for column in required if column not in raw.columns]
    if missing:
        raise DataError(f"{path}, line 1: missing column(s) {missing} in header {list(raw.columns)}")
    return raw


def _strings(cells: pd.Series, path: Path, column: str) -> pd.Series:
    """Check that no cell of a categorical column is empty (missing); return it as str."""
    # isna first: a short line leaves NaN, which older pandas turns into the text "nan".
    empty = (cells.isna() | (cells.astype(str).str.strip() == "")).to_numpy()
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise DataError(
            f"{path}, line {cells.index[row]}: {column} is empty ({int(empty.sum())} empty cell(s))"
        )
    return cells.astype(str)


def _check(ok: pd.Series, cells: pd.Series, path: Path, column: str, rule: str) -> None:
    """Raise a DataError naming the first cell where ``ok`` is false."""
    bad = ~ok.to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}, line {cells.index[row]}: {column} must be {rule}, got {str(cells.iloc[row])!r} "
            f"({int(bad.sum())} bad value(s) in this column)"
        )


def _read_item_context(path: Path) -> pd.DataFrame:
    raw = _read_csv_with_index(path, ("item_id", "item_feature_0", *ITEM_FEATURES))
    items = _numbers(raw["item_id"], path, "item_id", integer=True)
    _check(~items.duplicated(), raw["item_id"], path, "item_id", "unique")
    frame = pd.DataFrame(
        {
            "item": items,
            "item_feature_0": _numbers(raw["item_feature_0"], path, "item_feature_0", integer=False),
            **{column: _strings(raw[column], path, column) for column in ITEM_FEATURES},
        }
    )
    return frame.reset_index(drop=True)


def _read_impressions(path: Path, items: set[int]) -> pd.DataFrame:
    raw = _read_csv_with_index(path, _LOG_COLUMNS)

    time = pd.to_datetime(raw["timestamp"], utc=True, format="ISO8601", errors="coerce")
    _check(time.notna(), raw["timestamp"], path, "timestamp", "a date and time")

    item = _numbers(raw["item_id"], path, "item_id", integer=True)
    _check(item.isin(items), raw["item_id"], path, "item_id", f"an item of {path.parent / 'item_context'}")

    position = _numbers(raw["position"], path, "position", integer=True)
    _check(position.between(1, NUM_POSITIONS), raw["position"], path, "position", f"in 1..{NUM_POSITIONS}")

    click = _numbers(raw["click"], path, "click", integer=True)
    _check(click.isin([0, 1]), raw["click"], path, "click", "0 or 1")

    propensity = _numbers(raw["propensity_score"], path, "propensity_score", integer=False)
    _check(
        (propensity > 0.0) & (propensity <= 1.0),
        raw["propensity_score"],
        path,
        "propensity_score",
        "in (0, 1]",
    )

    frame = pd.DataFrame(
        {
            "time": time.dt.as_unit("ns"),
            "item": item,
            "position": position - 1,  # 0-based, like slate indices everywhere else
            "click": click,
            "propensity": propensity,
            **{column: _strings(raw[column], path, column) for column in USER_FEATURES},
            **{
                column: _numbers(raw[column], path, column, integer=False)
                for column in raw.columns
                if str(column).startswith(AFFINITY_PREFIX)
            },
        }
    )
    return frame.reset_index(drop=True)
