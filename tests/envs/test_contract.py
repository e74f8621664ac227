"""Contract tests over every registered environment ID: Gymnasium's and SB3's env
checkers, the native vector env from ``make_vec``, and no warnings anywhere."""

from __future__ import annotations

import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import shopgym.envs
from shopgym.envs import ShopperEnv, ShopperSB3VecEnv, ShopperVectorEnv, SlateSpace
from shopgym.envs.core import slate_info
from tests.envs._helpers import ALL_IDS, SYNTHETIC, obs_keys

# SB3's checker advises against observations that are neither images nor 1-D vectors.
# The (candidates, features) and (history, features) matrices are kept 2-D on purpose:
# the row structure (one row per item) is what slate policies score, and SB3's
# MultiInputPolicy flattens each Dict entry anyway. That advisory is the only warning
# tolerated, and only for those two keys.
SB3_SHAPE_ADVICE = re.compile(
    r"Your observation (candidate_features|history_features) has an unconventional shape"
)


def test_presets_are_registered():
    assert {"shopgym/Shopper-v0", "shopgym/SyntheticShopper-v0"} <= set(ALL_IDS)
    for env_id in ALL_IDS:
        spec = gym.spec(env_id)
        assert spec.entry_point == "shopgym.envs.shopper:ShopperEnv"
        assert spec.vector_entry_point == "shopgym.envs.shopper_vector:ShopperVectorEnv"
        assert spec.kwargs == shopgym.envs.PRESETS[env_id]


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_gymnasium_check_env(env_id):
    env = gym.make(env_id)
    assert isinstance(env.unwrapped, ShopperEnv)
    assert isinstance(env.action_space, SlateSpace)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_sb3_check_env(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env.unwrapped)
    unexpected = [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if not (w.category is UserWarning and SB3_SHAPE_ADVICE.search(str(w.message)))
    ]
    assert unexpected == []


@pytest.mark.parametrize(
    "options",
    [
        {"item_features": "content"},
        {"item_features": "noisy"},
        {"candidate_sampling": "popularity"},
        {"slate_size": 1},
        {"num_candidates": 6, "slate_size": 6},
        {"history_length": 1, "max_steps": 4},
    ],
    ids=lambda options: ",".join(f"{k}={v}" for k, v in options.items()),
)
def test_gymnasium_check_env_option_variants(options):
    env = gym.make(SYNTHETIC, **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


def _check_batched(space: gym.spaces.Dict, single: gym.spaces.Dict, obs: dict, num_envs: int, keys: set):
    assert set(obs) == keys == set(space.spaces)
    for key, value in obs.items():
        assert value.shape == (num_envs, *single[key].shape), key
        assert value.shape == space[key].shape, key
        assert value.dtype == single[key].dtype, key
        for index in range(num_envs):
            assert single[key].contains(value[index]), (key, index)
    assert space.contains(obs)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_make_vec_gives_native_vector_env(env_id):
    num_envs = 4
    env = gym.make_vec(env_id, num_envs=num_envs)
    assert type(env) is ShopperVectorEnv
    assert env.num_envs == num_envs
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    single = gym.make(env_id)
    assert env.single_observation_space == single.observation_space
    assert isinstance(env.single_action_space, SlateSpace)
    assert isinstance(env.action_space, SlateSpace)
    assert env.single_action_space.shape == single.action_space.shape
    assert env.action_space.shape == (num_envs, *single.action_space.shape)

    obs, info = env.reset(seed=0)
    _check_batched(env.observation_space, env.single_observation_space, obs, num_envs, obs_keys(env_id))
    assert info == {}
    env.action_space.seed(0)
    endings = 0
    for _ in range(60):
        actions = env.action_space.sample()
        assert env.action_space.contains(actions)
        obs, reward, terminated, truncated, info = env.step(actions)
        _check_batched(env.observation_space, env.single_observation_space, obs, num_envs, obs_keys(env_id))
        assert reward.shape == terminated.shape == truncated.shape == (num_envs,)
        assert reward.dtype == np.float32
        assert terminated.dtype == truncated.dtype == np.bool_
        k = single.action_space.shape[0]
        clicks, purchases = slate_info(info, "clicks"), slate_info(info, "purchases")
        assert clicks.shape == purchases.shape == (num_envs, k)
        if "final_obs" in info:
            for index in np.flatnonzero(info["_final_obs"]):
                final = info["final_obs"][index]
                assert set(final) == obs_keys(env_id)
                assert env.single_observation_space.contains(final)
                endings += 1
    assert endings > 0


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_no_warnings(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Gymnasium flags an ID with a newer version; Shopper-v0 is kept on purpose.
        warnings.filterwarnings("ignore", ".*shopgym/Shopper-v0 is out of date", DeprecationWarning)
        env = gym.make(env_id)
        env.action_space.seed(0)
        env.reset(seed=0)
        for _ in range(40):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        env.close()

        vector = gym.make_vec(env_id, num_envs=3)
        vector.action_space.seed(0)
        vector.reset(seed=0)
        for _ in range(40):
            vector.step(vector.action_space.sample())
        vector.close()

        sb3 = ShopperSB3VecEnv(3, **shopgym.envs.PRESETS[env_id])
        sb3.seed(0)
        sb3.reset()
        sb3.action_space.seed(0)
        for _ in range(40):
            sb3.step(np.stack([sb3.action_space.sample() for _ in range(3)]))
        sb3.close()


def test_sync_vectorization_samples_valid_slates():
    env = gym.make_vec(SYNTHETIC, num_envs=4, vectorization_mode="sync")
    env.action_space.seed(0)
    env.reset(seed=0)
    for _ in range(20):
        actions = env.action_space.sample()
        for row in actions:
            assert len(set(row.tolist())) == len(row)
        env.step(actions)
