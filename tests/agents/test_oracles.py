"""The myopic oracle's slates are the exact best for the immediate reward; the
planning oracle plans from a copy of the state and never touches the real one."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from shopgym.agents import MyopicOracleAgent, PlanningOracleAgent, oracles
from shopgym.agents.oracles import myopic_slates
from shopgym.simulator.build import synthetic_world
from shopgym.simulator.choice import click_marginals
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.shoppers import ShopperSimulator

from .helpers import synthetic_env


def _expected_reward(
    sim: ShopperSimulator, slates: torch.Tensor, experience_weight: float = 0.0
) -> torch.Tensor:
    """(B,) expected immediate reward (plus ``experience_weight`` times the expected
    experience of the click) of (B, k) slates, from the click model's marginals."""
    items = sim.candidates.gather(1, slates)
    utility, value = sim.click_values(items)
    value = value + experience_weight * sim.experience(items, utility)
    marginals = click_marginals(
        sim.config.choice_model, utility, sim.beta, sim.no_click_utility, sim.position_bias
    )
    return (marginals * value).sum(1)


@pytest.mark.parametrize("choice_model", ["mnl", "pbm"])
@pytest.mark.parametrize("reward", ["engagement", "clicks", "revenue"])
@pytest.mark.parametrize("logits", [(0.0, -0.5, -1.5), (0.0, 0.7, -0.2)])
@pytest.mark.parametrize("experience_weight, quality", [(0.0, (-2, 2)), (0.7, (-2, 2)), (1.0, (-6, -1))])
def test_myopic_slates_are_the_best_of_all_slates(choice_model, reward, logits, experience_weight, quality):
    # Quality far below 0 makes the weighted click values, and the best slate's, negative.
    world = synthetic_world()
    world = dataclasses.replace(world, item_quality=torch.linspace(*quality, world.num_items))
    config = ShopperConfig(
        quality_weight=0.5,
        slate_size=3,
        num_candidates=6,
        choice_model=choice_model,
        reward=reward,
        position_logits=logits,
        boredom_weight=1.0,
        price_sensitivity_spread=0.5,
    )
    sim = ShopperSimulator(world, config, num_shoppers=16, device="cpu", seed=3)
    sim.reset()
    for _ in range(3):  # some boredom and history, so the state is not the initial one
        sim.step(torch.arange(3).expand(16, -1))
    every = torch.tensor(list(itertools.permutations(range(6), 3)))  # (120, 3)
    values = torch.stack(
        [_expected_reward(sim, slate.expand(16, -1), experience_weight) for slate in every], dim=1
    )
    chosen = _expected_reward(sim, myopic_slates(sim, experience_weight), experience_weight)
    torch.testing.assert_close(chosen, values.max(1).values, rtol=1e-5, atol=1e-6)


def test_without_position_effects_and_with_click_reward_the_oracle_shows_the_top_utilities():
    config = ShopperConfig(slate_size=3, num_candidates=8, reward="clicks", position_logits=(0.0,))
    sim = ShopperSimulator(synthetic_world(), config, num_shoppers=32, device="cpu", seed=0)
    sim.reset()
    utility = sim.utilities(sim.candidates)
    shown = utility.gather(1, myopic_slates(sim))
    hidden = utility.scatter(1, myopic_slates(sim), -torch.inf)
    assert bool((shown.min(1).values >= hidden.max(1).values).all())


def test_myopic_oracle_acts_through_the_simulator_of_its_env():
    env = synthetic_env(num_envs=4, shoppers="test")
    agent = MyopicOracleAgent(env.single_observation_space, env.single_action_space, device="cpu")
    observation, _ = env.reset(seed=0)
    with pytest.raises(ConfigError, match="attach"):
        agent.act(observation)
    agent.attach(env)
    assert torch.equal(agent.act(observation), myopic_slates(env.simulator))
    with pytest.raises(ConfigError, match="shopgym shopper environment"):
        agent.attach(object())


def test_planning_oracle_leaves_the_real_simulator_untouched():
    env = synthetic_env(num_envs=4, shoppers="test", boredom_weight=1.0)
    agent = PlanningOracleAgent(
        env.single_observation_space,
        env.single_action_space,
        device="cpu",
        rollouts=2,
        horizon=3,
        tuning_rows=8,
    )
    agent.attach(env)
    observation, _ = env.reset(seed=0)
    simulator = env.simulator
    before = simulator.snapshot()
    slate = agent.act(observation)
    after = simulator.snapshot()
    for part, state in before["parts"].items():
        for key, value in state.items():
            assert torch.equal(value, after["parts"][part][key]), (part, key)
    for part, generator_state in before["generators"].items():
        assert torch.equal(generator_state, after["generators"][part]), part
    assert env.single_action_space.contains(slate[0].numpy())


def test_planning_oracle_with_only_the_myopic_policy_is_the_myopic_oracle():
    env = synthetic_env(num_envs=4, shoppers="test")
    planner = PlanningOracleAgent(
        env.single_observation_space, env.single_action_space, device="cpu", experience_weights=(), rollouts=2
    )
    planner.attach(env)
    observation, _ = env.reset(seed=2)
    for _ in range(10):
        slate = planner.act(observation)
        assert torch.equal(slate, myopic_slates(env.simulator))
        observation = env.step(slate).observation


def test_planning_oracle_rejects_bad_settings():
    env = synthetic_env(num_envs=2)
    with pytest.raises(ConfigError, match="horizon"):
        PlanningOracleAgent(env.single_observation_space, env.single_action_space, device="cpu", horizon=0)


def test_planning_oracle_follows_the_policy_of_the_best_simulated_return():
    # Disappointing clicks (quality -2 for half the items) end sessions: valuing the
    # experience pays, and the planner's simulations must find that.
    world = synthetic_world()
    quality = torch.where(torch.arange(world.num_items) % 2 == 0, 1.0, -2.0)
    world = dataclasses.replace(world, item_quality=quality)
    options = {"world": world, "quality_weight": 1.0, "leave_after_unsatisfying": 2, "no_click_utility": -1.0}
    env = synthetic_env(num_envs=8, shoppers="test", **options)
    simulator = env.simulator
    planner = PlanningOracleAgent(
        env.single_observation_space, env.single_action_space, device="cpu", tuning_rows=64
    )
    observation, _ = env.reset(seed=1)
    before = simulator.snapshot()
    oracles._TUNED.clear()  # tune here, not in an earlier test
    planner.attach(env)
    assert oracles._TUNED
    # Tuning runs on its own simulator of train shoppers; the env's is untouched.
    after = simulator.snapshot()
    for part, state in before["parts"].items():
        for key, value in state.items():
            assert torch.equal(value, after["parts"][part][key]), (part, key)
        assert torch.equal(before["generators"][part], after["generators"][part]), part
    returns = planner.tuning_returns
    assert set(returns) == {0.0, 0.25, 0.5, 1.0}
    assert planner.base_weight == max(returns, key=returns.get) > 0
    assert returns[planner.base_weight] > returns[0.0]
    assert torch.equal(planner.act(observation), myopic_slates(simulator, planner.base_weight))
    assert planner.describe()["base_experience_weight"] == planner.base_weight
