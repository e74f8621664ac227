"""The Stable-Baselines3 ``VecEnv`` adapter over the batched simulator."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecCheckNan, VecMonitor

import shopgym.envs
from shopgym.envs import ShopperSB3VecEnv, SlateSpace
from shopgym.simulator.errors import ConfigError
from tests.envs._helpers import OBS_KEYS, SYNTHETIC, assert_same

PRESET = shopgym.envs.PRESETS[SYNTHETIC]
B = 4


def _sb3(**options) -> ShopperSB3VecEnv:
    return ShopperSB3VecEnv(B, **{**PRESET, **options})


def _actions(space: SlateSpace, rng: np.random.Generator) -> np.ndarray:
    keys = rng.random((B, space.num_candidates))
    return np.argsort(keys, axis=1)[:, : space.slate_size]


def test_spaces_are_those_of_one_shopper():
    env = _sb3()
    single = gym.make(SYNTHETIC)
    assert env.num_envs == B
    assert env.observation_space == single.observation_space
    assert isinstance(env.action_space, SlateSpace)
    assert env.action_space.shape == single.action_space.shape


def test_reset_and_step_shapes():
    env = _sb3()
    env.seed(0)
    obs = env.reset()
    assert set(obs) == OBS_KEYS
    for key, value in obs.items():
        assert value.shape == (B, *env.observation_space[key].shape), key
        assert all(env.observation_space[key].contains(value[i]) for i in range(B)), key
    assert len(env.reset_infos) == B
    rng = np.random.default_rng(0)
    for _ in range(30):
        obs, rewards, dones, infos = env.step(_actions(env.action_space, rng))
        assert set(obs) == OBS_KEYS
        assert all(value.shape[0] == B for value in obs.values())
        assert rewards.shape == (B,) and rewards.dtype == np.float32
        assert dones.shape == (B,) and dones.dtype == np.bool_
        assert isinstance(infos, list) and len(infos) == B
        assert all(isinstance(info, dict) for info in infos)
        for info in infos:
            assert info["clicks"].shape == info["purchases"].shape == (3,)


def test_terminal_observation_and_time_limit_flag():
    env = _sb3(max_steps=4, patience=6.0)
    env.seed(1)
    obs = env.reset()
    rng = np.random.default_rng(1)
    lengths = np.zeros(B, dtype=int)
    counts = {"truncated": 0, "terminated": 0}
    for _ in range(120):
        obs, _, dones, infos = env.step(_actions(env.action_space, rng))
        lengths += 1
        for i in range(B):
            if dones[i]:
                terminal = infos[i]["terminal_observation"]
                assert isinstance(terminal, dict) and set(terminal) == OBS_KEYS
                assert env.observation_space.contains(terminal)
                assert terminal["step"].tolist() == [float(lengths[i])]
                # Only the time limit (step 4) truncates; an earlier end is the shopper leaving.
                truncated = infos[i]["TimeLimit.truncated"]
                assert isinstance(truncated, bool)
                if lengths[i] < 4:
                    assert not truncated
                counts["truncated" if truncated else "terminated"] += 1
                assert obs["step"][i].tolist() == [0.0]
            else:
                assert "terminal_observation" not in infos[i]
                assert lengths[i] < 4
                assert obs["step"][i].tolist() == [float(lengths[i])]
        lengths[dones] = 0
    assert min(counts.values()) > 0, counts


def _seeded_run(env: ShopperSB3VecEnv, seed: int) -> list:
    env.seed(seed)
    records = [env.reset(), env.reset_infos]
    rng = np.random.default_rng(0)
    for _ in range(60):
        records.append(env.step(_actions(env.action_space, rng)))
    return records


def test_seed_then_reset_is_reproducible():
    env = _sb3()
    first = _seeded_run(env, 3)
    assert_same(first, _seeded_run(env, 3))
    assert_same(first, _seeded_run(_sb3(), 3))
    with pytest.raises(AssertionError):
        assert_same(first, _seeded_run(env, 4))


def test_reset_without_seed_continues_the_random_stream():
    env = _sb3()
    env.seed(3)
    first = env.reset()
    second = env.reset()
    assert not np.array_equal(first["candidate_ids"], second["candidate_ids"])


def test_same_numbers_as_the_gymnasium_vector_env():
    sb3 = _sb3(oracle_info=True)
    vector = gym.make_vec(SYNTHETIC, num_envs=B, oracle_info=True)
    sb3.seed(8)
    assert_same(sb3.reset(), vector.reset(seed=8)[0])
    rng = np.random.default_rng(2)
    ends = 0
    for step in range(150):
        actions = _actions(sb3.action_space, rng)
        obs, rewards, dones, infos = sb3.step(actions)
        v_obs, v_rewards, terminated, truncated, v_info = vector.step(actions)
        where = f"step {step}"
        assert_same(obs, v_obs, where)
        assert_same(rewards, v_rewards, where)
        assert_same(dones, terminated | truncated, where)
        for i in range(B):
            # An ended session's last step is in Gymnasium's final_info.
            last_step = v_info["final_info"] if dones[i] else v_info
            for key in ("clicks", "purchases", "utilities"):
                assert_same(infos[i][key], last_step[key][i], f"{where} {key}[{i}]")
            if dones[i]:
                ends += 1
                assert_same(infos[i]["terminal_observation"], v_info["final_obs"][i], where)
                assert infos[i]["TimeLimit.truncated"] == bool(truncated[i]), where
    assert ends >= 10


def test_vec_monitor_reports_episode_returns():
    max_steps = 5
    env = VecMonitor(_sb3(max_steps=max_steps, patience=1e6))
    env.seed(0)
    env.reset()
    rng = np.random.default_rng(0)
    returns = np.zeros(B)
    episodes = 0
    for step in range(1, 21):
        _, rewards, dones, infos = env.step(_actions(env.action_space, rng))
        returns += rewards
        assert dones.all() == (step % max_steps == 0)
        for i in range(B):
            if dones[i]:
                episode = infos[i]["episode"]
                assert episode["l"] == max_steps
                assert episode["r"] == pytest.approx(returns[i])
                returns[i] = 0
                episodes += 1
            else:
                assert "episode" not in infos[i]
    assert episodes == 4 * B


def test_vec_check_nan_passes():
    env = VecCheckNan(VecMonitor(_sb3()), raise_exception=True, warn_once=False)
    env.seed(0)
    obs = env.reset()
    assert set(obs) == OBS_KEYS
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(50):
        obs, rewards, dones, infos = env.step(_actions(env.action_space, rng))
        assert np.isfinite(rewards).all()
        assert all(np.isfinite(value).all() for value in obs.values())
        ends += int(dones.sum())
        assert all("episode" in infos[i] for i in np.flatnonzero(dones))
    assert ends > 0


def test_get_attr_env_method_env_is_wrapped():
    env = _sb3()
    assert env.get_attr("oracle_info") == [False] * B
    assert env.get_attr("num_envs", indices=[0, 2]) == [B, B]
    assert env.get_attr("num_envs", indices=1) == [B]
    assert env.get_attr("index", indices=[3, 1]) == [3, 1]
    assert len(env.get_attr("render_mode")) == B
    env.set_attr("note", "shared")
    assert env.get_attr("note") == ["shared"] * B
    with pytest.raises(ConfigError, match="share one simulator"):
        env.set_attr("note", "one", indices=[0])
    assert env.env_method("render") == [None] * B
    assert env.env_method("get_wrapper_attr", "index", indices=[1, 3]) == [1, 3]
    with pytest.raises(ConfigError, match="cannot be called per sub-environment"):
        env.env_method("close")
    with pytest.raises(AttributeError, match="bogus"):
        env.env_method("bogus")
    assert env.env_is_wrapped(gym.Wrapper) == [False] * B
    assert env.env_is_wrapped(gym.Wrapper, indices=[0]) == [False]


def test_invalid_options_are_config_errors():
    with pytest.raises(ConfigError, match="bogus_option"):
        _sb3(bogus_option=1)
    with pytest.raises(ConfigError, match="shoppers"):
        ShopperSB3VecEnv(B, world="synthetic", shoppers="bogus")


def test_zero_envs_is_a_config_error():
    with pytest.raises(ConfigError, match="num_envs"):
        ShopperSB3VecEnv(0, world="synthetic")


def test_pickles_and_continues_identically():
    env = _sb3()
    env.seed(5)
    env.reset()
    copy = pickle.loads(pickle.dumps(env))
    rng = np.random.default_rng(0)
    for step in range(50):
        actions = _actions(env.action_space, rng)
        assert_same(env.step(actions), copy.step(actions), f"step {step}")
