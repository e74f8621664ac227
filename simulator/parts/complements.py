"""Complementary categories: buying in one category raises interest in its complements."""

from __future__ import annotations

import torch

from shopgym.simulator.errors import ConfigError
from shopgym.simulator.parts.base import Part, Step
from shopgym.simulator.tensors import rows


def category_lift(users: torch.Tensor, categories: torch.Tensor, num_users: int) -> torch.Tensor:
    """(C, C) lift of category pairs over shoppers, from (E,) event shoppers and (E, C)
    the multi-hot categories of each event's item. With s_uc the share of shopper u's
    events on items of category c (0 for a shopper without events)::

        lift[c, d] = mean_u s_uc s_ud / (mean_u s_uc * mean_u s_ud)     (0 where a mean is 0)

    1 means the shoppers' shares of c and d are uncorrelated, above 1 that shoppers
    who buy much of c also buy much of d (complements). For shoppers with one event
    each, s_uc is the indicator "u has an item in c" and this is
    P(c and d) / (P(c) P(d)); shares instead of indicators because shoppers with many
    events (MovieLens shoppers have dozens) have an item in nearly every category,
    which puts the indicator lift at 1 for every pair. The diagonal is not a pair
    (the complement weights ignore it).
    """
    device = categories.device
    users = users.to(device).long()
    counts = torch.zeros((num_users, categories.shape[1]), dtype=torch.float64, device=device)
    counts = counts.index_add(0, users, categories.double())
    events = torch.zeros(num_users, dtype=torch.float64, device=device).index_add(
        0, users, torch.ones(len(users), dtype=torch.float64, device=device)
    )
    share = counts / events[:, None].clamp(min=1)  # (U, C)
    mean = share.mean(0)  # (C,)
    joint = share.T @ share / num_users  # (C, C)
    expected = mean[:, None] * mean[None, :]
    return torch.where(expected > 0, joint / expected.clamp(min=1e-300), 0.0).float()


def complement_matrix(lift: torch.Tensor) -> torch.Tensor:
    """(C, C) category lift -> (C, C) row-stochastic complement weights A.

    The lift (``World.category_lift``, :func:`category_lift`) over the fitting data's
    training shoppers. The complements of c are the other categories bought together
    with c more than chance predicts::

        A[c, d] = max(lift[c, d] - 1, 0) / sum_{d' != c} max(lift[c, d'] - 1, 0)    (d != c)
        A[c, c] = 0

    The excess over 1 rather than the raw lift: a pair that co-occurs only as often as
    independence predicts (lift 1) is no complement, and raw lift rows would spread a
    purchase's interest almost evenly over every category. A category with no
    complement (every lift <= 1) has a zero row.
    """
    excess = (lift.float() - 1).clamp(min=0)
    excess = excess * (1 - torch.eye(len(lift), device=lift.device))
    return excess / excess.sum(1, keepdim=True).clamp(min=1e-12)


class Complements(Part):
    """State ``interest`` (B, C), complementary interest per item category.

    With w_i the item's categories normalised to sum 1 (``item_category`` rows) and A
    the World's complement weights (:func:`complement_matrix`), after every slate::

        interest <- complement_decay * interest + sum over purchased items i of w_i A

    and item j gains ``complement_weight * w_j . interest`` utility: after a purchase
    the shopper looks for what goes with it. Interest lasts the shopper's lifetime.
    """

    name = "complements"

    def __init__(self, simulator):
        super().__init__(simulator)
        world = simulator.world
        lift = getattr(world, "category_lift", None)
        if lift is None:
            raise ConfigError(
                "complement_weight > 0 needs a World with a category lift (co-occurrence of "
                "categories in the fitting data, World.category_lift); this World has none "
                "(synthetic, shipped or cached before the lift existed): add it with "
                "shopgym.simulator.build.with_data_statistics(world, interactions), refit it, "
                "or set complement_weight=0"
            )
        category = world.item_category
        if tuple(lift.shape) != (category.shape[1], category.shape[1]):
            raise ConfigError(
                f"World.category_lift has shape {tuple(lift.shape)}, expected {(category.shape[1],) * 2}"
            )
        self.weights = category / category.sum(1, keepdim=True).clamp(min=1)  # (M, C)
        self.complements = complement_matrix(lift.to(self.device))  # (C, C)
        self.state["interest"] = self.zeros(category.shape[1])

    def start(self, session: torch.Tensor, lifetime: torch.Tensor) -> None:
        self.state["interest"] = torch.where(lifetime[:, None], 0.0, self.state["interest"])

    def utility(self, items: torch.Tensor) -> torch.Tensor:
        return self.config.complement_weight * torch.einsum(
            "bc,bnc->bn", self.state["interest"], rows(self.weights, items)
        )

    def update(self, step: Step) -> None:
        bought = torch.einsum("bk,bkc->bc", step.purchases.float(), rows(self.weights, step.items))  # (B, C)
        decayed = self.config.complement_decay * self.state["interest"]
        self.state["interest"] = decayed + bought @ self.complements
