"""Calibrating the choice model's click level.

Given the temperature beta and the position decay, find the no-click utility s0 at
which a uniformly random slate of k catalogue items draws a click with a target
probability (a stated level, or one read off a real log with a random logging
policy). The click probability falls monotonically in s0, so bisection on the
exact expected probability over a fixed sample of (shopper, slate) pairs converges
to a deterministic answer.
"""

from __future__ import annotations

import math

import torch

from shopgym.simulator.choice import click_probability
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.world import Calibration, World


def random_slate_click_rate(
    world: World, calibration: Calibration, slate_size: int, samples: int = 20_000, seed: int = 0
) -> float:
    """Expected click probability of a uniformly random slate shown to a random shopper."""
    utilities = _random_slate_utilities(world, slate_size, samples, seed)
    bias = calibration.position_bias(slate_size).to(utilities.device)
    rate = click_probability(utilities, calibration.beta, calibration.no_click_utility, bias)
    return float(rate.mean())


def calibrate_click_level(
    world: World,
    target_click_rate: float,
    slate_size: int,
    beta: float = 1.0,
    position_decay: float = 0.2,
    samples: int = 20_000,
    seed: int = 0,
) -> Calibration:
    """Return a :class:`Calibration` whose random-slate click rate equals the target."""
    if not 0 < target_click_rate < 1:
        raise ConfigError(f"target click rate must be in (0, 1), got {target_click_rate}")
    if not (0 < beta < math.inf):
        raise ConfigError(f"beta must be a positive finite number, got {beta}")
    if not math.isfinite(position_decay):
        raise ConfigError(f"position_decay must be finite, got {position_decay}")
    if not 1 <= slate_size <= world.num_items:
        raise ConfigError(f"calibration slate size must be in [1, {world.num_items}], got {slate_size}")
    utilities = _random_slate_utilities(world, slate_size, samples, seed)
    bias = Calibration(position_decay=position_decay).position_bias(slate_size).to(utilities.device)
    low, high = -50.0, 50.0
    for _ in range(100):
        middle = (low + high) / 2
        rate = float(click_probability(utilities, beta, middle, bias).mean())
        # Higher no-click utility -> fewer clicks.
        low, high = (middle, high) if rate > target_click_rate else (low, middle)
    s0 = (low + high) / 2
    achieved = float(click_probability(utilities, beta, s0, bias).mean())
    if abs(achieved - target_click_rate) > 1e-3:
        raise ConfigError(
            f"no no-click utility in [-50, 50] gives click rate {target_click_rate} (closest: {achieved:.4f})"
        )
    target = {
        "kind": "stated level",
        "statistic": "click probability of a uniformly random slate",
        "value": target_click_rate,
        "slate_size": slate_size,
        "achieved": round(achieved, 6),
    }
    return Calibration(beta=beta, no_click_utility=s0, position_decay=position_decay, target=target)


def _random_slate_utilities(world: World, slate_size: int, samples: int, seed: int) -> torch.Tensor:
    """(samples, k) utilities of random distinct items for random shoppers."""
    generator = torch.Generator().manual_seed(seed)
    users = torch.randint(world.num_shoppers, (samples,), generator=generator)
    chunks = [
        torch.rand(min(4096, samples - start), world.num_items, generator=generator).topk(slate_size).indices
        for start in range(0, samples, 4096)
    ]
    return world.utilities(users, torch.cat(chunks))
