"""Uniform subsets without replacement (Floyd's algorithm plus a shuffle)."""

import numpy as np
import pytest
import torch

from shopgym.simulator.sampling import uniform_subsets

METHODS = ["keys", "floyd"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("num_items", "size"), [(1, 1), (5, 5), (6, 2), (40, 20), (3458, 20)])
def test_rows_are_distinct_and_in_range(num_items, size, method):
    generator = torch.Generator().manual_seed(0)
    rows = uniform_subsets(2000, num_items, size, generator, torch.device("cpu"), method)
    assert rows.shape == (2000, size) and rows.dtype == torch.long
    assert int(rows.min()) >= 0 and int(rows.max()) < num_items
    ordered = rows.sort(1).values
    assert bool((ordered[:, 1:] != ordered[:, :-1]).all())


@pytest.mark.parametrize("method", METHODS)
def test_every_item_is_equally_likely_at_every_position(method):
    num_items, size, num_rows = 10, 4, 200_000
    generator = torch.Generator().manual_seed(1)
    rows = uniform_subsets(num_rows, num_items, size, generator, torch.device("cpu"), method)
    # counts[position, item] ~ num_rows / num_items each; a chi-square-sized tolerance.
    counts = np.stack([np.bincount(rows[:, p].numpy(), minlength=num_items) for p in range(size)])
    expected = num_rows / num_items
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)


@pytest.mark.parametrize("method", METHODS)
def test_every_subset_is_equally_likely(method):
    # All C(5, 2) = 10 unordered pairs appear with probability 1/10.
    rows = uniform_subsets(100_000, 5, 2, torch.Generator().manual_seed(2), torch.device("cpu"), method)
    codes = (rows.min(1).values * 5 + rows.max(1).values).numpy()
    frequencies = np.unique(codes, return_counts=True)[1] / len(codes)
    assert len(frequencies) == 10
    assert np.abs(frequencies - 0.1).max() < 0.005


def test_same_generator_seed_same_subsets():
    draw = lambda seed: uniform_subsets(64, 100, 7, torch.Generator().manual_seed(seed), torch.device("cpu"))  # noqa: E731
    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))
