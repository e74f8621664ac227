"""The myopic oracle's slates are the exact best for the immediate reward; the
planning oracle plans from a copy of the state and never touches the real one."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from shopgym.agents import MyopicOracleAgent, PlanningOracleAgent
from shopgym.agents.oracles import myopic_slates
from shopgym.simulator.build import synthetic_world
from shopgym.simulator.choice import click_marginals
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.shoppers import ShopperSimulator

from .helpers import synthetic_env


def _expected_reward(sim: ShopperSimulator, slates: torch.Tensor) -> torch.Tensor:
    """(B,) expected immediate reward of (B, k) slates, from the click model's marginals."""
    items = sim.candidates.gather(1, slates)
    utility, value = sim.click_values(items)
    marginals = click_marginals(
        sim.config.choice_model, utility, sim.beta, sim.no_click_utility, sim.position_bias
    )
    return (marginals * value).sum(1)


@pytest.mark.parametrize("choice_model", ["mnl", "pbm"])
@pytest.mark.parametrize("reward", ["engagement", "clicks", "revenue"])
@pytest.mark.parametrize("logits", [(0.0, -0.5, -1.5), (0.0, 0.7, -0.2)])
def test_myopic_slates_are_the_best_of_all_slates(choice_model, reward, logits):
    config = ShopperConfig(
        slate_size=3,
        num_candidates=6,
        choice_model=choice_model,
        reward=reward,
        position_logits=logits,
        boredom_weight=1.0,
        price_sensitivity_spread=0.5,
    )
    sim = ShopperSimulator(synthetic_world(), config, num_shoppers=16, device="cpu", seed=3)
    sim.reset()
    for _ in range(3):  # some boredom and history, so the state is not the initial one
        sim.step(torch.arange(3).expand(16, -1))
    every = torch.tensor(list(itertools.permutations(range(6), 3)))  # (120, 3)
    values = torch.stack([_expected_reward(sim, slate.expand(16, -1)) for slate in every], dim=1)
    chosen = _expected_reward(sim, myopic_slates(sim))
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
    observation, info = env.reset(seed=0)
    with pytest.raises(ConfigError, match="attach"):
        agent.act(observation, info)
    agent.attach(env)
    np.testing.assert_array_equal(
        agent.act(observation, info), myopic_slates(env.unwrapped.simulator).numpy()
    )
    with pytest.raises(ConfigError, match="shopgym shopper environment"):
        agent.attach(object())


def test_planning_oracle_leaves_the_real_simulator_untouched():
    env = synthetic_env(num_envs=4, shoppers="test", boredom_weight=1.0)
    agent = PlanningOracleAgent(
        env.single_observation_space,
        env.single_action_space,
        device="cpu",
        num_slates=3,
        rollouts=2,
        horizon=3,
    )
    agent.attach(env)
    observation, info = env.reset(seed=0)
    simulator = env.unwrapped.simulator
    before = simulator.snapshot()
    slate = agent.act(observation, info)
    after = simulator.snapshot()
    for part, state in before["parts"].items():
        for key, value in state.items():
            assert torch.equal(value, after["parts"][part][key]), (part, key)
    for part, generator_state in before["generators"].items():
        assert torch.equal(generator_state, after["generators"][part]), part
    assert env.action_space.contains(slate)


def test_planning_oracle_with_one_candidate_is_the_myopic_oracle():
    env = synthetic_env(num_envs=4, shoppers="test")
    planner = PlanningOracleAgent(
        env.single_observation_space, env.single_action_space, device="cpu", num_slates=1
    )
    planner.attach(env)
    observation, info = env.reset(seed=2)
    for _ in range(10):
        slate = planner.act(observation, info)
        np.testing.assert_array_equal(slate, myopic_slates(env.unwrapped.simulator).numpy())
        observation, _, _, _, info = env.step(slate)


def test_planning_oracle_rejects_bad_settings():
    env = synthetic_env(num_envs=2)
    with pytest.raises(ConfigError, match="num_slates"):
        PlanningOracleAgent(env.single_observation_space, env.single_action_space, device="cpu", horizon=0)
