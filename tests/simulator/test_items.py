"""Seeded prices for data without prices: reproducible, positive, per category."""

from __future__ import annotations

import torch

from shopgym.simulator.items import lognormal_prices


def test_prices_are_seeded_positive_and_shaped_by_category():
    categories = torch.zeros(4000, 3)
    categories[:2000, 0] = 1.0
    categories[2000:3000, 1] = 1.0  # the last 1000 items have no category
    prices = lognormal_prices(categories, median_price=10.0, seed=7)
    assert prices.shape == (4000,) and prices.dtype == torch.float32 and bool((prices > 0).all())
    assert torch.equal(prices, lognormal_prices(categories, median_price=10.0, seed=7))
    assert not torch.equal(prices, lognormal_prices(categories, median_price=10.0, seed=8))
    # Items without a category centre on the stated median; log prices spread by about
    # item_spread (0.25) around their category's median.
    uncategorised = prices[3000:].log()
    assert abs(float(uncategorised.median().exp()) - 10.0) < 0.5
    assert abs(float(uncategorised.std()) - 0.25) < 0.03
    # Twice the median price gives twice every price.
    torch.testing.assert_close(lognormal_prices(categories, median_price=20.0, seed=7), 2 * prices)
