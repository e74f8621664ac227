"""Reward curves with confidence bands, from per-episode records alone."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from shopgym.experiments.plots import plot_reward_curves, reward_curves


def _records(agents=("random", "oracle"), seeds=3, rounds=50, num_envs=4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for level, agent in enumerate(agents):
        for seed in range(seeds):
            for r in range(rounds):
                for index in range(num_envs):
                    rows.append(
                        {
                            "agent": agent,
                            "seed": seed,
                            "episode": r * num_envs + index,
                            "round": r,
                            "env_index": index,
                            "return": level + 0.01 * r + rng.normal(0, 0.1),
                            "clicks": 1,
                            "purchases": 0,
                            "length": 3,
                        }
                    )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("rounds", "points"), [(50, 20), (20, 20), (7, 7), (1, 1)])
def test_curves_have_at_most_20_increasing_points_per_agent(rounds, points):
    curves = reward_curves(_records(rounds=rounds))
    assert list(curves.columns) == ["agent", "episode", "mean", "low", "high"]
    assert curves["agent"].unique().tolist() == ["random", "oracle"]
    for _, curve in curves.groupby("agent"):
        assert len(curve) == points
        assert (np.diff(curve["episode"].to_numpy()) > 0).all()
        # The last point covers all of a seed's episodes (4 per round).
        assert curve["episode"].iloc[-1] == pytest.approx(4 * rounds)
        assert (curve["low"] <= curve["mean"] + 1e-12).all()
        assert (curve["mean"] <= curve["high"] + 1e-12).all()


def test_curve_points_are_block_means_averaged_over_seeds():
    records = _records(agents=("a",), seeds=2, rounds=40, num_envs=2)
    curve = reward_curves(records, max_points=4)  # blocks of 10 rounds
    assert len(curve) == 4
    np.testing.assert_allclose(curve["episode"], [20, 40, 60, 80])
    for block, (_, point) in enumerate(curve.iterrows()):
        in_block = records[records["round"] // 10 == block]
        per_seed = in_block.groupby("seed")["return"].mean()
        assert point["mean"] == pytest.approx(per_seed.mean())
    # The slope of the returns (0.01 per round) shows up across blocks.
    assert (np.diff(curve["mean"]) > 0).all()


def test_plot_writes_a_non_empty_png(tmp_path):
    path = plot_reward_curves(_records(), tmp_path / "curve.png")
    assert path == tmp_path / "curve.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


def test_reward_curves_emit_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reward_curves(_records(rounds=5))


def test_importing_the_plots_leaves_the_matplotlib_backend_alone():
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('svg'); "
        "import shopgym.experiments.plots, shopgym.experiments.runner; print(matplotlib.get_backend())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "svg"
