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


def same_rollouts(a: list, b: list) -> bool:
    """Every tensor of two rollouts (observations and outcomes, nested dicts included) equal."""
    for x, y in zip(a, b, strict=True):
        fields = x if isinstance(x, dict) else x.__dict__
        other = y if isinstance(y, dict) else y.__dict__
        if fields.keys() != other.keys():
            return False
        for key, value in fields.items():
            if isinstance(value, dict):
                if not same_rollouts([value], [other[key]]):
                    return False
            elif not torch.equal(value, other[key]):
                return False
    return True
