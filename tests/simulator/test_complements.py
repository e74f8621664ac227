"""Complementary categories: the lift statistic, the complement weights, the interest
update and utility term, and complement_weight=0 giving exactly the plain simulator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.parts.complements import category_lift, complement_matrix
from shopgym.simulator.shoppers import ShopperSimulator
from shopgym.simulator.world import World

# Category 0 goes with 1 (lift 2), 2 with 3 (lift 1.5); the rest near independence or below.
LIFT = torch.tensor(
    [
        [4.0, 2.0, 0.5, 1.0],
        [2.0, 3.0, 1.2, 0.8],
        [0.5, 1.2, 2.0, 1.5],
        [1.0, 0.8, 1.5, 5.0],
    ]
)


def with_lift(world: World, lift: torch.Tensor) -> World:
    """``world`` carrying ``lift`` as its category lift."""
    if any(field.name == "category_lift" for field in dataclasses.fields(World)):
        return dataclasses.replace(world, category_lift=lift)
    copy = dataclasses.replace(world)
    object.__setattr__(copy, "category_lift", lift)  # a World without the field: the part reads the attribute
    return copy


def simulator(world, config, batch=8, seed=0):
    sim = ShopperSimulator(world, config, batch, shoppers="all", device="cpu", seed=seed)
    sim.reset()
    return sim


def test_category_lift_counts_shoppers_with_both_categories():
    # 4 shoppers, 3 categories; shopper 3 has no events.
    users = torch.tensor([0, 0, 1, 1, 2])
    categories = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1]]).float()
    lift = category_lift(users, categories, num_users=4)
    single = torch.tensor([2, 2, 1]) / 4  # shoppers 0, 1 have c0 and c1; shopper 2 has c2
    joint = torch.tensor([[2, 2, 0], [2, 2, 0], [0, 0, 1]]) / 4
    assert torch.allclose(lift, joint / (single[:, None] * single[None, :]))
    assert lift[0, 1] == 2.0 and lift[0, 2] == 0.0
    # A category nobody has: lift 0, not NaN.
    empty = category_lift(users, torch.cat([categories, torch.zeros(5, 1)], 1), num_users=4)
    assert bool(torch.isfinite(empty).all()) and bool((empty[3] == 0).all())


def test_complement_matrix_is_the_normalised_excess_lift_off_the_diagonal():
    weights = complement_matrix(LIFT)
    excess = (LIFT - 1).clamp(min=0) * (1 - torch.eye(4))
    assert torch.allclose(weights, excess / excess.sum(1, keepdim=True))
    assert bool((weights.diagonal() == 0).all())
    assert torch.allclose(weights.sum(1), torch.ones(4))
    assert weights[0, 1] == 1.0  # category 0's only complement
    # No complement at all: a zero row, not NaN.
    assert bool((complement_matrix(torch.ones(3, 3)) == 0).all())


def test_interest_update_and_utility_term(synthetic):
    world = with_lift(synthetic, LIFT)
    # Shoppers buy what they click, so purchases happen at every step.
    config = ShopperConfig(complement_weight=0.7, complement_decay=0.6, purchase_bias=20.0, patience=1e6)
    sim = simulator(world, config, batch=32)
    plain = simulator(world, dataclasses.replace(config, complement_weight=0.0), batch=32)
    part = sim.complements
    category = world.item_category
    w = category / category.sum(1, keepdim=True)
    a = complement_matrix(LIFT)
    rng = np.random.default_rng(0)
    bought_any = 0
    for _ in range(8):
        before = part.state["interest"]
        # The utility term: complement_weight * w_j . interest on top of everything else.
        items = sim.candidates
        plain.population.state["shopper"] = sim.shopper
        expected = plain.utilities(items) + 0.7 * torch.einsum("bc,bnc->bn", before, w[items])
        assert torch.allclose(sim.utilities(items), expected, atol=1e-6)

        slates = torch.from_numpy(rng.random((32, 20)).argsort(1)[:, :5].astype(np.int64))
        shown = sim.candidates.gather(1, slates)
        outcome = sim.step(slates)
        bought = torch.einsum("bk,bkc->bc", outcome.purchases.float(), w[shown])
        assert torch.allclose(part.state["interest"], 0.6 * before + bought @ a, atol=1e-6)
        bought_any += int(outcome.purchases.sum())
        # The category bought gains nothing itself; its complement does.
        own = (bought > 0) & (bought @ a == 0)
        assert bool((part.state["interest"][own] <= 0.6 * before[own] + 1e-6).all())
    assert bought_any > 20


def test_interest_lasts_the_lifetime_and_restarts_with_a_new_shopper(synthetic):
    config = ShopperConfig(complement_weight=1.0, purchase_bias=20.0, max_steps=3, patience=1e6)
    sim = simulator(with_lift(synthetic, LIFT), config, batch=16)
    for _ in range(2):
        sim.step(torch.arange(5).expand(16, -1).clone())
    assert float(sim.complements.state["interest"].abs().sum()) > 0
    outcome = sim.step(torch.arange(5).expand(16, -1).clone())  # max_steps: every episode ends
    assert bool(outcome.truncated.all())
    assert bool((sim.complements.state["interest"] == 0).all())


def test_a_world_without_lift_is_a_config_error(synthetic):
    with pytest.raises(ConfigError, match="category lift"):
        simulator(synthetic, ShopperConfig(complement_weight=0.5))
    with pytest.raises(ConfigError, match="shape"):
        simulator(with_lift(synthetic, torch.ones(3, 3)), ShopperConfig(complement_weight=0.5))


def rollout(world, config, seed, steps=20, batch=16):
    sim = simulator(world, config, batch=batch, seed=seed)
    rng = np.random.default_rng(0)
    record = [sim.observe()]
    for _ in range(steps):
        slates = torch.from_numpy(rng.random((batch, 20)).argsort(1)[:, :5].astype(np.int64))
        outcome = sim.step(slates)
        record.append((outcome.reward, outcome.clicks, outcome.purchases, outcome.done, sim.shopper.clone()))
        record.append(sim.observe())
    return record


def same(a, b) -> bool:
    for x, y in zip(a, b, strict=True):
        pairs = zip(x.values(), y.values(), strict=True) if isinstance(x, dict) else zip(x, y, strict=True)
        if not all(torch.equal(u, v) for u, v in pairs):
            return False
    return True


def test_switched_off_is_the_plain_simulator(synthetic):
    world = with_lift(synthetic, LIFT)
    base = {"purchase_bias": 2.0, "max_steps": 10}
    reference = rollout(synthetic, ShopperConfig(**base), seed=3)
    assert same(reference, rollout(world, ShopperConfig(**base, complement_weight=0.0), seed=3))
    assert simulator(world, ShopperConfig(**base)).complements is None
    assert not same(reference, rollout(world, ShopperConfig(**base, complement_weight=2.0), seed=3))
