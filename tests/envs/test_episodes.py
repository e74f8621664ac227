"""Episode ends (``terminated`` = the shopper left, ``truncated`` = time limit), final
observations, and what observations and infos may contain."""

from __future__ import annotations

import copy
import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

import shopgym.envs
from shopgym.envs import ShopperSB3VecEnv
from shopgym.simulator.build import resolve_world
from tests.envs._helpers import OBS_KEYS, SYNTHETIC, assert_same

NUM_ITEMS = 40  # items of the synthetic World: the empty-history marker M
LONG_PATIENCE = {"patience": 1e6}
# Patience 0.5 with no refund for purchases: every shopper leaves after one slate.
NO_PATIENCE = {"patience": 0.5, "purchase_refund": 0.0}


# ------------------------------------------------------------ episode ends
def test_single_env_truncates_at_max_steps():
    env = gym.make(SYNTHETIC, max_steps=3, **LONG_PATIENCE)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        assert obs["step"].tolist() == [0.0]
        for t in (1, 2, 3):
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            assert obs["step"].tolist() == [float(t)]
            assert not terminated
            assert truncated == (t == 3)
        obs, _ = env.reset()


def test_single_env_terminates_when_patience_runs_out():
    env = gym.make(SYNTHETIC, **NO_PATIENCE)
    env.action_space.seed(0)
    env.reset(seed=0)
    for _ in range(20):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert terminated and not truncated
        assert obs["step"].tolist() == [1.0]
        obs, _ = env.reset()
        assert obs["step"].tolist() == [0.0]


def test_terminated_wins_over_truncated_on_the_same_step():
    env = gym.make(SYNTHETIC, max_steps=1, **NO_PATIENCE)
    env.reset(seed=0)
    _, _, terminated, truncated, _ = env.step(env.action_space.sample())
    assert (terminated, truncated) == (True, False)


def test_vector_env_truncates_every_shopper_at_max_steps():
    env = gym.make_vec(SYNTHETIC, num_envs=4, max_steps=3, **LONG_PATIENCE)
    env.action_space.seed(0)
    env.reset(seed=0)
    for t in range(1, 10):
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated.any()
        if t % 3:
            assert not truncated.any() and "final_obs" not in info
            assert (obs["step"] == t % 3).all()
        else:
            assert truncated.all()
            assert info["_final_obs"].tolist() == [True] * 4
            assert [final["step"].tolist() for final in info["final_obs"]] == [[3.0]] * 4
            assert (obs["step"] == 0).all()
            assert (obs["history_ids"] == NUM_ITEMS).all()


def test_vector_env_terminates_every_shopper_without_patience():
    env = gym.make_vec(SYNTHETIC, num_envs=4, **NO_PATIENCE)
    env.reset(seed=0)
    for _ in range(5):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert terminated.all() and not truncated.any()
        assert info["_final_obs"].all()
        assert all(final["step"].tolist() == [1.0] for final in info["final_obs"])


def test_vector_env_final_obs_mask_and_episode_lengths():
    num_envs = 8
    env = gym.make_vec(SYNTHETIC, num_envs=num_envs, max_steps=6, patience=9.0)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=1)
    lengths = np.zeros(num_envs, dtype=int)
    seen = {"terminated": 0, "truncated": 0, "running": 0}
    for step in range(200):
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        lengths += 1
        done = terminated | truncated
        assert not (terminated & truncated).any()
        if done.any():
            assert info["_final_obs"].dtype == np.bool_
            assert info["_final_obs"].tolist() == done.tolist(), f"step {step}"
            assert info["final_obs"].shape == (num_envs,)
            for index in range(num_envs):
                final = info["final_obs"][index]
                if done[index]:
                    assert set(final) == OBS_KEYS
                    assert final["step"].tolist() == [float(lengths[index])]
                    assert env.single_observation_space.contains(final)
                else:
                    assert final is None
        else:
            assert "final_obs" not in info and "_final_obs" not in info
        assert truncated.tolist() == ((lengths == 6) & ~terminated).tolist()
        lengths[done] = 0
        assert obs["step"][:, 0].tolist() == lengths.tolist()
        seen["terminated"] += int(terminated.sum())
        seen["truncated"] += int(truncated.sum())
        seen["running"] += int((~done).sum())
    assert min(seen.values()) > 0, seen


# ------------------------------------------------------------ observations
def test_observation_keys_are_exactly_what_a_shop_sees():
    env = gym.make(SYNTHETIC)
    assert set(env.observation_space.spaces) == OBS_KEYS
    obs, _ = env.reset(seed=0)
    assert set(obs) == OBS_KEYS
    obs, *_ = env.step(env.action_space.sample())
    assert set(obs) == OBS_KEYS
    vector = gym.make_vec(SYNTHETIC, num_envs=2)
    assert set(vector.reset(seed=0)[0]) == OBS_KEYS
    sb3 = ShopperSB3VecEnv(2, **shopgym.envs.PRESETS[SYNTHETIC])
    assert set(sb3.observation_space.spaces) == OBS_KEYS
    assert set(sb3.reset()) == OBS_KEYS


def test_observations_do_not_depend_on_the_latent_user_vector():
    """Two Worlds that differ only in the shoppers' latent vectors (and so in every
    utility) give the same first observation: nothing of the shopper leaks into it."""
    world = resolve_world("synthetic")
    model = copy.deepcopy(world.model)
    with torch.no_grad():
        model.user_embedding.mul_(-3.0)
    flipped = dataclasses.replace(world, model=model)
    assert not torch.equal(world.model.user_embedding, model.user_embedding)  # the cached World is intact
    first = gym.make(SYNTHETIC, world=world, oracle_info=True)
    second = gym.make(SYNTHETIC, world=flipped, oracle_info=True)
    for seed in range(5):
        obs, info = first.reset(seed=seed)
        flipped_obs, flipped_info = second.reset(seed=seed)
        assert_same(obs, flipped_obs)
        assert not np.allclose(info["utilities"], flipped_info["utilities"])


@pytest.mark.parametrize("history_length", [3, 10])
def test_history_holds_exactly_the_clicked_items(history_length):
    env = gym.make(SYNTHETIC, history_length=history_length, max_steps=120, **LONG_PATIENCE)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=2)
    clicked: list[int] = []
    clicked_features: list[np.ndarray] = []
    longest = total_clicks = 0
    for step in range(480):
        action = env.action_space.sample()
        shown = obs
        obs, reward, terminated, truncated, info = env.step(action)
        clicks, purchases = info["clicks"], info["purchases"]
        assert clicks.shape == purchases.shape == action.shape
        assert clicks.sum() <= 1 and not (purchases & ~clicks).any()
        assert reward == float(clicks.sum() + purchases.sum())  # 1 per click, 1 per purchase
        if clicks.any():
            candidate = action[np.flatnonzero(clicks)[0]]
            clicked.append(int(shown["candidate_ids"][candidate]))
            clicked_features.append(shown["candidate_features"][candidate])
            total_clicks += 1
        recent = clicked[-history_length:]
        empty = history_length - len(recent)
        expected_ids = [NUM_ITEMS] * empty + recent
        assert obs["history_ids"].tolist() == expected_ids, f"step {step}"
        assert (obs["history_features"][:empty] == 0).all()
        for slot, features in enumerate(clicked_features[-history_length:]):
            np.testing.assert_array_equal(obs["history_features"][empty + slot], features)
        longest = max(longest, len(clicked))
        if terminated or truncated:
            obs, _ = env.reset()
            assert obs["history_ids"].tolist() == [NUM_ITEMS] * history_length
            clicked, clicked_features = [], []
    assert total_clicks > 20
    assert longest > history_length  # the history window did roll over


def test_candidate_features_are_the_items_own_features():
    env = gym.make(SYNTHETIC)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    by_item: dict[int, np.ndarray] = {}
    for _ in range(100):
        for item, features in zip(obs["candidate_ids"], obs["candidate_features"], strict=True):
            if int(item) in by_item:
                np.testing.assert_array_equal(by_item[int(item)], features)
            by_item[int(item)] = features
        assert len(set(obs["candidate_ids"].tolist())) == len(obs["candidate_ids"])
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    assert len(by_item) == NUM_ITEMS


# ------------------------------------------------------------ oracle information
def test_no_utilities_without_oracle_info():
    env = gym.make(SYNTHETIC)
    _, info = env.reset(seed=0)
    assert "utilities" not in info
    _, *_, info = env.step(env.action_space.sample())
    assert "utilities" not in info and set(info) == {"clicks", "purchases"}
    vector = gym.make_vec(SYNTHETIC, num_envs=3)
    _, info = vector.reset(seed=0)
    assert "utilities" not in info
    _, *_, info = vector.step(vector.action_space.sample())
    assert "utilities" not in info
    sb3 = ShopperSB3VecEnv(3, **shopgym.envs.PRESETS[SYNTHETIC])
    sb3.reset()
    assert all("utilities" not in info for info in sb3.reset_infos)
    _, _, _, infos = sb3.step(np.stack([sb3.action_space.sample() for _ in range(3)]))
    assert all("utilities" not in info for info in infos)


def _true_utilities(env, candidate_ids: np.ndarray) -> np.ndarray:
    simulator = env.unwrapped.simulator
    items = torch.as_tensor(candidate_ids).reshape(simulator.num_shoppers, -1)
    return simulator.world.utilities(simulator.shopper, items).cpu().numpy()


def test_oracle_info_single_env():
    env = gym.make(SYNTHETIC, oracle_info=True)
    obs, info = env.reset(seed=0)
    assert info["utilities"].shape == (10,)
    np.testing.assert_allclose(info["utilities"], _true_utilities(env, obs["candidate_ids"])[0])
    env.action_space.seed(0)
    for _ in range(30):
        obs, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert info["utilities"].shape == (10,)
        if terminated or truncated:
            obs, info = env.reset()
        # The utilities are those of the candidates the agent sees next.
        np.testing.assert_allclose(info["utilities"], _true_utilities(env, obs["candidate_ids"])[0])


def test_oracle_info_vector_envs():
    vector = gym.make_vec(SYNTHETIC, num_envs=3, oracle_info=True)
    obs, info = vector.reset(seed=0)
    assert info["utilities"].shape == (3, 10)
    vector.action_space.seed(0)
    for _ in range(30):
        obs, *_, info = vector.step(vector.action_space.sample())
        assert info["utilities"].shape == (3, 10)
        np.testing.assert_allclose(info["utilities"], _true_utilities(vector, obs["candidate_ids"]))
    sb3 = ShopperSB3VecEnv(3, oracle_info=True, **shopgym.envs.PRESETS[SYNTHETIC])
    sb3.reset()
    assert [info["utilities"].shape for info in sb3.reset_infos] == [(10,)] * 3
    _, _, _, infos = sb3.step(np.stack([sb3.action_space.sample() for _ in range(3)]))
    assert [info["utilities"].shape for info in infos] == [(10,)] * 3
