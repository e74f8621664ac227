"""Reproducibility: same seed -> same rollout; single env == vector env with one
shopper; pickled environments continue with the same numbers."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

from shopgym.envs import ShopperEnv
from tests.envs._helpers import (
    MOVIELENS,
    SYNTHETIC,
    assert_same,
    count_episode_ends,
    single_rollout,
    vector_rollout,
)


def _perturb_global_rngs(seed: int) -> None:
    """The environments must not depend on the global random state."""
    torch.manual_seed(seed)
    np.random.seed(seed)


@pytest.mark.parametrize(
    ("env_id", "num_steps"),
    [
        (SYNTHETIC, 400),
        (MOVIELENS, 60),
        ("shopgym/ShopperLongTerm-v0", 150),
        ("shopgym/ShopperColdStart-v0", 60),
    ],
)
def test_single_env_same_seed_same_rollout(env_id, num_steps):
    _perturb_global_rngs(1)
    first = single_rollout(gym.make(env_id), seed=7, num_steps=num_steps)
    _perturb_global_rngs(2)
    second = single_rollout(gym.make(env_id), seed=7, num_steps=num_steps)
    assert_same(first, second)
    assert count_episode_ends(first) >= (5 if env_id == SYNTHETIC else 1)
    # The rollout is not trivial: rewards were earned.
    assert sum(r[2] for r in first if r[0] == "step") > 0


def test_single_env_reseeding_the_same_env_repeats_the_rollout():
    env = gym.make(SYNTHETIC)
    first = single_rollout(env, seed=3, num_steps=200)
    second = single_rollout(env, seed=3, num_steps=200)
    assert_same(first, second)


def test_single_env_different_seeds_differ():
    first = single_rollout(gym.make(SYNTHETIC), seed=7, num_steps=100)
    second = single_rollout(gym.make(SYNTHETIC), seed=8, num_steps=100)
    with pytest.raises(AssertionError):
        assert_same(first, second)
    # Already the first observations differ (other candidates).
    assert not np.array_equal(first[0][1]["candidate_ids"], second[0][1]["candidate_ids"])


def test_vector_env_same_seed_same_rollout():
    _perturb_global_rngs(1)
    first = vector_rollout(gym.make_vec(SYNTHETIC, num_envs=5), seed=11, num_steps=150)
    _perturb_global_rngs(2)
    second = vector_rollout(gym.make_vec(SYNTHETIC, num_envs=5), seed=11, num_steps=150)
    assert_same(first, second)
    assert count_episode_ends(first) >= 10
    third = vector_rollout(gym.make_vec(SYNTHETIC, num_envs=5), seed=12, num_steps=150)
    with pytest.raises(AssertionError):
        assert_same(first, third)


@pytest.mark.parametrize(
    ("env_id", "num_steps"),
    [
        (SYNTHETIC, 400),
        (MOVIELENS, 80),
        ("shopgym/ShopperLongTerm-v0", 150),
        ("shopgym/ShopperColdStart-v0", 60),
    ],
)
def test_single_env_equals_vector_env_with_one_shopper(env_id, num_steps):
    single = gym.make(env_id)
    vector = gym.make_vec(env_id, num_envs=1)
    obs, _ = single.reset(seed=5)
    vector_obs, _ = vector.reset(seed=5)
    assert_same(obs, {key: value[0] for key, value in vector_obs.items()})
    single.action_space.seed(0)
    episodes = 0
    for step in range(num_steps):
        action = single.action_space.sample()
        obs, reward, terminated, truncated, info = single.step(action)
        vector_obs, rewards, terminateds, truncateds, vector_info = vector.step(action[None])
        where = f"step {step}"
        assert reward == float(rewards[0]), where
        assert terminated == bool(terminateds[0]), where
        assert truncated == bool(truncateds[0]), where
        last_step = vector_info
        if terminated or truncated:
            # Gymnasium's layout: the last step's info is under final_info, the top level
            # has what the reset reports (nothing here).
            assert "clicks" not in vector_info, where
            last_step = vector_info["final_info"]
        assert_same(info["clicks"], last_step["clicks"][0], where)
        assert_same(info["purchases"], last_step["purchases"][0], where)
        if terminated or truncated:
            episodes += 1
            assert bool(vector_info["_final_obs"][0]), where
            # The single env's last observation is the vector env's final observation ...
            assert_same(obs, vector_info["final_obs"][0], where)
            # ... and its next reset() is what the vector env already shows (same-step autoreset).
            obs, reset_info = single.reset()
            assert reset_info == {}
        else:
            assert "final_obs" not in vector_info, where
        assert_same(obs, {key: value[0] for key, value in vector_obs.items()}, where)
    assert episodes >= (5 if env_id == SYNTHETIC else 1)


def _continue_identically(original, copy, num_steps: int, vector: bool) -> int:
    """Step both with the same slates; assert identical results; return the episode ends."""
    ends = 0
    for step in range(num_steps):
        action = original.action_space.sample()
        first = original.step(action)
        second = copy.step(action)
        assert_same(first, second, f"step {step}")
        if vector:
            ends += int(np.sum(first[2] | first[3]))
        elif first[2] or first[3]:
            ends += 1
            assert_same(original.reset(), copy.reset(), f"reset after step {step}")
    return ends


def test_single_env_pickles_and_continues_identically():
    env = gym.make(SYNTHETIC).unwrapped
    assert isinstance(env, ShopperEnv)
    env.reset(seed=3)
    env.action_space.seed(0)
    for _ in range(7):
        env.step(env.action_space.sample())
    copy = pickle.loads(pickle.dumps(env))
    assert copy is not env and copy.simulator is not env.simulator
    assert _continue_identically(env, copy, 200, vector=False) >= 3
    # Reseeding the copy reproduces the original from the same seed.
    assert_same(env.reset(seed=9), copy.reset(seed=9))


def test_single_env_pickled_at_an_episode_end_resumes_the_started_session():
    env = gym.make(SYNTHETIC, max_steps=2, patience=1e6).unwrapped
    env.reset(seed=3)
    env.action_space.seed(0)
    env.step(env.action_space.sample())
    _, _, _, truncated, _ = env.step(env.action_space.sample())
    assert truncated
    copy = pickle.loads(pickle.dumps(env))
    assert_same(env.reset(), copy.reset())
    assert _continue_identically(env, copy, 20, vector=False) == 10


def test_wrapped_single_env_pickles():
    env = gym.make(SYNTHETIC)
    env.reset(seed=3)
    copy = pickle.loads(pickle.dumps(env))
    env.action_space.seed(0)
    assert _continue_identically(env, copy, 100, vector=False) >= 1


def test_vector_env_pickles_and_continues_identically():
    env = gym.make_vec(SYNTHETIC, num_envs=4)
    env.reset(seed=3)
    env.action_space.seed(0)
    for _ in range(5):
        env.step(env.action_space.sample())
    copy = pickle.loads(pickle.dumps(env))
    assert copy.simulator is not env.simulator
    assert _continue_identically(env, copy, 100, vector=True) >= 5
