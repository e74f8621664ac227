"""The one interface every registered agent implements (run on the synthetic vector env)."""

from __future__ import annotations

import re

import gymnasium as gym
import pandas as pd
import pytest
import torch

from shopgym.agents import AGENTS, make_agent
from shopgym.envs.torch_env import TorchVectorEnv
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.shoppers import ShopperSimulator
from shopgym.simulator.world import World

from .helpers import (
    assert_state_equal,
    assert_valid_slates,
    build_agent,
    reachable_instances,
    rollout,
    synthetic_env,
)

NAMES = list(AGENTS)
NUM_ENVS, SLATE_SIZE, NUM_CANDIDATES = 8, 3, 10
# Oracles act on the simulator they are attached to (their reference to the truth is
# what makes them oracles), not on the observation, and learn nothing: their state is
# empty (checked below), so the tests of learned state and of references to the truth
# are for the others.
LEARNING_OR_OBSERVING = [name for name in NAMES if not AGENTS[name].needs_oracle]


BANDITS = ["epsilon-greedy", "ucb1", "thompson", "cascade-ucb", "linucb", "linear-thompson"]


def test_registry_holds_every_agent_under_its_name():
    assert set(AGENTS) == {
        "random",
        "popularity",
        *BANDITS,
        "static-mf",
        "bpr-mf",
        "neumf",
        "gru4rec",
        "slateq",
        "ppo",
        "sb3-ppo",
        "sb3-maskable-ppo",
        "sb3-dqn",
        "oracle",
        "myopic-oracle",
        "planning-oracle",
    }
    for name, agent in AGENTS.items():
        assert agent.name == name
    # Only the upper bounds may read true utilities; only the bandits learn during evaluation.
    oracles = [name for name, agent in AGENTS.items() if agent.needs_oracle]
    assert oracles == ["oracle", "myopic-oracle", "planning-oracle"]
    assert [name for name, agent in AGENTS.items() if agent.learns_online] == BANDITS


@pytest.mark.parametrize("name", NAMES)
def test_act_returns_valid_slates_over_many_steps(name):
    env, agent = build_agent(name)

    def check(action):
        assert_valid_slates(action, NUM_ENVS, SLATE_SIZE, NUM_CANDIDATES)
        assert env.action_space.contains(action.numpy())

    actions = rollout(env, agent, steps=150, seed=3, check=check)
    assert actions.shape == (150, NUM_ENVS, SLATE_SIZE)


@pytest.mark.parametrize("name", NAMES)
def test_act_handles_a_single_shopper_batch(name):
    env, agent = build_agent(name, num_envs=1)
    rollout(env, agent, steps=20, seed=1, check=lambda a: assert_valid_slates(a, 1, 3, 10))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_same_actions(name):
    first = rollout(*build_agent(name, seed=5), steps=60, seed=11)
    second = rollout(*build_agent(name, seed=5), steps=60, seed=11)
    assert torch.equal(first, second)


# LinUCB draws nothing once its scores differ, so its seed changes nothing.
STOCHASTIC = ["random", *(name for name in BANDITS if name != "linucb"), "static-mf", "ppo"]


@pytest.mark.parametrize("name", STOCHASTIC)
def test_agent_seed_changes_the_actions_of_stochastic_agents(name):
    first = rollout(*build_agent(name, seed=5), steps=30, seed=11)
    second = rollout(*build_agent(name, seed=6), steps=30, seed=11)
    assert not torch.equal(first, second)


def test_oracles_have_no_learned_state():
    for name in NAMES:
        if AGENTS[name].needs_oracle:
            assert build_agent(name)[1].state_dict() == {}


@pytest.mark.parametrize("name", LEARNING_OR_OBSERVING)
def test_save_then_load_into_a_fresh_agent_restores_state_and_actions(name, tmp_path):
    env, agent = build_agent(name, seed=0)
    rollout(env, agent, steps=80, seed=2)  # the bandit learns online here
    path = tmp_path / f"{name}.pt"
    agent.save(path)

    # A fresh agent with another seed: whatever it ends up knowing comes from the file.
    _, fresh = build_agent(name, seed=123, fit_budget=100)
    fresh.load(path)
    assert_state_equal(fresh.state_dict(), agent.state_dict())

    observation, _ = env.reset(seed=9)
    for _ in range(5):
        agent.generator.manual_seed(42)
        fresh.generator.manual_seed(42)
        assert torch.equal(fresh.act(observation), agent.act(observation))
        observation = env.step(agent.act(observation)).observation


def test_learning_agents_have_state_to_save():
    for name in (*BANDITS, "static-mf", "ppo"):
        env, agent = build_agent(name)
        rollout(env, agent, steps=40, seed=0)
        assert agent.state_dict(), name


@pytest.mark.parametrize("name", [name for name in NAMES if AGENTS[name].trains_before_evaluation])
def test_training_log_depends_only_on_the_seed_and_holds_no_wall_times(name):
    first, second = (build_agent(name, seed=1)[1] for _ in range(2))
    log = pd.DataFrame(first.training_log)
    assert len(log) >= 1, f"{name} logs nothing as it trains"
    axis = "steps" if "steps" in log.columns else "epoch"
    assert log[axis].notna().all() and log[axis].is_monotonic_increasing and log[axis].is_unique
    assert not [column for column in log.columns if "time" in column or "fps" in column]
    assert all(isinstance(value, float) for row in first.training_log for value in row.values())
    pd.testing.assert_frame_equal(
        log, pd.DataFrame(second.training_log)
    )  # the runner keeps it with the records
    assert not build_agent("popularity")[1].training_log


def test_loading_a_file_saved_by_another_agent_raises_config_error(tmp_path):
    agents = {name: build_agent(name, fit_budget=100)[1] for name in NAMES}
    for name, agent in agents.items():
        agent.save(tmp_path / f"{name}.pt")
    for saved_by in NAMES:
        for name, agent in agents.items():
            if name == saved_by:
                agent.load(tmp_path / f"{saved_by}.pt")
                continue
            message = re.escape(f"saved agent is {saved_by!r}, not {name!r}")
            with pytest.raises(ConfigError, match=message):
                agent.load(tmp_path / f"{saved_by}.pt")


def test_make_agent_with_unknown_name_lists_the_names():
    env = synthetic_env()
    with pytest.raises(ConfigError, match="bogus") as raised:
        make_agent("bogus", env.single_observation_space, env.single_action_space)
    for name in AGENTS:
        assert name in str(raised.value)


@pytest.mark.parametrize("name", NAMES)
def test_agents_reject_a_batched_action_space(name):
    env = synthetic_env()
    with pytest.raises(ConfigError, match="single-shopper"):
        make_agent(name, env.single_observation_space, env.action_space)


@pytest.mark.parametrize("name", LEARNING_OR_OBSERVING)
def test_agents_keep_no_reference_to_the_world_or_the_simulator(name):
    env, agent = build_agent(name)
    rollout(env, agent, steps=20, seed=0)
    truth = (World, ShopperSimulator, TorchVectorEnv, gym.vector.VectorEnv, gym.Env)
    assert reachable_instances(agent, truth) == []


@pytest.mark.parametrize("name", NAMES)
def test_describe_names_the_agent(name):
    _, agent = build_agent(name)
    description = agent.describe()
    assert description["name"] == name
