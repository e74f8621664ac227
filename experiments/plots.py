"""Reward curves with confidence bands, from per-episode records alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from shopgym.experiments.stats import bootstrap_ci


def reward_curves(episodes: pd.DataFrame, max_points: int = 20) -> pd.DataFrame:
    """Mean return per evaluation round, across seeds.

    Round r holds every parallel shopper slot's (r+1)-th session (see
    :func:`shopgym.experiments.evaluation.evaluate`); rounds are merged into at most
    ``max_points`` consecutive blocks. Per seed, a block's value is its mean return;
    across seeds, the mean with a 95% bootstrap interval.

    Returns:
        Columns ``agent, episode`` (episodes completed by the block's end), ``mean, low, high``.
    """
    rows = []
    for agent, group in episodes.groupby("agent", sort=False):
        rounds = int(group["round"].max()) + 1
        block_of_round = np.arange(rounds) * min(max_points, rounds) // rounds
        blocks = group.assign(block=block_of_round[group["round"].to_numpy()])
        per_seed = blocks.groupby(["block", "seed"])["return"].mean().unstack("seed")  # (blocks, seeds)
        episodes_per_seed = blocks.groupby(["block", "seed"]).size().unstack("seed").mean(axis=1).cumsum()
        for block, values in per_seed.iterrows():
            values = values.dropna().to_numpy()
            low, high = bootstrap_ci(values)
            rows.append(
                {
                    "agent": agent,
                    "episode": float(episodes_per_seed[block]),
                    "mean": values.mean(),
                    "low": low,
                    "high": high,
                }
            )
    return pd.DataFrame(rows)


def plot_reward_curves(episodes: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Write a PNG of return vs evaluation episode, one line and 95% band per agent."""
    seeds = episodes.groupby("agent")["seed"].nunique().min()
    return _plot_bands(
        reward_curves(episodes),
        "episode",
        path,
        xlabel="evaluation episode (held-out shoppers)",
        ylabel="return per episode",
        title=title or f"Reward curves: mean and 95% bootstrap CI over {seeds} seeds",
    )


def learning_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean held-out return at each training point, across seeds.

    Args:
        curves: learning-curve records (``agent, seed, steps, return``, ...), one row
            per (agent, seed, point), as the runner writes them.

    Returns:
        Columns ``agent, steps, mean, low, high`` (95% bootstrap interval over seeds).
    """
    rows = []
    for (agent, steps), group in curves.groupby(["agent", "steps"], sort=False):
        values = group["return"].to_numpy()
        low, high = bootstrap_ci(values)
        rows.append({"agent": agent, "steps": steps, "mean": values.mean(), "low": low, "high": high})
    return pd.DataFrame(rows).sort_values(["agent", "steps"], kind="stable")


def plot_learning_curves(curves: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Write a PNG of held-out return vs training slates, one line and 95% band per agent."""
    seeds = curves.groupby("agent")["seed"].nunique().min()
    return _plot_bands(
        learning_curves(curves),
        "steps",
        path,
        xlabel="training slates (shopper-steps on train shoppers)",
        ylabel="return per episode (held-out shoppers)",
        title=title or f"Learning curves: mean and 95% bootstrap CI over {seeds} seeds",
        marker="o",
    )


def _plot_bands(
    summary: pd.DataFrame, x: str, path: str | Path, xlabel: str, ylabel: str, title: str, marker: str = ""
) -> Path:
    """One line (``mean`` against ``x``) and its ``low``..``high`` band per agent, saved as a PNG."""
    # A bare Figure draws to files without pyplot, so importing this module leaves the
    # caller's backend (a notebook's) as it was.
    figure = Figure(figsize=(7, 4.2), dpi=120)
    axis = figure.subplots()
    for agent, curve in summary.groupby("agent", sort=False):
        axis.plot(curve[x], curve["mean"], marker=marker or None, markersize=3, label=agent, linewidth=1.8)
        axis.fill_between(curve[x], curve["low"], curve["high"], alpha=0.25)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(frameon=False, fontsize=8, loc="best")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    return path
