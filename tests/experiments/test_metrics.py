"""``metrics``: per-seed metrics and per-position CTR from the records alone."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from shopgym.agents import make_agent
from shopgym.experiments.evaluation import evaluate_detailed
from shopgym.experiments.metrics import (
    METRIC_LABELS,
    METRICS,
    per_position_ctr,
    per_seed_metrics,
    regret_reference,
)

from .helpers import SYNTHETIC_ID


def _episodes() -> pd.DataFrame:
    """Two presets, two agents, three seeds; small numbers to check by hand."""
    rows = [
        # preset, agent, seed, return, clicks, purchases, length, revenue, ndcg, ild, novelty, p0, p1
        ("a", "x", 0, 1.0, 1, 0, 2, 0.0, 0.5, 0.2, 3.0, 1, 0),
        ("a", "x", 0, 3.0, 2, 1, 4, 1.5, 0.25, 0.8, 6.0, 1, 1),
        ("a", "planning-oracle", 0, 5.0, 3, 2, 5, 2.0, 1.0, 0.5, 4.0, 2, 1),
        ("a", "planning-oracle", 0, 7.0, 4, 3, 5, 3.0, 1.0, 0.5, 4.0, 2, 2),
        ("a", "x", 1, 2.0, 1, 1, 3, 1.0, 0.2, 0.4, 5.0, 1, 0),
        ("a", "planning-oracle", 2, 9.0, 5, 4, 6, 4.0, 1.0, 0.3, 3.5, 3, 2),
        ("b", "x", 0, 1.0, 0, 1, 1, 0.5, 0.3, 0.6, 2.0, 0, 0),
        ("b", "x", 0, 1.0, 1, 0, 1, 0.0, 0.3, 0.6, 2.0, 1, 0),
    ]
    columns = ["preset", "agent", "seed", "return", "clicks", "purchases", "length"]
    columns += ["revenue", "ndcg", "ild", "novelty", "clicks_p0", "clicks_p1"]
    frame = pd.DataFrame(rows, columns=columns)
    frame.insert(3, "episode", range(len(frame)))
    return frame


def _items() -> pd.DataFrame:
    rows = [
        ("a", "x", 0, 1, 3, 1),
        ("a", "x", 0, 2, 1, 0),
        ("a", "x", 0, 5, 0, 0),  # never shown: not counted
        ("a", "planning-oracle", 0, 1, 2, 1),
        ("a", "x", 1, 4, 3, 1),
        ("a", "planning-oracle", 2, 3, 6, 5),
        ("b", "x", 0, 7, 2, 1),
    ]
    return pd.DataFrame(rows, columns=["preset", "agent", "seed", "item", "shown", "clicked"])


def test_one_row_per_group_in_first_seen_order_with_every_metric():
    scores = per_seed_metrics(_episodes(), _items(), {"a": 10, "b": 4})
    keys = list(zip(scores["preset"], scores["agent"], scores["seed"], strict=True))
    assert keys == [
        ("a", "x", 0),
        ("a", "planning-oracle", 0),
        ("a", "x", 1),
        ("a", "planning-oracle", 2),
        ("b", "x", 0),
    ]
    assert list(scores.columns) == ["preset", "agent", "seed", "episodes", *METRICS, "ctr_p0", "ctr_p1"]
    assert set(METRICS) <= set(METRIC_LABELS)
    first = scores.iloc[0]
    assert first["episodes"] == 2
    assert first["return"] == 2.0 and first["purchases"] == 0.5 and first["revenue"] == 0.75
    assert first["length"] == 3.0
    assert first["ctr"] == pytest.approx(3 / 6)  # clicks per slate, not a mean of ratios
    # Slate-weighted: (0.5 * 2 + 0.25 * 4) / 6 slates.
    assert first["ndcg"] == pytest.approx(2 / 6)
    assert first["ild"] == pytest.approx((0.2 * 2 + 0.8 * 4) / 6)
    assert first["novelty"] == pytest.approx((3 * 2 + 6 * 4) / 6)
    assert first["ctr_p0"] == pytest.approx(2 / 6) and first["ctr_p1"] == pytest.approx(1 / 6)
    np.testing.assert_allclose(scores["ctr_p0"] + scores["ctr_p1"], scores["ctr"])


def test_regret_is_to_the_reference_of_the_same_preset_and_seed():
    scores = per_seed_metrics(_episodes())
    # x seed 0 in preset a: 6 - 2; the reference itself 0; no reference for seed 1 in a, nor in b.
    np.testing.assert_array_equal(scores["regret"], [4.0, 0.0, np.nan, 0.0, np.nan])
    other = per_seed_metrics(_episodes(), reference="x")
    np.testing.assert_array_equal(other["regret"], [0.0, -4.0, 0.0, np.nan, 0.0])
    # No reference agent at all (or none given): no regret column.
    assert "regret" not in per_seed_metrics(_episodes(), reference="nobody").columns
    assert "regret" not in per_seed_metrics(_episodes(), reference=None).columns
    # Without presets: matched on the seed alone.
    flat = per_seed_metrics(_episodes().drop(columns="preset"))
    assert list(flat["agent"]) == ["x", "planning-oracle", "x", "planning-oracle"]
    assert flat["regret"].iloc[0] == pytest.approx(6.0 - 1.5)


def test_the_regret_reference_is_the_planning_oracle_by_name():
    agents = [
        {"label": "ppo", "name": "ppo"},
        {"label": "planning-oracle", "name": "myopic-oracle"},  # a label that misleads
        {"label": "oracle-deep", "name": "planning-oracle", "options": {"depth": 4}},
        {"label": "oracle-shallow", "name": "planning-oracle", "options": {"depth": 1}},
    ]
    assert regret_reference(agents) == "oracle-deep"  # the first planning oracle
    assert regret_reference(agents[:2]) is None
    assert regret_reference([]) is None
    # Its label is what per_seed_metrics measures regret to.
    episodes = _episodes().replace({"agent": {"planning-oracle": "oracle-deep"}})
    scores = per_seed_metrics(episodes, reference=regret_reference(agents))
    np.testing.assert_array_equal(scores["regret"], [4.0, 0.0, np.nan, 0.0, np.nan])


def test_coverage_counts_distinct_items_shown_over_the_catalogue():
    scores = per_seed_metrics(_episodes(), _items(), {"a": 10, "b": 4})
    np.testing.assert_allclose(scores["coverage"], [2 / 10, 1 / 10, 1 / 10, 1 / 10, 1 / 4])
    same = per_seed_metrics(_episodes(), _items(), 10)
    np.testing.assert_allclose(same["coverage"], [0.2, 0.1, 0.1, 0.1, 0.1])
    # A group the items frame lacks has no coverage (not 0).
    partial = per_seed_metrics(_episodes(), _items().iloc[:4], 10)
    assert partial["coverage"].isna().tolist() == [False, False, True, True, True]
    with pytest.raises(ValueError, match="catalogue_sizes"):
        per_seed_metrics(_episodes(), _items())
    with pytest.raises(ValueError, match="no size for the presets"):
        per_seed_metrics(_episodes(), _items(), {"a": 10})


def test_missing_inputs_leave_their_columns_out():
    old = _episodes()[["agent", "seed", "episode", "return", "clicks", "purchases", "length"]]
    scores = per_seed_metrics(old)
    assert list(scores.columns) == [
        "agent",
        "seed",
        "episodes",
        "return",
        "regret",
        "ctr",
        "purchases",
        "length",
    ]
    assert per_position_ctr(old).empty
    assert list(per_position_ctr(old).columns) == ["agent", "seed", "position", "ctr"]
    # One run's records, no keys: one group.
    single = per_seed_metrics(_episodes().drop(columns=["preset", "agent", "seed"]))
    assert len(single) == 1 and single["episodes"].iloc[0] == 8
    assert "regret" not in single.columns
    # A NaN record (the ILD of one-item slates) makes its group's mean NaN.
    episodes = _episodes()
    episodes.loc[0, "ild"] = np.nan
    assert per_seed_metrics(episodes)["ild"].isna().tolist() == [True, False, False, False, False]


def test_per_position_ctr_is_long_and_matches_the_scores():
    episodes = _episodes()
    long = per_position_ctr(episodes)
    assert list(long.columns) == ["preset", "agent", "seed", "position", "ctr"]
    assert len(long) == 5 * 2 and long["position"].tolist()[:4] == [0, 1, 0, 1]
    scores = per_seed_metrics(episodes)
    for position in (0, 1):
        rows = long[long["position"] == position]
        np.testing.assert_array_equal(rows[["preset", "agent", "seed"]], scores[["preset", "agent", "seed"]])
        np.testing.assert_allclose(rows["ctr"], scores[f"ctr_p{position}"])


def test_end_to_end_from_detailed_evaluations():
    frames, item_frames = [], []
    for agent_name in ("random", "popularity"):
        for seed in (0, 1):
            env = gym.make_vec(SYNTHETIC_ID, num_envs=5, shoppers="test", device="cpu")
            agent = make_agent(
                agent_name, env.single_observation_space, env.single_action_space, seed=seed, device="cpu"
            )
            result = evaluate_detailed(agent, env, 20, seed=seed)
            keys = {"agent": agent_name, "seed": seed}
            frames.append(result.records.assign(**keys))
            item_frames.append(result.items.assign(**keys))
    catalogue = env.torch_env.simulator.num_items
    scores = per_seed_metrics(pd.concat(frames), pd.concat(item_frames), catalogue)
    assert len(scores) == 4 and (scores["episodes"] == 20).all()
    assert "regret" not in scores.columns  # no planning oracle here
    assert scores["ndcg"].between(0, 1).all()
    assert scores["ild"].between(0, 1).all()
    assert (scores["coverage"] > 0).all() and (scores["coverage"] <= 1).all()
    assert (scores["novelty"] > 0).all() and (scores["revenue"] >= 0).all()
    positions = [column for column in scores.columns if column.startswith("ctr_p")]
    assert len(positions) == env.single_action_space.slate_size
    np.testing.assert_allclose(scores[positions].sum(axis=1), scores["ctr"])
    # Popularity shows fewer distinct items than random (it ranks by one fixed score).
    coverage = scores.groupby("agent")["coverage"].mean()
    assert coverage["popularity"] <= coverage["random"]
