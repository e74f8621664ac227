"""Small builders shared by the simulator tests."""

from __future__ import annotations

from dataclasses import replace

import torch

from shopgym.simulator.world import World


def sub_catalogue(world: World, keep: torch.Tensor) -> World:
    """``world`` selling only the (n,) World items ``keep``, in that order."""
    return replace(
        world,
        catalogue=world.catalogue[keep],
        item_category=world.item_category[keep],
        item_price=world.item_price[keep],
        item_popularity=world.item_popularity[keep],
    )
