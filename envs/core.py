"""What the single, vector and SB3 environments share: building the batched
simulator from keyword arguments, and turning its tensors into NumPy."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shopgym.simulator.build import resolve_world
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.shoppers import ShopperSimulator, StepOutcome
from shopgym.simulator.world import World

CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(ShopperConfig))


def make_simulator(
    num_shoppers: int,
    world: World | str | Path | None,
    shoppers: str,
    device: str | torch.device,
    config: ShopperConfig | None,
    overrides: dict[str, Any],
) -> ShopperSimulator:
    """Build the simulator; ``overrides`` are ``ShopperConfig`` fields given as keywords."""
    config = with_options(config or ShopperConfig(), overrides)
    return ShopperSimulator(resolve_world(world, device), config, num_shoppers, shoppers, device)


def with_options(config: Any, overrides: dict[str, Any]) -> Any:
    """The frozen dataclass ``config`` with ``overrides`` (environment options) applied;
    an unknown option is a ConfigError that lists the valid ones."""
    fields = [field.name for field in dataclasses.fields(config)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(f"unknown environment option(s) {unknown}; valid options: {fields}")
    return dataclasses.replace(config, **overrides)


def to_numpy(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Batched tensors -> batched NumPy arrays (float32 and int64)."""
    return {key: value.cpu().numpy() for key, value in tensors.items()}


def row(batch: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    """One shopper's entries of a batched dict."""
    return {key: value[index] for key, value in batch.items()}


def step_info(simulator: ShopperSimulator, outcome: StepOutcome | None, oracle_info: bool) -> dict:
    """Batched info: ``clicks`` and ``purchases`` (B, k) of the slate just shown, and
    with ``oracle_info`` the true ``utilities`` (B, N) of the next candidates."""
    info: dict[str, np.ndarray] = {}
    if outcome is not None:
        info["clicks"] = outcome.clicks.cpu().numpy()
        info["purchases"] = outcome.purchases.cpu().numpy()
    if oracle_info:
        info["utilities"] = simulator.utilities(simulator.candidates).cpu().numpy()
    return info


def final_observations(
    simulator: ShopperSimulator, outcome: StepOutcome, done: np.ndarray
) -> dict[int, dict]:
    """The observation each episode that ended in ``outcome`` ended in, by shopper index."""
    final = to_numpy(simulator.observe(outcome.final_state))
    return {int(index): row(final, index) for index in np.flatnonzero(done)}
