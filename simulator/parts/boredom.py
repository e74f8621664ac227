"""Boredom per category: repetition lowers utility, time heals."""

from __future__ import annotations

import torch

from shopgym.simulator.parts.base import Part, Step
from shopgym.simulator.tensors import rows


class Boredom(Part):
    """State ``boredom`` (B, C), one level per item category.

    With w_i the item's categories normalised to sum 1 (``item_category`` rows),
    after every slate::

        boredom <- boredom_decay * boredom + sum over clicked items of w_i

    and item j loses ``boredom_weight * w_j . boredom`` utility, so showing one
    category again and again stops paying: diversity matters. Boredom lasts the
    shopper's lifetime and decays by ``boredom_decay`` per day away as well.
    """

    name = "boredom"

    def __init__(self, simulator):
        super().__init__(simulator)
        category = simulator.world.item_category
        self.weights = category / category.sum(1, keepdim=True).clamp(min=1)  # (M, C)
        self.state["boredom"] = self.zeros(category.shape[1])

    def start(self, session: torch.Tensor, lifetime: torch.Tensor) -> None:
        self.state["boredom"] = torch.where(lifetime[:, None], 0.0, self.state["boredom"])

    def utility(self, items: torch.Tensor) -> torch.Tensor:
        return -self.config.boredom_weight * torch.einsum(
            "bc,bnc->bn", self.state["boredom"], rows(self.weights, items)
        )

    def update(self, step: Step) -> None:
        consumed = torch.einsum("bk,bkc->bc", step.clicks.float(), rows(self.weights, step.items))
        self.state["boredom"] = self.config.boredom_decay * self.state["boredom"] + consumed

    def rest(self, days: torch.Tensor) -> None:
        """Decay the boredom of rows away for (B,) ``days`` (0 for the others)."""
        self.state["boredom"] = self.state["boredom"] * (self.config.boredom_decay ** days.float())[:, None]
