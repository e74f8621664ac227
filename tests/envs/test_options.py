"""Environment options: ShopperConfig fields as keywords, validation, and which
shoppers are drawn."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import shopgym.envs
from shopgym.envs import ShopperSB3VecEnv, ShopperVectorEnv, SlateSpace
from shopgym.simulator.build import resolve_world
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError, SlateError
from tests.envs._helpers import ALL_IDS, SYNTHETIC


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_slate_size_and_num_candidates_change_the_spaces(env_id):
    env = gym.make(env_id, slate_size=3, num_candidates=8, history_length=4, max_steps=7)
    assert isinstance(env.action_space, SlateSpace)
    assert env.action_space.shape == (3,)
    assert (env.action_space.nvec == 8).all()
    space = env.observation_space
    num_features = space["candidate_features"].shape[1]
    assert space["candidate_ids"].shape == (8,)
    assert space["candidate_features"].shape == (8, num_features)
    assert space["history_ids"].shape == (4,)
    assert space["history_features"].shape == (4, num_features)
    assert space["step"].high.tolist() == [7.0]
    obs, _ = env.reset(seed=0)
    assert space.contains(obs)
    obs, _, _, _, info = env.step(env.action_space.sample())
    assert space.contains(obs)
    assert info["clicks"].shape == (3,)
    with pytest.raises(SlateError, match="out of range"):
        env.unwrapped.step(np.array([0, 1, 8]))

    vector = gym.make_vec(env_id, num_envs=2, slate_size=3, num_candidates=8)
    assert vector.action_space.shape == (2, 3)
    assert vector.observation_space["candidate_ids"].shape == (2, 8)


def test_config_object_and_options_combine():
    # Options given as keywords override the fields of ``config``.
    config = ShopperConfig(slate_size=2, num_candidates=6)
    env = ShopperVectorEnv(2, world="synthetic", config=config)
    assert env.single_action_space.shape == (2,)
    assert env.single_observation_space["candidate_ids"].shape == (6,)
    env = ShopperVectorEnv(2, world="synthetic", config=config, slate_size=4)
    assert env.single_action_space.shape == (4,)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: gym.make(SYNTHETIC, **kw),
        lambda **kw: gym.make_vec(SYNTHETIC, num_envs=2, **kw),
        lambda **kw: ShopperSB3VecEnv(2, **{**shopgym.envs.PRESETS[SYNTHETIC], **kw}),
    ],
    ids=["single", "vector", "sb3"],
)
def test_invalid_options_raise_config_error(make):
    with pytest.raises(ConfigError, match="no_such_option"):
        make(no_such_option=1)
    with pytest.raises(ConfigError, match="slate_sise"):
        make(slate_sise=3)
    with pytest.raises(ConfigError, match="shoppers"):
        make(shoppers="bogus")
    with pytest.raises(ConfigError, match="slate_size"):
        make(slate_size=11)  # more than the 10 candidates of the preset
    with pytest.raises(ConfigError, match="patience"):
        make(patience=-1.0)


def test_vector_env_rejects_zero_envs_and_seed_lists():
    with pytest.raises(ConfigError, match="num_envs"):
        gym.make_vec(SYNTHETIC, num_envs=0)
    env = gym.make_vec(SYNTHETIC, num_envs=2)
    with pytest.raises(ConfigError):
        env.reset(seed=[1, 2])


def _drawn_shoppers(shoppers: str) -> set[int]:
    env = gym.make_vec(SYNTHETIC, num_envs=64, shoppers=shoppers, max_steps=2)
    simulator = env.unwrapped.simulator
    drawn = set()
    env.reset(seed=0)
    env.action_space.seed(0)
    drawn.update(simulator.shopper.tolist())
    for _ in range(10):  # every shopper is replaced every 2 steps
        env.step(env.action_space.sample())
        drawn.update(simulator.shopper.tolist())
    return drawn


def test_shoppers_option_draws_from_the_right_part_of_the_population():
    world = resolve_world("synthetic")
    test = set(torch.nonzero(world.test_shopper).flatten().tolist())
    train = set(range(world.num_shoppers)) - test
    assert test and train

    drawn_test = _drawn_shoppers("test")
    assert drawn_test <= test
    assert len(drawn_test) > len(test) // 2

    drawn_train = _drawn_shoppers("train")
    assert drawn_train <= train
    assert len(drawn_train) > len(train) // 2

    drawn_all = _drawn_shoppers("all")
    assert drawn_all & test and drawn_all & train


def test_single_env_test_shoppers():
    world = resolve_world("synthetic")
    env = gym.make(SYNTHETIC, shoppers="test", max_steps=1)
    simulator = env.unwrapped.simulator
    env.reset(seed=0)
    drawn = set()
    for _ in range(100):
        drawn.add(int(simulator.shopper[0]))
        env.step(env.action_space.sample())
        env.reset()
    assert all(bool(world.test_shopper[shopper]) for shopper in drawn)
    assert len(drawn) > 5
