"""Complementary categories: the lift statistic, the complement weights, the interest
update and utility term, and complement_weight=0 giving exactly the plain simulator."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from shopgym.simulator import build
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError, DataError
from shopgym.simulator.interactions import load_ratings
from shopgym.simulator.parts.complements import category_lift, complement_matrix
from shopgym.simulator.parts.corpus import FIRST_CATEGORY_FEATURE
from shopgym.simulator.shoppers import ShopperSimulator
from shopgym.simulator.splits import Split
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


def test_category_lift_of_one_event_shoppers_is_the_co_occurrence_lift():
    # One event per shopper: s_uc is "u has an item in c", the lift P(c and d) / (P(c) P(d)).
    users = torch.tensor([0, 1, 2, 3])
    categories = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1]]).float()
    lift = category_lift(users, categories, num_users=5)  # shopper 4 has no events
    single = torch.tensor([3, 2, 1]) / 5
    joint = torch.tensor([[3, 2, 0], [2, 2, 0], [0, 0, 1]]) / 5
    assert torch.allclose(lift, joint / (single[:, None] * single[None, :]))


def test_category_lift_weighs_each_shopper_by_category_shares():
    users = torch.tensor([0, 0, 0, 0, 1, 1])
    categories = torch.tensor([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]]).float()
    lift = category_lift(users, categories, num_users=2)
    share = torch.tensor([[3 / 4, 2 / 4, 0], [1 / 2, 0, 1 / 2]])
    expected = (share.T @ share / 2) / (share.mean(0)[:, None] * share.mean(0)[None, :])
    assert torch.allclose(lift, expected)
    # A category nobody has: lift 0, not NaN.
    empty = category_lift(users, torch.cat([categories, torch.zeros(6, 1)], 1), num_users=2)
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
    with pytest.raises(DataError, match=r"category_lift has shape \(3, 3\), expected \(4, 4\)"):
        with_lift(synthetic, torch.ones(3, 3))
    with pytest.raises(DataError, match="finite"):
        with_lift(synthetic, torch.full((4, 4), -1.0))


def test_world_saves_loads_and_hashes_the_lift(synthetic, tmp_path):
    world = with_lift(synthetic, LIFT)
    assert world.hash != synthetic.hash
    assert with_lift(synthetic, LIFT * 1.01).hash != world.hash
    loaded = World.load(world.save(tmp_path / "lift"))
    assert torch.equal(loaded.category_lift, LIFT) and loaded.hash == world.hash
    # Without a lift, nothing is saved and the hash is the one it always was.
    assert "category_lift" not in torch.load(
        synthetic.save(tmp_path / "plain") / "tensors.pt", weights_only=True
    )
    assert World.load(tmp_path / "plain").category_lift is None


def test_build_lift_counts_training_events_on_catalogue_items():
    # 3 shoppers, model items 0..3; the catalogue sells items 1, 2, 3 (item 0 is dropped).
    split = Split(
        user_ids=np.arange(3),
        item_ids=np.arange(4),
        train=np.array([[0, 0], [0, 1], [0, 2], [1, 1], [2, 3], [2, 2]]),
        valid=np.zeros((0, 2), dtype=np.int64),
        test=np.zeros((0, 2), dtype=np.int64),
    )
    categories = torch.tensor([[1, 0], [0, 1], [1, 1]]).float()  # of catalogue items 1, 2, 3
    lift = build._category_lift(split, np.array([1, 2, 3]), categories)
    users = torch.tensor([0, 0, 1, 2, 2])
    events = categories[torch.tensor([0, 1, 0, 2, 1])]  # items 1, 2, 1, 3, 2
    assert torch.equal(lift, category_lift(users, events, 3))
    assert build._category_lift(split, np.array([1, 2, 3]), torch.zeros(3, 0)) is None


def test_the_shipped_world_holds_the_lift_of_the_embedded_data():
    shipped = World.load(build.shipped_world_path())
    assert shipped.category_lift is not None
    assert shipped.category_lift.shape == (shipped.num_categories,) * 2
    # The lift is what with_data_statistics computes from the data the World was fitted on.
    stripped = dataclasses.replace(shipped, category_lift=None, item_quality=None)
    recomputed = build.with_data_statistics(stripped, load_ratings())
    assert recomputed.hash == shipped.hash
    names = shipped.category_names
    a = complement_matrix(shipped.category_lift)
    assert names[int(a[names.index("Animation")].argmax())] == "Children"
    sim = simulator(shipped, ShopperConfig(complement_weight=1.0), batch=4)
    sim.step(torch.arange(5).expand(4, -1).clone())
    with pytest.raises(DataError, match="not the data"):
        build.with_data_statistics(stripped, dataclasses.replace(load_ratings(), sha256="other"))


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


def test_category_indicators_are_in_the_observation(synthetic):
    # Item feature columns 2 .. 2 + C are the categories that the complements act on.
    sim = simulator(with_lift(synthetic, LIFT), ShopperConfig(complement_weight=1.0), batch=4)
    observation = sim.observe()
    columns = slice(FIRST_CATEGORY_FEATURE, FIRST_CATEGORY_FEATURE + synthetic.num_categories)
    categories = observation["candidate_features"][..., columns]
    assert torch.equal(categories, synthetic.item_category[observation["candidate_ids"]])
    assert "interest" not in observation  # the latent interest is not observed


def test_snapshot_and_restore_carry_the_interest(synthetic):
    config = ShopperConfig(complement_weight=1.0, purchase_bias=20.0, new_item_fraction=0.2)
    sim = simulator(with_lift(synthetic, LIFT), config, batch=8)
    sim.step(torch.arange(5).expand(8, -1).clone())
    saved = sim.snapshot()
    first = [sim.step(torch.arange(5).expand(8, -1).clone()) for _ in range(3)]
    sim.restore(saved)
    again = [sim.step(torch.arange(5).expand(8, -1).clone()) for _ in range(3)]
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.reward, b.reward) and torch.equal(
            a.final_state["candidates"], b.final_state["candidates"]
        )
