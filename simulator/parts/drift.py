"""Interest drift: consumed items pull the shopper's preference toward them."""

from __future__ import annotations

import torch

from shopgym.simulator.parts.base import Part, Step
from shopgym.simulator.tensors import rows


class Drift(Part):
    """State ``drift`` (B, r): a vector in the space of the World's item vectors.

    With e_i the unit-length standardised item representation of the World's model
    (``World.item_representation``), each clicked item moves the drift::

        d <- (1 - |rate|) d + rate * e_i          (rate < 0 pushes the shopper away)

    and adds ``drift_weight * d . e_j`` to the utility of every item j. Several clicks
    in one slate (PBM) pull toward their mean vector with weight ``1 - (1 - |rate|)^c``
    for c clicks, the order-free version of c updates in a row. |d| <= 1, so
    the term stays within ±drift_weight (utilities are standardised to unit spread).

    Where the drift acts: as an additive term over item vectors, not inside the
    model's user representation. For MF the two are the same, (p_u + d) . q_j =
    p_u . q_j + d . q_j; for the NCF Worlds the user vector passes through a
    non-linear tower, so moving it would change scores in ways no equation states
    and that differ between model families. The additive term means the same in
    every World, and the fitted model stays the untouched baseline of each shopper.
    Drift lasts the shopper's lifetime.
    """

    name = "drift"

    def __init__(self, simulator):
        super().__init__(simulator)
        self.item_vectors = simulator.unit_item_vectors  # (M, r)
        self.direction = 1.0 if self.config.drift_rate >= 0 else -1.0
        self.state["drift"] = self.zeros(self.item_vectors.shape[1])

    def start(self, session: torch.Tensor, lifetime: torch.Tensor) -> None:
        self.state["drift"] = torch.where(lifetime[:, None], 0.0, self.state["drift"])

    def utility(self, items: torch.Tensor) -> torch.Tensor:
        return self.config.drift_weight * torch.einsum(
            "br,bnr->bn", self.state["drift"], rows(self.item_vectors, items)
        )

    def update(self, step: Step) -> None:
        rate = self.config.drift_rate
        clicks = step.clicks.float()
        pulled = torch.einsum("bk,bkr->br", clicks, self.item_vectors[step.items])  # sum over clicked items
        count = clicks.sum(1, keepdim=True)
        # One step per click, applied as if the clicks came one after another toward their mean.
        keep = (1 - abs(rate)) ** count
        mean = pulled / count.clamp(min=1)
        self.state["drift"] = keep * self.state["drift"] + (1 - keep) * self.direction * mean
