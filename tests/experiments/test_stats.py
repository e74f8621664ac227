"""Per-seed scores, bootstrap intervals, the summary table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopgym.experiments.stats import (
    METRICS,
    bootstrap_ci,
    format_table,
    per_seed_scores,
    summarize,
)


def _episodes(agents=("a", "b"), seeds=3, episodes=4, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for offset, agent in enumerate(agents):
        for s in range(seeds):
            for e in range(episodes):
                length = int(rng.integers(1, 10))
                clicks = int(rng.integers(0, length + 1))
                purchases = int(rng.integers(0, clicks + 1))
                rows.append(
                    {
                        "agent": agent,
                        "seed": s,
                        "episode": e,
                        "round": e,
                        "env_index": 0,
                        "return": clicks + purchases + offset,
                        "clicks": clicks,
                        "purchases": purchases,
                        "length": length,
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", range(5))
def test_bootstrap_ci_contains_the_mean(seed):
    values = np.random.default_rng(seed).normal(3.0, 1.0, size=8)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high
    assert values.min() <= low and high <= values.max()


def test_bootstrap_ci_narrows_with_more_seeds():
    rng = np.random.default_rng(0)
    widths = []
    for n in (5, 20, 80):
        values = rng.normal(size=n)
        values = (values - values.mean()) / values.std()  # same spread at every n
        low, high = bootstrap_ci(values)
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    # Roughly like 1/sqrt(n): 2 * 1.96 / sqrt(80) ~ 0.44.
    assert 0.3 < widths[2] < 0.6


def test_bootstrap_ci_is_deterministic_and_seeded():
    values = np.random.default_rng(1).normal(size=6)
    assert bootstrap_ci(values) == bootstrap_ci(values)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_bootstrap_ci_of_one_or_constant_values_is_a_point():
    assert bootstrap_ci(np.array([2.5])) == (2.5, 2.5)
    assert bootstrap_ci(np.full(7, 1.25)) == pytest.approx((1.25, 1.25))


def test_bootstrap_ci_confidence_widens_the_interval():
    values = np.random.default_rng(2).normal(size=10)
    low90, high90 = bootstrap_ci(values, confidence=0.9)
    low99, high99 = bootstrap_ci(values, confidence=0.99)
    assert low99 < low90 and high90 < high99


def test_per_seed_scores():
    episodes = _episodes()
    scores = per_seed_scores(episodes)
    assert len(scores) == 6
    assert {"agent", "seed", "return", "ctr", "purchases", "episodes"} <= set(scores.columns)
    for _, row in scores.iterrows():
        mine = episodes[(episodes["agent"] == row["agent"]) & (episodes["seed"] == row["seed"])]
        assert row["episodes"] == len(mine)
        assert row["return"] == pytest.approx(mine["return"].mean())
        assert row["purchases"] == pytest.approx(mine["purchases"].mean())
        # Clicks per slate shown, over the seed's sessions.
        assert row["ctr"] == pytest.approx(mine["clicks"].sum() / mine["length"].sum())


def test_per_seed_ctr_weights_sessions_by_their_length():
    episodes = pd.DataFrame(
        {
            "agent": ["a", "a"],
            "seed": [0, 0],
            "return": [1.0, 0.0],
            "clicks": [1, 0],
            "purchases": [0, 0],
            "length": [1, 9],
        }
    )
    assert per_seed_scores(episodes)["ctr"].item() == pytest.approx(0.1)


def test_summarize_has_a_row_per_agent_with_mean_and_interval_per_metric():
    episodes = _episodes(agents=("b", "a"), seeds=4, episodes=5)
    summary = summarize(episodes)
    expected = ["agent", "seeds", "episodes"]
    for metric in METRICS:
        expected += [metric, f"{metric}_low", f"{metric}_high"]
    assert list(summary.columns) == expected
    assert summary["agent"].tolist() == ["b", "a"]  # order of appearance
    assert summary["seeds"].tolist() == [4, 4]
    assert summary["episodes"].tolist() == [20, 20]
    scores = per_seed_scores(episodes)
    for _, row in summary.iterrows():
        mine = scores[scores["agent"] == row["agent"]]
        for metric in METRICS:
            assert row[metric] == pytest.approx(mine[metric].mean())
            assert row[f"{metric}_low"] <= row[metric] <= row[f"{metric}_high"]
            low, high = bootstrap_ci(mine[metric].to_numpy())
            assert (row[f"{metric}_low"], row[f"{metric}_high"]) == pytest.approx((low, high))
    # Agent b's returns are 1 lower in every episode.
    by_agent = summary.set_index("agent")
    assert by_agent.loc["a", "return"] > by_agent.loc["b", "return"]


def test_format_table_lists_every_agent_with_its_numbers():
    summary = summarize(_episodes(agents=("random", "oracle", "static-mf")))
    table = format_table(summary)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["agent", "seeds", "return"]
    assert len(lines) == 2 + 3
    for line, (_, row) in zip(lines[2:], summary.iterrows(), strict=True):
        assert line.split()[0] == row["agent"]
        assert f"{row['return']:.3f} [{row['return_low']:.3f}, {row['return_high']:.3f}]" in line
