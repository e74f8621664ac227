"""Per-seed scores, intervals over seeds (and their measured coverage), IQM, probability of
improvement, aggregated tables, the summary table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from shopgym.experiments.stats import (
    METRICS,
    aggregate,
    aggregate_over_presets,
    bootstrap_ci,
    format_table,
    improvement_probability_interval,
    iqm,
    iqm_interval,
    mean_interval,
    per_seed_scores,
    probability_of_improvement,
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


def _scores(table: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """Per-seed scores from {(preset, agent): [score of seed 0, seed 1, ...]}."""
    rows = [
        {"preset": preset, "agent": agent, "seed": seed, "return": value}
        for (preset, agent), values in table.items()
        for seed, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def _coverage(interval, draw, truth: float, replications: int, seeds: int = 10) -> float:
    """Fraction of ``replications`` synthetic samples of ``seeds`` scores whose interval holds ``truth``;
    ``interval(values, index)`` -> (low, high), ``draw(rng, n)`` -> shape (n,)."""
    rng = np.random.default_rng(12345)
    hits = 0
    for index in range(replications):
        low, high = interval(draw(rng, seeds), index)
        hits += low <= truth <= high
    return hits / replications


# --- the old percentile bootstrap, kept for its callers ---------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_bootstrap_ci_contains_the_mean(seed):
    values = np.random.default_rng(seed).normal(3.0, 1.0, size=8)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high
    assert values.min() <= low and high <= values.max()


def test_bootstrap_ci_is_deterministic_and_seeded():
    values = np.random.default_rng(1).normal(size=6)
    assert bootstrap_ci(values) == bootstrap_ci(values)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)


def test_bootstrap_ci_of_one_or_constant_values_is_a_point():
    assert bootstrap_ci(np.array([2.5])) == (2.5, 2.5)
    assert bootstrap_ci(np.full(7, 1.25)) == pytest.approx((1.25, 1.25))


# --- mean_interval -----------------------------------------------------------------------------


def test_mean_interval_is_the_student_t_interval():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    # t(9) 97.5% quantile 2.2622, sd 3.02765, sqrt(10).
    half = 2.262157 * 3.0276504 / math.sqrt(10)
    assert mean_interval(values) == pytest.approx((5.5 - half, 5.5 + half), rel=1e-6)
    low90, high90 = mean_interval(values, confidence=0.9)
    assert 5.5 - half < low90 < 5.5 < high90 < 5.5 + half


def test_mean_interval_needs_two_seeds():
    assert all(math.isnan(bound) for bound in mean_interval(np.array([3.0])))
    assert all(math.isnan(bound) for bound in mean_interval(np.array([])))
    assert mean_interval(np.full(4, 2.0)) == (2.0, 2.0)


def test_mean_interval_covers_95_percent_at_10_seeds_on_normal_scores():
    # 2,000 samples: the Monte-Carlo standard error of a 95% coverage is 0.49 points, so the band is
    # about 3 of them. Measured: 94.5%; the percentile bootstrap (bootstrap_ci) 89.8%, out of the band.
    coverage = _coverage(
        lambda values, _: mean_interval(values),
        lambda rng, n: rng.normal(1.0, 2.0, n),
        truth=1.0,
        replications=2000,
    )
    assert 0.935 <= coverage <= 0.965


def test_mean_interval_covers_95_percent_at_10_seeds_on_skewed_scores():
    # Gamma(8): skewness 0.71. Measured: 94.3% (94.4% over 40,000 samples), the percentile bootstrap
    # 89.8%. On exponential scores (skewness 2) the t interval drops to 90.5%, the percentile to 86.6%.
    coverage = _coverage(
        lambda values, _: mean_interval(values),
        lambda rng, n: rng.gamma(8.0, 1.0, n),
        truth=8.0,
        replications=2000,
    )
    assert 0.93 <= coverage <= 0.965


# --- iqm and iqm_interval ----------------------------------------------------------------------


def test_iqm_cuts_a_quarter_at_each_end():
    assert iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm(np.array([0.0, 1.0, 2.0, 100.0])) == pytest.approx(1.5)  # the outlier is cut
    values = np.random.default_rng(0).exponential(size=10)
    assert iqm(values) == pytest.approx(scipy_stats.trim_mean(values, 0.25))
    assert math.isnan(iqm(np.array([]))) and math.isnan(iqm(np.array([1.0, np.nan])))


def test_iqm_is_rliables_aggregate_iqm():
    metrics = pytest.importorskip("rliable.metrics")
    scores = np.random.default_rng(1).normal(size=(10, 3))  # runs x tasks
    assert iqm(scores) == pytest.approx(metrics.aggregate_iqm(scores))


def test_iqm_interval_is_deterministic_seeded_and_sane():
    values = np.random.default_rng(2).normal(size=10)
    low, high = iqm_interval(values)
    assert iqm_interval(values) == (low, high)
    assert iqm_interval(values, seed=1) != (low, high)
    assert low < iqm(values) < high
    assert values.min() <= low and high <= values.max()
    low90, high90 = iqm_interval(values, confidence=0.9)
    assert low < low90 and high90 < high


def test_iqm_interval_needs_two_seeds():
    assert all(math.isnan(bound) for bound in iqm_interval(np.array([1.0])))
    assert all(math.isnan(bound) for bound in iqm_interval(np.array([1.0, np.nan, 2.0])))
    assert iqm_interval(np.full(5, 0.5)) == (0.5, 0.5)


def test_iqm_interval_covers_95_percent_at_10_seeds_on_normal_scores():
    # 8,000 samples (standard error 0.24 points) with 1,000 resamples each. Measured: 94.4%; the plain
    # percentile bootstrap (2.5% and 97.5% of the same resamples) 93.3%, below the band.
    coverage = _coverage(
        lambda values, index: iqm_interval(values, resamples=1000, seed=index),
        lambda rng, n: rng.normal(0.0, 1.0, n),
        truth=0.0,  # the population IQM of a symmetric distribution is its centre
        replications=8000,
    )
    assert 0.94 <= coverage <= 0.96


def test_aggregate_has_a_row_per_group_with_mean_iqm_and_intervals():
    scores = _scores(
        {
            ("hard", "b"): [1.0, 2.0, 3.0, 4.0],
            ("hard", "a"): [2.0, 4.0, 6.0, 8.0],
            ("easy", "b"): [5.0, 5.0, 6.0, 7.0],
        }
    )
    scores["ctr"] = 0.1 * scores["return"]
    summary = aggregate(scores, ["return", "ctr"])
    expected = ["preset", "agent", "seeds"]
    for metric in ["return", "ctr"]:
        expected += [metric, f"{metric}_low", f"{metric}_high"]
        expected += [f"{metric}_iqm", f"{metric}_iqm_low", f"{metric}_iqm_high"]
    assert list(summary.columns) == expected
    assert list(zip(summary["preset"], summary["agent"], strict=True)) == [
        ("hard", "b"),
        ("hard", "a"),
        ("easy", "b"),
    ]
    assert summary["seeds"].tolist() == [4, 4, 4]
    first = summary.iloc[0]
    assert first["return"] == pytest.approx(2.5)
    assert (first["return_low"], first["return_high"]) == pytest.approx(mean_interval([1.0, 2.0, 3.0, 4.0]))
    assert first["return_iqm"] == pytest.approx(2.5)  # mean of 2, 3
    assert (first["return_iqm_low"], first["return_iqm_high"]) == iqm_interval(np.array([1.0, 2.0, 3.0, 4.0]))
    assert summary.iloc[1]["ctr"] == pytest.approx(0.5)


def test_aggregate_skips_absent_keys():
    scores = _scores({("p", "a"): [1.0, 3.0], ("p", "b"): [2.0, 2.0]}).drop(columns="preset")
    summary = aggregate(scores, ["return"])
    assert list(summary.columns[:3]) == ["agent", "seeds", "return"]
    assert summary["return"].tolist() == [2.0, 2.0]
    everything = aggregate(scores, ["return"], by=())
    assert len(everything) == 1 and everything["seeds"].item() == 4


def test_aggregate_leaves_a_missing_metric_nan_and_skips_nan_seeds():
    scores = _scores({("p", "oracle"): [1.0, 2.0, 3.0], ("p", "random"): [0.0, 0.5, 1.0]})
    scores["ndcg"] = [np.nan, np.nan, np.nan, 0.2, np.nan, 0.4]
    summary = aggregate(scores, ["return", "ndcg"]).set_index("agent")
    ndcg_columns = ["ndcg", "ndcg_low", "ndcg_high", "ndcg_iqm", "ndcg_iqm_low", "ndcg_iqm_high"]
    assert summary.loc["oracle", ndcg_columns].isna().all()
    assert summary.loc["oracle", "return"] == pytest.approx(2.0)
    # The random agent's NaN seed is left out: the mean and intervals are those of 0.2 and 0.4.
    assert summary.loc["random", "ndcg"] == pytest.approx(0.3)
    assert (summary.loc["random", "ndcg_low"], summary.loc["random", "ndcg_high"]) == pytest.approx(
        mean_interval([0.2, 0.4])
    )


def test_aggregate_of_one_seed_has_no_interval():
    summary = aggregate(_scores({("p", "a"): [1.5]}), ["return"])
    assert summary["return"].item() == 1.5 and summary["return_iqm"].item() == 1.5
    for column in ["return_low", "return_high", "return_iqm_low", "return_iqm_high"]:
        assert math.isnan(summary[column].item())


# --- probability of improvement ----------------------------------------------------------------


def test_probability_of_improvement_counts_pairs_and_half_ties():
    probability, low, high = improvement_probability_interval([3.0, 4.0], [1.0, 2.0])
    assert (probability, low, high) == (1.0, 1.0, 1.0)  # X beats Y in every resample
    same = np.array([1.0, 2.0, 3.0])
    assert improvement_probability_interval(same, same)[0] == 0.5
    # Pairs (x, y): (1, 1) tie, (1, 3) loss, (2, 1) win, (2, 3) loss: (0.5 + 1) / 4.
    assert improvement_probability_interval([1.0, 2.0], [1.0, 3.0])[0] == pytest.approx(0.375)


def test_probability_of_improvement_interval_is_seeded_and_contains_the_estimate():
    rng = np.random.default_rng(4)
    x, y = rng.normal(0.5, 1.0, 10), rng.normal(0.0, 1.0, 8)
    probability, low, high = improvement_probability_interval(x, y)
    assert improvement_probability_interval(x, y) == (probability, low, high)
    # P(X > Y) moves in steps of 1/80 here: few resamples make the seed show.
    assert len({improvement_probability_interval(x, y, resamples=20, seed=s) for s in range(5)}) > 1
    assert 0.0 <= low < probability < high <= 1.0


def test_probability_of_improvement_needs_seeds_on_both_sides():
    assert all(math.isnan(value) for value in improvement_probability_interval([], [1.0, 2.0]))
    probability, low, high = improvement_probability_interval([3.0], [1.0, 2.0])
    assert probability == 1.0 and math.isnan(low) and math.isnan(high)


def test_probability_of_improvement_is_rliables():
    metrics = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 4, 10).astype(float), rng.integers(0, 4, 7).astype(float)  # with ties
    expected = metrics.probability_of_improvement(x[:, None], y[:, None])
    assert improvement_probability_interval(x, y)[0] == pytest.approx(expected)


def test_probability_of_improvement_table():
    scores = _scores(
        {
            ("easy", "ppo"): [3.0, 4.0, 5.0],
            ("easy", "random"): [1.0, 2.0, 2.5],
            ("hard", "ppo"): [1.0, 2.0, 3.0],
            ("hard", "random"): [1.0, 2.0, 3.0],
            ("hard", "oracle"): [9.0, 9.0, 9.0],
        }
    )
    table = probability_of_improvement(scores, "return")
    assert list(table.columns) == ["preset", "x", "y", "probability", "low", "high", "seeds_x", "seeds_y"]
    rows = {(row.preset, row.x, row.y): row for row in table.itertuples()}
    # Every ordered pair within a preset; "oracle" is only in "hard".
    assert len(rows) == 2 + 6
    assert rows[("easy", "ppo", "random")].probability == 1.0
    assert rows[("easy", "random", "ppo")].probability == 0.0
    assert rows[("hard", "ppo", "random")].probability == 0.5
    assert rows[("hard", "oracle", "ppo")].probability == 1.0
    assert rows[("hard", "ppo", "random")].seeds_x == 3

    chosen = probability_of_improvement(scores, pairs=[("ppo", "random")])
    assert list(zip(chosen["preset"], chosen["x"], chosen["y"], strict=True)) == [
        ("easy", "ppo", "random"),
        ("hard", "ppo", "random"),
    ]
    one_preset = probability_of_improvement(scores[scores["preset"] == "easy"].drop(columns="preset"))
    assert list(one_preset.columns[:2]) == ["x", "y"] and len(one_preset) == 2
    with pytest.raises(ValueError, match="typo"):
        probability_of_improvement(scores, pairs=[("ppo", "typo")])


def test_probability_of_improvement_of_a_missing_metric_is_nan():
    scores = _scores({("p", "a"): [1.0, 2.0], ("p", "b"): [0.0, 1.0]})
    scores["ndcg"] = np.nan
    table = probability_of_improvement(scores, "ndcg")
    assert table[["probability", "low", "high"]].isna().all().all()
    assert table["seeds_x"].tolist() == [0, 0]


# --- aggregate_over_presets --------------------------------------------------------------------


def test_aggregate_over_presets_pools_presets_and_resamples_within_them():
    scores = _scores(
        {
            ("easy", "a"): [1.0, 2.0, 3.0, 4.0],
            ("hard", "a"): [5.0, 6.0, 7.0, 8.0],
            ("easy", "b"): [0.0, 0.0, 1.0, 1.0],
        }
    )
    table = aggregate_over_presets(scores, "return").set_index("agent")
    assert table.loc["a", "presets"] == 2 and table.loc["a", "seeds"] == 8
    assert table.loc["a", "return_iqm"] == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    low, high = table.loc["a", ["return_iqm_low", "return_iqm_high"]]
    # Resampling within presets keeps four values from each: the IQM stays between 3 and 6.
    assert 3.0 <= low < 4.5 < high <= 6.0
    # One preset: the same as iqm and iqm_interval.
    assert table.loc["b", "return_iqm"] == iqm(np.array([0.0, 0.0, 1.0, 1.0]))
    assert (table.loc["b", "return_iqm_low"], table.loc["b", "return_iqm_high"]) == iqm_interval(
        np.array([0.0, 0.0, 1.0, 1.0])
    )


# --- per-seed scores, summarize and the table of `shopgym run` ----------------------------------


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
            low, high = mean_interval(mine[metric].to_numpy())
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


def test_one_seed_has_no_interval_in_the_summary_or_the_table():
    summary = summarize(_episodes(agents=("random",), seeds=1))
    assert summary[["return_low", "return_high", "ctr_low", "purchases_high"]].isna().all().all()
    line = format_table(summary).splitlines()[2]
    assert f"{summary['return'].item():.3f} [n/a (1 seed)]" in line
    assert line.count("n/a (1 seed)") == len(METRICS)
