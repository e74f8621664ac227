"""Complementary categories: buying in one category raises interest in its complements."""

from __future__ import annotations

import torch

from shopgym.simulator.errors import ConfigError
from shopgym.simulator.parts.base import Part, Step


def category_lift(users: torch.Tensor, categories: torch.Tensor, num_users: int) -> torch.Tensor:
    """(C, C) lift of category pairs over shoppers, from (E,) event shoppers and (E, C)
    the multi-hot categories of each event's item::

        h_uc = [shopper u has an event on an item of category c]
        P(c) = mean_u h_uc,   P(c, d) = mean_u h_uc h_ud
        lift[c, d] = P(c, d) / (P(c) P(d))        (0 where P(c) P(d) = 0)

    1 means c and d co-occur as often as independence predicts, above 1 that they go
    together (complements). The diagonal is 1 / P(c). ``num_users`` counts shoppers
    without events too (they lower every P alike).
    """
    has = torch.zeros((num_users, categories.shape[1]), dtype=torch.float64, device=categories.device)
    has = has.index_add(0, users.to(categories.device).long(), categories.double()).clamp(max=1)
    single = has.mean(0)  # (C,)
    joint = has.T @ has / num_users  # (C, C)
    expected = single[:, None] * single[None, :]
    lift = torch.where(expected > 0, joint / expected.clamp(min=1e-300), 0.0)
    return lift.float()


def complement_matrix(lift: torch.Tensor) -> torch.Tensor:
    """(C, C) category lift -> (C, C) row-stochastic complement weights A.

    ``lift[c, d] = P(both c and d) / (P(c) P(d))`` over the fitting data's training
    shoppers (``World.category_lift``). The complements of c are the other categories
    bought together with c more often than chance::

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
                "(synthetic, or built by an older shopgym): refit it or set complement_weight=0"
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
            "bc,bnc->bn", self.state["interest"], self.weights[items]
        )

    def update(self, step: Step) -> None:
        bought = torch.einsum("bk,bkc->bc", step.purchases.float(), self.weights[step.items])  # (B, C)
        decayed = self.config.complement_decay * self.state["interest"]
        self.state["interest"] = decayed + bought @ self.complements
