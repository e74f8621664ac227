"""``shopgym/InterestEvolution-v0``: Gymnasium's and SB3's checkers, the single env against
its vector twin, Gymnasium's own vector env over the single env, options and episodes."""

from __future__ import annotations

import re
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import shopgym.envs  # noqa: F401  (registers the other IDs first)
from shopgym.envs.core import slate_info
from shopgym.envs.interest_evolution import InterestEvolutionEnv, InterestEvolutionVectorEnv
from shopgym.envs.spaces import SlateSpace
from shopgym.simulator.errors import ConfigError, SlateError
from tests.envs._helpers import assert_same

ENV_ID = "shopgym/InterestEvolution-v0"
if ENV_ID not in gym.registry:
    gym.register(
        id=ENV_ID,
        entry_point="shopgym.envs.interest_evolution:InterestEvolutionEnv",
        vector_entry_point="shopgym.envs.interest_evolution:InterestEvolutionVectorEnv",
    )
OBS_KEYS = {
    "user",
    "doc_features",
    "response_click",
    "response_watch_time",
    "response_liked",
    "response_quality",
    "response_cluster_id",
}
# SB3's checker advises against observations that are neither images nor 1-D vectors; the
# (candidates, topics) matrix keeps one row per video on purpose.
SB3_SHAPE_ADVICE = re.compile(r"Your observation doc_features has an unconventional shape")


def no_warnings(check, env) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check(env)
    return [f"{w.category.__name__}: {w.message}" for w in caught]


def test_make_and_make_vec_give_our_classes():
    env = gym.make(ENV_ID)
    assert isinstance(env.unwrapped, InterestEvolutionEnv)
    assert isinstance(env.action_space, SlateSpace)
    assert env.unwrapped.simulator.device.type == "cpu"
    vector = gym.make_vec(ENV_ID, num_envs=3, device="cpu")
    assert isinstance(vector, InterestEvolutionVectorEnv)
    assert vector.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"slate_size": 1},
        {"num_candidates": 3, "slate_size": 3},
        {"choice_model": "logit"},
        {"choice_model": "proportional_cascade"},
        {"resample_documents": False, "time_budget": 5.0},
        {"max_steps": 3},
    ],
    ids=lambda options: ",".join(f"{k}={v}" for k, v in options.items()) or "defaults",
)
def test_gymnasium_check_env(options):
    assert no_warnings(gym_check_env, gym.make(ENV_ID, **options).unwrapped) == []


def test_sb3_check_env():
    caught = no_warnings(sb3_check_env, gym.make(ENV_ID).unwrapped)
    assert [message for message in caught if not SB3_SHAPE_ADVICE.search(message)] == []


def test_observations_and_info():
    env = gym.make(ENV_ID)
    observation, info = env.reset(seed=0)
    assert set(observation) == OBS_KEYS and info == {}
    assert observation["user"].shape == (20,) and observation["doc_features"].shape == (10, 20)
    assert not observation["response_click"].any()  # no response before the first slate
    for _ in range(50):
        observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(observation)
        assert info["clicks"].shape == (2,) and info["clicks"].dtype == bool
        assert info["purchases"].shape == (2,) and not info["purchases"].any()
        assert reward == info["watch_time"]
        assert (reward > 0) == info["clicks"].any()
        assert np.array_equal(observation["response_click"].astype(bool), info["clicks"])
        if terminated or truncated:
            env.reset()


def play_single(seed: int, actions: np.ndarray, **options) -> list:
    """Per step: obs (the final one at an episode's end), reward, flags, info; then the reset obs."""
    env = gym.make(ENV_ID, **options).unwrapped
    record = [env.reset(seed=seed)[0]]
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        record.append((observation, np.float32(reward), terminated, truncated, info["watch_time"]))
        if terminated or truncated:
            record.append(env.reset()[0])
    return record


def play_vector(seed: int, actions: np.ndarray, **options) -> list:
    """The same record from the vector env with one sub-environment (final obs from info)."""
    env = InterestEvolutionVectorEnv(1, device="cpu", **options)
    record = [{key: value[0] for key, value in env.reset(seed=seed)[0].items()}]
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action[None])
        done = bool(terminated[0] or truncated[0])
        shown = info["final_obs"][0] if done else {key: value[0] for key, value in observation.items()}
        record.append(
            (
                shown,
                reward[0],
                bool(terminated[0]),
                bool(truncated[0]),
                float(slate_info(info, "watch_time")[0]),
            )
        )
        if done:
            record.append({key: value[0] for key, value in observation.items()})
    return record


def test_single_env_equals_vector_env_with_one_user():
    rng = np.random.default_rng(0)
    actions = np.stack([rng.permutation(10)[:2] for _ in range(250)])
    single = play_single(7, actions, time_budget=15.0)
    vector = play_vector(7, actions, time_budget=15.0)
    assert sum(1 for entry in single if isinstance(entry, tuple) and entry[2]) >= 3  # several episodes
    assert_same(single, vector)


def test_gymnasium_sync_vector_env_over_the_single_env():
    env = gym.vector.SyncVectorEnv([lambda: gym.make(ENV_ID, time_budget=5.0) for _ in range(3)])
    observations, _ = env.reset(seed=0)
    assert observations["user"].shape == (3, 20)
    ended = 0
    for _ in range(60):
        observations, rewards, terminated, _, infos = env.step(env.action_space.sample())
        assert rewards.shape == (3,) and observations["doc_features"].shape == (3, 10, 20)
        # Next-step autoreset: a step that only resets every sub-environment has no clicks.
        assert "clicks" not in infos or infos["clicks"].shape == (3, 2)
        ended += int(terminated.sum())
    assert ended > 0
    env.close()


def test_default_episodes_end():
    env = gym.make(ENV_ID)
    env.reset(seed=1)
    env.action_space.seed(1)
    # No-click slates cost 0.5 of 200 minutes and every click costs at least 4 (1 - 0.9 / 3.4 *
    # 3.x): a session cannot last much beyond 400 slates.
    for step in range(1, 1000):  # noqa: B007 (read after the loop)
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated:
            assert info["time_budget"] <= 0 and not truncated
            break
    else:
        pytest.fail("the session did not end")
    assert 20 < step < 400


def test_max_steps_truncates():
    env = gym.make(ENV_ID, max_steps=4)
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[2:4] for _ in range(4)]
    assert flags == [(False, False)] * 3 + [(False, True)]


def test_vector_env_reports_final_observations():
    env = gym.make_vec(ENV_ID, num_envs=4, device="cpu", time_budget=3.0)
    observations, _ = env.reset(seed=0)
    for _ in range(40):
        observations, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(observations)
        done = terminated | truncated
        if done.any():
            break
    assert np.array_equal(info["_final_obs"], done) and np.array_equal(info["_final_info"], done)
    for index in range(4):
        final = info["final_obs"][index]
        assert (final is None) == (not done[index])
        if final is not None:
            assert set(final) == OBS_KEYS
            assert info["final_info"]["time_budget"][index] <= 0
            # The next user starts with no response yet.
            assert not observations["response_click"][index].any()
    assert set(info["final_info"]) >= {"clicks", "purchases", "watch_time", "_clicks"}


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_same_seed_gives_identical_vector_rollouts(seed):
    def play():
        env = InterestEvolutionVectorEnv(5, device="cpu", time_budget=8.0)
        env.action_space.seed(seed)
        record = [env.reset(seed=seed)]
        record += [env.step(env.action_space.sample()) for _ in range(30)]
        return record

    assert_same(play(), play())


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown environment option\(s\) \['budget'\].*time_budget"):
        gym.make(ENV_ID, budget=3)
    with pytest.raises(ConfigError, match="valid options"):
        InterestEvolutionVectorEnv(2, device="cpu", patience=3)


def test_invalid_option_value_names_the_field():
    with pytest.raises(ConfigError, match="slate_size"):
        gym.make(ENV_ID, slate_size=11)


def test_invalid_slate_raises():
    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=0)
    with pytest.raises(SlateError):
        env.step(np.array([4, 4]))


def test_vector_reset_takes_one_seed():
    env = InterestEvolutionVectorEnv(2, device="cpu")
    with pytest.raises(ConfigError, match="one integer seed"):
        env.reset(seed=[1, 2])
