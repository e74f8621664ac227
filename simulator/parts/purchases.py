"""Buying what was clicked: price, price sensitivity, and a money budget."""

from __future__ import annotations

import torch

from shopgym.simulator.parts.base import Part, Step


class Purchases(Part):
    """State: ``price_sensitivity`` (B,) of each shopper (drawn once per lifetime),
    ``money`` (B,) left this session in units of the median price (when budgeted).

    A clicked item j is bought with probability::

        sigmoid(purchase_bias + purchase_utility_weight * s_j - sensitivity_u * log(price_j / median))

    with ``sensitivity_u = purchase_price_weight * exp(price_sensitivity_spread * z_u)``,
    z_u standard normal; with a money budget (``money`` > 0) only if
    ``price_j / median <= money_u``, which the purchase then spends.
    """

    name = "purchases"

    def __init__(self, simulator):
        super().__init__(simulator)
        price = simulator.world.item_price
        self.relative_price = price / price.median()  # (M,)
        self.log_relative_price = self.relative_price.log()
        self.budgeted = self.config.money > 0
        # Without a spread every shopper is the median one, for good: nothing to draw.
        median = torch.full((self.num_shoppers,), self.config.purchase_price_weight, device=self.device)
        self.state |= {"price_sensitivity": median, "money": self.zeros()}

    def start(self, session: torch.Tensor, lifetime: torch.Tensor) -> None:
        config, state = self.config, self.state
        if config.price_sensitivity_spread:
            z = torch.randn(self.num_shoppers, generator=self.generator, device=self.device)
            sensitivity = config.purchase_price_weight * torch.exp(config.price_sensitivity_spread * z)
            state["price_sensitivity"] = torch.where(lifetime, sensitivity, state["price_sensitivity"])
        if self.budgeted:
            state["money"] = torch.where(session, config.money, state["money"])

    def probability(self, items: torch.Tensor, utility: torch.Tensor) -> torch.Tensor:
        """(B, n) probability of buying each of (B, n) items if it is clicked now."""
        config = self.config
        logit = (
            config.purchase_bias
            + config.purchase_utility_weight * utility
            - self.state["price_sensitivity"][:, None] * self.log_relative_price[items]
        )
        probability = torch.sigmoid(logit)
        if self.budgeted:
            probability = probability * (self.relative_price[items] <= self.state["money"][:, None])
        return probability

    def respond(self, items: torch.Tensor, utility: torch.Tensor, clicks: torch.Tensor) -> torch.Tensor:
        """(B, k) bool purchases of the clicked items of a slate."""
        if not self.simulator.multiple_clicks:
            # At most one click: decide for the clicked position only (one draw per row).
            position = clicks.to(torch.uint8).argmax(1, keepdim=True)
            uniform = torch.rand((clicks.shape[0], 1), generator=self.generator, device=self.device)
            bought = uniform < self.probability(items.gather(1, position), utility.gather(1, position))
            return clicks & bought
        uniform = torch.rand(clicks.shape, generator=self.generator, device=self.device)
        purchases = clicks & (uniform < self.probability(items, utility))
        if self.budgeted and purchases.shape[1] > 1:
            # Several purchases in one slate (PBM): keep them in slate order while money lasts.
            paid = torch.cumsum(purchases * self.relative_price[items], dim=1)
            purchases = purchases & (paid <= self.state["money"][:, None] + 1e-6)
        return purchases

    def update(self, step: Step) -> None:
        if self.budgeted:
            self.state["money"] = self.state["money"] - (step.purchases * step.price).sum(1)


def reward_per_click(config, purchase_probability: torch.Tensor, price: torch.Tensor) -> torch.Tensor:
    """(B, n) expected reward of a click on each item, given its purchase probability
    and its price in units of the median (what a myopic oracle weighs clicks by)."""
    if config.reward == "clicks":
        return torch.ones_like(purchase_probability)
    if config.reward == "purchases":
        return purchase_probability
    if config.reward == "revenue":
        return purchase_probability * price
    return config.click_reward + config.purchase_reward * purchase_probability


def step_reward(config, clicks: torch.Tensor, purchases: torch.Tensor, price: torch.Tensor) -> torch.Tensor:
    """(B,) reward of a slate from its (B, k) clicks, purchases and relative prices."""
    if config.reward == "clicks":
        return clicks.sum(1).float()
    if config.reward == "purchases":
        return purchases.sum(1).float()
    if config.reward == "revenue":
        return (purchases * price).sum(1)
    return config.click_reward * clicks.sum(1).float() + config.purchase_reward * purchases.sum(1).float()
