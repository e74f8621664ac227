"""Summary statistics over seeds: means with 95% bootstrap confidence intervals."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

METRICS = ("return", "ctr", "purchases")


def per_seed_scores(episodes: pd.DataFrame) -> pd.DataFrame:
    """One row per (agent, seed): mean ``return``, ``ctr`` (clicks per slate shown)
    and ``purchases`` per session over that seed's episodes."""
    grouped = episodes.groupby(["agent", "seed"], sort=False)
    scores = grouped.agg(
        **{
            "return": ("return", "mean"),
            "purchases": ("purchases", "mean"),
            "episodes": ("return", "size"),
        }
    )
    scores["ctr"] = grouped["clicks"].sum() / grouped["length"].sum()
    return scores.reset_index()


def bootstrap_ci(
    values: np.ndarray, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per seed)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = values[rng.integers(len(values), size=(resamples, len(values)))].mean(1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Normal-approximation interval of the mean of ``values``: for the episodes of one
    evaluation, many and independent, so that their mean is close to normal. A single
    value gives (value, value)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, mean
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    half = z * float(values.std(ddof=1)) / np.sqrt(len(values))
    return mean - half, mean + half


def summarize(episodes: pd.DataFrame) -> pd.DataFrame:
    """One row per agent: for each metric its mean over seeds and 95% CI bounds."""
    scores = per_seed_scores(episodes)
    rows = []
    for agent, group in scores.groupby("agent", sort=False):
        row = {"agent": agent, "seeds": len(group), "episodes": int(group["episodes"].sum())}
        for metric in METRICS:
            low, high = bootstrap_ci(group[metric].to_numpy())
            row.update({metric: group[metric].mean(), f"{metric}_low": low, f"{metric}_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def format_table(summary: pd.DataFrame) -> str:
    """A plain-text table: ``mean ± half-width [low, high]`` per metric."""
    headers = ["agent", "seeds", "return", "CTR (clicks/slate)", "purchases/session"]
    lines = []
    for _, row in summary.iterrows():
        cells = [str(row["agent"]), str(row["seeds"])]
        for metric in METRICS:
            low, high, mean = row[f"{metric}_low"], row[f"{metric}_high"], row[metric]
            cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
        lines.append(cells)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]

    def render(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(headers), rule, *(render(line) for line in lines)])
