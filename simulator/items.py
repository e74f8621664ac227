"""Item attributes: categories from data, and prices where the data has none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def category_matrix(item_ids: np.ndarray, movies: pd.DataFrame) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Multi-hot genres of ``item_ids`` from a :func:`load_movies` frame.

    Returns:
        (M, C) float32 indicators and the C category names (sorted). Items missing
        from ``movies`` or without genres get no category.
    """
    genres_of = dict(zip(movies["item"].to_numpy(), movies["genres"], strict=True))
    names = tuple(sorted({genre for genres in movies["genres"] for genre in genres}))
    column = {name: c for c, name in enumerate(names)}
    matrix = torch.zeros(len(item_ids), len(names))
    for row, item in enumerate(item_ids):
        for genre in genres_of.get(int(item), []):
            matrix[row, column[genre]] = 1.0
    return matrix, names


def lognormal_prices(
    categories: torch.Tensor,
    median_price: float = 10.0,
    category_spread: float = 0.3,
    item_spread: float = 0.25,
    seed: int = 0,
) -> torch.Tensor:
    """Seeded prices for data that has none: log-normal per primary category.

    Each category c gets a median ``median_price * exp(category_spread * z_c)``; an
    item's price is the median of its first category (in column order) times
    ``exp(item_spread * z_i)``, with z standard normal. Items without a category use
    ``median_price`` as their median.

    Args:
        categories: (M, C) multi-hot categories.
    Returns:
        (M,) positive prices, float32.
    """
    generator = torch.Generator().manual_seed(seed)
    num_items, num_categories = categories.shape
    category_log_median = category_spread * torch.randn(num_categories + 1, generator=generator)
    category_log_median[-1] = 0.0  # the "no category" bucket
    # An extra indicator column for "no category" makes argmax pick it only when alone.
    no_category = (categories.sum(1) == 0).float()[:, None]
    primary = torch.cat([categories, no_category], dim=1).argmax(1)
    item_noise = item_spread * torch.randn(num_items, generator=generator)
    return (median_price * torch.exp(category_log_median[primary] + item_noise)).float()
