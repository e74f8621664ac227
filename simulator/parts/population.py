"""Who the shoppers are: rows hold members of the World's population."""

from __future__ import annotations

import torch

from shopgym.simulator.errors import ConfigError
from shopgym.simulator.parts.base import Part


class Population(Part):
    """State ``shopper`` (B,) int64: the World shopper index each row holds.

    A row's shopper is one lifetime: it keeps its index (and every part's persistent
    state) across its sessions. New lifetimes draw uniformly with replacement from
    the ``shoppers`` part of the population, so two rows may hold twins of one fitted
    shopper; their states are separate.

    ``members`` are the World's train, test or all shoppers (``population="fitted"``),
    or with ``population="new"`` the matching half of the pool of new shoppers that
    :func:`shopgym.simulator.cold_start.new_shopper_world` appended to the World's
    model (:func:`~shopgym.simulator.cold_start.pool_members`): shoppers drawn from a
    mixture fitted to the World's user side, never a fitted one.
    """

    name = "population"

    def __init__(self, simulator, members: torch.Tensor):
        super().__init__(simulator)
        if len(members) == 0:
            raise ConfigError(f"the World has no {simulator.shoppers!r} shoppers")
        self.members = members
        self.state["shopper"] = self.zeros(dtype=torch.long)

    def start(self, session: torch.Tensor, lifetime: torch.Tensor) -> None:
        rows = torch.randint(
            len(self.members), (self.num_shoppers,), generator=self.generator, device=self.device
        )
        self.state["shopper"] = torch.where(lifetime, self.members[rows], self.state["shopper"])
