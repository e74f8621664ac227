"""Cold start: new shoppers from a mixture fitted to the World's user side, new items
that enter mid-episode, and both switched off giving exactly the plain simulator."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from shopgym.simulator.cold_start import (
    fit_mixture,
    new_shopper_world,
    pool_members,
    user_parameter_names,
    user_parameters,
    with_new_users,
)
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.models import build_model
from shopgym.simulator.parts.corpus import FIRST_CATEGORY_FEATURE, POPULARITY_FEATURE, PRICE_FEATURE
from shopgym.simulator.shoppers import ShopperSimulator

from .helpers import same_rollouts


def random_slates(rng: np.random.Generator, batch: int, k: int, n: int) -> torch.Tensor:
    return torch.from_numpy(rng.random((batch, n)).argsort(1)[:, :k].astype(np.int64))


def simulator(world, config, batch=8, seed=0, shoppers="train"):
    sim = ShopperSimulator(world, config, batch, shoppers=shoppers, device="cpu", seed=seed)
    sim.reset()
    return sim


# ------------------------------------------------------------------------------- the mixture
def test_mixture_recovers_known_components():
    generator = torch.Generator().manual_seed(1)
    means = torch.tensor([[-6.0, 0.0, 2.0], [0.0, 6.0, -2.0], [6.0, -3.0, 0.0]], dtype=torch.float64)
    stds = torch.tensor([[0.5, 1.0, 0.3], [1.0, 0.4, 0.6], [0.7, 0.7, 1.2]], dtype=torch.float64)
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    component = torch.multinomial(weights, 6000, replacement=True, generator=generator)
    data = means[component] + stds[component] * torch.randn(6000, 3, generator=generator, dtype=torch.float64)

    fitted = fit_mixture(data, 3, seed=0)
    order = fitted.means[:, 0].argsort()  # the components come back in any order
    assert torch.allclose(fitted.means[order], means, atol=0.1)
    assert torch.allclose(fitted.variances[order].sqrt(), stds, rtol=0.08)
    assert torch.allclose(fitted.weights[order], weights, atol=0.03)
    # Deterministic for a seed, and a draw from it looks like the data.
    again = fit_mixture(data, 3, seed=0)
    assert torch.equal(again.means, fitted.means) and torch.equal(again.variances, fitted.variances)
    sample = fitted.sample(6000, torch.Generator().manual_seed(2))
    assert torch.allclose(sample.mean(0), data.mean(0), atol=0.2)


def test_mixture_handles_constant_columns_and_few_points():
    data = torch.cat([torch.randn(5, 2, generator=torch.Generator().manual_seed(0)), torch.zeros(5, 1)], 1)
    fitted = fit_mixture(data, 8)  # capped at 5 components
    assert len(fitted.weights) == 5
    assert bool(torch.isfinite(fitted.means).all() & (fitted.variances > 0).all())
    with pytest.raises(ConfigError):
        fit_mixture(data, 0)


# ------------------------------------------------------------------------- models and Worlds
@pytest.mark.parametrize(
    ("name", "hyperparameters", "expected"),
    [
        ("mf", {"dim": 3}, ["user_embedding", "user_bias"]),
        ("bpr", {"dim": 3}, ["user_embedding", "user_bias"]),
        ("gmf", {"dim": 4}, ["user_embedding"]),
        ("mlp", {"layers": [8, 4]}, ["user_embedding"]),
        ("neumf", {"dim": 4, "layers": [8, 4]}, ["gmf.user_embedding", "mlp.user_embedding"]),
    ],
)
def test_new_users_score_like_their_parameters_in_every_model(name, hyperparameters, expected):
    model = build_model(name, 6, 5, hyperparameters)
    assert user_parameter_names(model) == expected
    width = user_parameters(model).shape[1]
    new = torch.randn(3, width, generator=torch.Generator().manual_seed(0))
    grown = with_new_users(model, new)
    assert grown.num_users == 9 and all(m.num_users == 9 for m in grown.modules() if hasattr(m, "num_users"))
    assert model.num_users == 6  # the original is untouched
    assert torch.equal(user_parameters(grown, torch.arange(6, 9)), new)
    items = torch.arange(5).expand(6, -1)
    with torch.no_grad():
        assert torch.equal(grown(torch.arange(6), items), model(torch.arange(6), items))


def test_new_shopper_world_holds_a_cached_pool(synthetic):
    world = new_shopper_world(synthetic, components=3, pool=64, seed=0)
    assert new_shopper_world(synthetic, components=3, pool=64, seed=0) is world  # cached
    assert world.num_shoppers == synthetic.num_shoppers + 64
    # The World's standardisation and calibration stay; the fitted shoppers stay as they were.
    assert (world.utility_shift, world.utility_scale) == (synthetic.utility_shift, synthetic.utility_scale)
    assert world.calibration == synthetic.calibration
    fitted = torch.arange(synthetic.num_shoppers)
    assert torch.equal(user_parameters(world.model, fitted), user_parameters(synthetic.model))
    assert torch.equal(world.test_shopper[fitted], synthetic.test_shopper)
    train, test = pool_members(world, "train"), pool_members(world, "test")
    assert len(train) == len(test) == 32 and not set(train.tolist()) & set(test.tolist())
    assert int(train.min()) >= synthetic.num_shoppers
    assert torch.equal(pool_members(world, "all"), torch.arange(200, 264))
    # A fixed function of the World and the seed; another seed, another pool.
    other = new_shopper_world(synthetic, components=3, pool=64, seed=1)
    assert not torch.equal(user_parameters(other.model, train), user_parameters(world.model, train))
    assert world.hash != synthetic.hash
    # Drawn from the fit to the train shoppers: close in mean and spread.
    drawn = user_parameters(new_shopper_world(synthetic, 3, 4096, 0).model, torch.arange(200, 4296))
    source = user_parameters(synthetic.model, torch.nonzero(~synthetic.test_shopper).flatten())
    assert torch.allclose(drawn.mean(0), source.mean(0), atol=0.25)
    assert torch.allclose(drawn.std(0), source.std(0), atol=0.25)


def test_new_shoppers_come_from_the_pool_and_their_utilities_from_it(synthetic):
    config = ShopperConfig(population="new", new_shopper_components=3, new_shopper_pool=64)
    pool = new_shopper_world(synthetic, 3, 64, 0)
    for part in ("train", "test"):
        sim = simulator(synthetic, config, batch=32, shoppers=part)
        members = set(pool_members(pool, part).tolist())
        seen = set()
        for seed in range(3):
            sim.reset(seed=seed)
            seen |= set(sim.shopper.tolist())
        assert seen <= members and len(seen) > 10
    items = sim.candidates
    parameters = user_parameters(pool.model, sim.shopper)
    embedding, bias = parameters[:, :-1], parameters[:, -1]
    model = synthetic.model
    raw = torch.einsum("bd,bnd->bn", embedding, model.item_embedding[items]) + model.item_bias[items]
    raw = raw + bias[:, None] + model.global_bias
    expected = (raw - synthetic.utility_shift) / synthetic.utility_scale
    assert torch.allclose(sim.utilities(items), expected, atol=1e-5)
    # No history: a new shopper starts with empty slots.
    assert bool((sim.clicked_history == synthetic.num_items).all())


def test_a_simulator_built_from_a_new_shopper_world_keeps_its_pool(synthetic):
    # Planning copies (the oracle's lookahead) are built from simulator.world and its config.
    config = ShopperConfig(population="new", new_shopper_components=3, new_shopper_pool=64)
    sim = simulator(synthetic, config)
    copy = simulator(sim.world, config)
    assert copy.world is sim.world
    assert torch.equal(copy.population.members, sim.population.members)
    with pytest.raises(ConfigError, match="already holds"):
        new_shopper_world(sim.world, components=3, pool=32, seed=0)


def test_new_population_does_not_depend_on_the_env_seed(synthetic):
    config = ShopperConfig(population="new", new_shopper_components=3, new_shopper_pool=64)
    a, b = simulator(synthetic, config, seed=0), simulator(synthetic, config, seed=5)
    assert a.world.hash == b.world.hash
    assert not torch.equal(a.shopper, b.shopper)


# ------------------------------------------------------------------------------ new items
def test_new_items_arrive_on_their_step_and_all_can_appear(synthetic):
    config = ShopperConfig(
        num_candidates=20, max_steps=12, patience=1e6, new_item_fraction=0.25, new_item_arrival_steps=8
    )
    batch = 64
    sim = simulator(synthetic, config, batch=batch)
    arrival = sim.corpus.arrival
    new = torch.nonzero(arrival > 0).flatten()
    assert len(new) == 10 and bool((arrival[new] >= 1).all() & (arrival[new] <= 8).all())
    assert torch.equal(simulator(synthetic, config, seed=3).corpus.arrival, arrival)  # not the env seed
    rng = np.random.default_rng(0)
    appeared_at: dict[int, int] = {}
    for _ in range(3 * config.max_steps):
        # Every row's candidates are available at the row's episode step.
        assert bool((arrival[sim.candidates] <= sim.episode_steps[:, None]).all())
        assert bool((sim.candidates.sort(1).values.diff(1) > 0).all())
        for item in new.tolist():
            rows = (sim.candidates == item).any(1)
            if rows.any():
                appeared_at[item] = min(appeared_at.get(item, 99), int(sim.episode_steps[rows].min()))
        outcome = sim.step(random_slates(rng, batch, config.slate_size, config.num_candidates))
        # The final observation of an ended episode obeys its own episode's step.
        ended = outcome.done
        if ended.any():
            final = outcome.final_state["candidates"][ended]
            assert bool((arrival[final] <= config.max_steps).all())
    assert set(appeared_at) == set(new.tolist())  # every new item appears after arrival
    assert all(appeared_at[item] >= int(arrival[item]) for item in appeared_at)


def test_new_items_with_popularity_sampling_respect_arrival(synthetic):
    config = ShopperConfig(candidate_sampling="popularity", new_item_fraction=0.4, new_item_arrival_steps=3)
    sim = simulator(synthetic, config, batch=32)
    for _ in range(6):
        assert bool((sim.corpus.arrival[sim.candidates] <= sim.episode_steps[:, None]).all())
        sim.step(torch.arange(5).expand(32, -1).clone())


def test_new_items_features_are_content_only(synthetic):
    world = replace(synthetic, learned_item_features=torch.randn(synthetic.num_items, 3))
    content_columns = slice(PRICE_FEATURE, FIRST_CATEGORY_FEATURE + world.num_categories)
    for kind in ("exact", "noisy", "learned", "content"):
        plain = simulator(world, ShopperConfig(item_features=kind), batch=2)
        held = simulator(world, ShopperConfig(item_features=kind, new_item_fraction=0.3), batch=2)
        new = held.corpus.arrival > 0
        table, reference = held.item_features(), plain.item_features()
        assert bool((table[new, POPULARITY_FEATURE] == 0).all())
        assert torch.equal(table[new, content_columns], reference[new, content_columns])
        assert bool((table[new, FIRST_CATEGORY_FEATURE + world.num_categories :] == 0).all())
        assert torch.equal(table[~new], reference[~new])  # the other items keep every feature
        ids = held.observe()["candidate_ids"]
        assert torch.equal(held.observe()["candidate_features"], table[ids])


def test_too_many_new_items_is_a_config_error(synthetic):
    with pytest.raises(ConfigError, match="num_candidates"):
        simulator(synthetic, ShopperConfig(num_candidates=20, new_item_fraction=0.6))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"new_shopper_components": 0},
        {"new_shopper_pool": 1},
        {"new_shopper_seed": -1},
        {"new_item_fraction": 1.0},
    ],
)
def test_config_rejects_bad_cold_start_values(kwargs):
    with pytest.raises(ConfigError):
        ShopperConfig(**kwargs)


# --------------------------------------------------------------------- switched off: plain
def rollout(world, config, seed, steps=25, batch=16):
    sim = simulator(world, config, batch=batch, seed=seed)
    rng = np.random.default_rng(0)
    record = [sim.observe()]
    for _ in range(steps):
        record.append(sim.step(random_slates(rng, batch, config.slate_size, config.num_candidates)))
        record.append({"shopper": sim.shopper.clone(), **sim.observe()})
    return record


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_switched_off_is_the_plain_simulator(synthetic, sampling):
    dynamics = {"candidate_sampling": sampling, "max_steps": 7, "patience": 4.0, "boredom_weight": 0.5}
    plain = ShopperConfig(**dynamics)
    off = ShopperConfig(**dynamics, population="fitted", new_item_fraction=0.0, complement_weight=0.0)
    # The cold-start knobs do nothing while their switches are off.
    knobs = ShopperConfig(**dynamics, new_shopper_components=2, new_shopper_pool=10, new_item_arrival_steps=3)
    reference = rollout(synthetic, plain, seed=4)
    assert same_rollouts(reference, rollout(synthetic, off, seed=4))
    assert same_rollouts(reference, rollout(synthetic, knobs, seed=4))
    held = ShopperConfig(**dynamics, new_item_fraction=0.2)
    assert not same_rollouts(reference, rollout(synthetic, held, seed=4))


def test_other_model_families_get_new_shoppers(synthetic):
    # The synthetic World's tables around an untrained NeuMF (its standardisation does not matter here).
    model = build_model("neumf", synthetic.num_shoppers, synthetic.num_items, {"dim": 4, "layers": [8, 4]})
    neumf = replace(synthetic, model=model, model_name="neumf")
    sim = simulator(neumf, ShopperConfig(population="new", new_shopper_components=2, new_shopper_pool=20))
    assert bool((sim.shopper >= 200).all())
    assert sim.world.model.gmf.user_embedding.shape[0] == sim.world.model.mlp.user_embedding.shape[0] == 220
    sim.step(torch.arange(5).expand(8, -1).clone())
