"""Metrics of an evaluation from its records alone (no simulator): per seed, per position.

The records are the per-episode rows of :func:`shopgym.experiments.evaluation.evaluate`
(``return, clicks, purchases, length``) and, from
:func:`~shopgym.experiments.evaluation.evaluate_detailed`, ``revenue, ndcg, ild,
novelty, clicks_p0 ..``, with the grouping keys of an experiment directory prepended
(those of ``preset, agent, seed`` present). Metrics whose inputs a record set lacks (an
older run has no ``ndcg``) are left out, not filled with NaN.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

GROUP_KEYS = ("preset", "agent", "seed")
# The agent name (and, in a ``shopgym run`` directory, the label) of the regret reference.
REFERENCE = "planning-oracle"

# The metric columns of per_seed_metrics that the report tables show, in order.
METRICS = (
    "return",
    "regret",
    "ctr",
    "purchases",
    "revenue",
    "length",
    "ndcg",
    "ild",
    "novelty",
    "coverage",
)
METRIC_LABELS = {
    "return": "return per session",
    "regret": "regret to planning oracle",
    "ctr": "CTR (clicks/slate)",
    "purchases": "purchases per session",
    "revenue": "revenue per session (median prices)",
    "length": "session length (slates)",
    "ndcg": "NDCG@k to true utilities",
    "ild": "intra-list diversity (0-1)",
    "novelty": "novelty (bits)",
    "coverage": "catalogue coverage",
}
# Record columns that are means over an episode's slates: averaged with each slate counting once.
_SLATE_MEANS = ("ndcg", "ild", "novelty")
_POSITION = re.compile(r"clicks_p(\d+)")


def group_keys(frame: pd.DataFrame) -> list[str]:
    """The grouping keys of ``frame``: those of ("preset", "agent", "seed") that it has."""
    return [key for key in GROUP_KEYS if key in frame.columns]


def regret_reference(agents: list[dict]) -> str | None:
    """The label of the regret reference among an experiment's ``agents``
    (experiment.json's list of dicts with ``label`` and ``name``): the first agent whose
    name is the planning oracle, whatever its label; None where there is none."""
    for agent in agents:
        if agent.get("name") == REFERENCE:
            return str(agent["label"])
    return None


def position_columns(episodes: pd.DataFrame) -> list[tuple[int, str]]:
    """The (position, column) of each ``clicks_p{position}`` column, by position."""
    found = [(int(match[1]), name) for name in episodes.columns if (match := _POSITION.fullmatch(name))]
    return sorted(found)


def per_seed_metrics(
    episodes: pd.DataFrame,
    items: pd.DataFrame | None = None,
    catalogue_sizes: Mapping[str, int] | int | None = None,
    reference: str | None = REFERENCE,
) -> pd.DataFrame:
    """One row per group of the keys among ("preset", "agent", "seed") in ``episodes``
    (in first-seen order; a frame without keys is one group) and its metrics.

    Args:
        episodes: per-episode records (see the module docstring).
        items: ``item, shown, clicked`` per catalogue item shown, with the same keys as
            ``episodes`` (an experiment directory's items.csv); ``None``: no coverage.
        catalogue_sizes: the catalogue size per preset label, or one size for every
            group; needed with ``items``.
        reference: the agent label regret is measured to (:func:`regret_reference`
            of an experiment's agents); ``None``: no regret.

    Returns:
        The keys, ``episodes`` (count), then those of :data:`METRICS` whose inputs are
        present, then ``ctr_p0 .. ctr_p{k-1}``:

        - ``return``, ``purchases``, ``revenue``, ``length`` (slates): means per session.
        - ``ctr``: clicks per slate, sum of clicks / sum of lengths (every slate counts
          once); ``ctr_p{p}`` the same for the clicks at slate position p.
        - ``ndcg``, ``ild``, ``novelty``: means over the slates shown (each record's
          value weighted by its length: records hold means over their slates; novelty is
          then the mean over shown items too, every slate having k of them). NaN where
          a record is NaN (the ILD of one-item slates).
        - ``coverage``: distinct items shown / catalogue size (NaN for a group that
          ``items`` lacks).
        - ``regret``: the reference agent's mean return minus this group's, paired by
          preset and seed (the same evaluation seed): a difference of means per seed,
          not per shopper (only the first ``num_envs`` sessions of a seed share their
          shoppers; later ones come from a stream whose position depends on when
          sessions end). 0 for the reference itself, NaN where it has no such seed.
          Left out when the reference agent is not in ``episodes``.

    Raises:
        ValueError: ``items`` without ``catalogue_sizes``, or without the keys, or a
            preset that ``catalogue_sizes`` lacks.
    """
    keys = group_keys(episodes)
    frame = episodes if keys else episodes.assign(_all=0)
    by = keys or ["_all"]
    grouped = frame.groupby(by, sort=False)
    slates = grouped["length"].sum()
    scores = pd.DataFrame({"episodes": grouped.size()})
    scores["return"] = grouped["return"].mean()
    scores["ctr"] = grouped["clicks"].sum() / slates
    scores["purchases"] = grouped["purchases"].mean()
    if "revenue" in frame.columns:
        scores["revenue"] = grouped["revenue"].mean()
    scores["length"] = grouped["length"].mean()
    for name in _SLATE_MEANS:
        if name in frame.columns:
            weighted = (frame[name] * frame["length"]).groupby([frame[key] for key in by], sort=False).sum()
            # A NaN record makes its group's mean NaN (a sum would skip it).
            complete = grouped[name].count() == scores["episodes"]
            scores[name] = (weighted / slates).where(complete)
    if items is not None:
        scores["coverage"] = _coverage(items, keys, scores.index, catalogue_sizes)
    positions = position_columns(frame)
    for position, column in positions:
        scores[f"ctr_p{position}"] = grouped[column].sum() / slates
    scores = scores.reset_index()
    if reference is not None and "agent" in keys and (scores["agent"] == reference).any():
        scores["regret"] = _reference_returns(scores, keys, reference) - scores["return"]
    metrics = [name for name in METRICS if name in scores.columns]
    return scores[[*keys, "episodes", *metrics, *(f"ctr_p{position}" for position, _ in positions)]]


def _coverage(
    items: pd.DataFrame,
    keys: list[str],
    index: pd.Index,
    catalogue_sizes: Mapping[str, int] | int | None,
) -> pd.Series:
    """Distinct items shown / catalogue size, per group of ``index`` (of ``keys``)."""
    if catalogue_sizes is None:
        raise ValueError("coverage needs the catalogue size: pass catalogue_sizes with items")
    missing = [key for key in keys if key not in items.columns]
    if missing:
        raise ValueError(f"items lacks the grouping keys {missing} of the episodes")
    shown = items[items["shown"] > 0]
    if keys:
        distinct = shown.groupby(keys, sort=False)["item"].nunique().reindex(index)
    else:
        distinct = pd.Series(shown["item"].nunique(), index=index)
    if isinstance(catalogue_sizes, Mapping):
        if "preset" not in keys:
            raise ValueError("catalogue_sizes per preset needs a preset column; pass one int instead")
        presets = index.get_level_values("preset")
        unknown = sorted(set(presets) - set(catalogue_sizes))
        if unknown:
            raise ValueError(f"catalogue_sizes has no size for the presets {unknown}")
        sizes = np.array([catalogue_sizes[preset] for preset in presets], dtype=float)
    else:
        sizes = float(catalogue_sizes)
    return distinct.astype(float) / sizes


def _reference_returns(scores: pd.DataFrame, keys: list[str], reference: str) -> pd.Series:
    """(rows of ``scores``) the reference agent's mean return for each row's preset and
    seed, paired by seed, not by shopper (NaN where it has none)."""
    match = [key for key in keys if key != "agent"]
    own = scores[scores["agent"] == reference]
    if not match:
        return pd.Series(float(own["return"].iloc[0]), index=scores.index)
    table = own.set_index(match)["return"].rename("reference")
    return scores[match].join(table, on=match)["reference"]


def per_position_ctr(episodes: pd.DataFrame) -> pd.DataFrame:
    """Per-position CTR, long format: the keys present, ``position`` (0 = top of the
    slate) and ``ctr`` (sum of clicks at that position / sum of lengths), one row per
    group and position, groups in first-seen order. Empty (those columns) when the
    records have no ``clicks_p`` columns."""
    keys = group_keys(episodes)
    positions = position_columns(episodes)
    if not positions:
        return pd.DataFrame(columns=[*keys, "position", "ctr"])
    frame = episodes if keys else episodes.assign(_all=0)
    grouped = frame.groupby(keys or ["_all"], sort=False)
    slates = grouped["length"].sum()
    wide = pd.DataFrame({position: grouped[column].sum() / slates for position, column in positions})
    long = wide.stack().rename("ctr").rename_axis([*(keys or ["_all"]), "position"]).reset_index()
    return long[[*keys, "position", "ctr"]].astype({"position": int, "ctr": float})
