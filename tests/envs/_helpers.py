"""Helpers shared by the environment tests: exact comparisons of nested results."""

from __future__ import annotations

from typing import Any

import numpy as np

import shopgym.envs

SYNTHETIC = "shopgym/SyntheticShopper-v0"
MOVIELENS = "shopgym/Shopper-v0"
ALL_IDS = sorted(shopgym.envs.PRESETS)
OBS_KEYS = {"candidate_ids", "candidate_features", "history_ids", "history_features", "step"}
# What presets with lifetimes add.
LIFETIME_KEYS = {"session", "days_away"}


def obs_keys(env_id: str) -> set[str]:
    """The observation keys of a registered shopper preset."""
    lifetime = shopgym.envs.PRESETS[env_id].get("lifetime_days", 0) > 0
    return OBS_KEYS | LIFETIME_KEYS if lifetime else OBS_KEYS


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Exact equality of nested dicts / lists / tuples / arrays / scalars (dtypes included)."""
    if isinstance(a, dict):
        assert isinstance(b, dict), where
        assert set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{index}]")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert isinstance(b, np.ndarray) and b.dtype == object and a.shape == b.shape, where
        for index, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
            assert_same(x, y, f"{where}[{index}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), f"{where}: {type(b)} is not an array"
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
        assert a == b, f"{where}: {a!r} != {b!r}"


def single_rollout(env, seed: int, num_steps: int, action_seed: int = 0) -> list:
    """Records of a single-env rollout: reset(seed), then seeded random slates; after an
    episode end, reset() without a seed."""
    env.action_space.seed(action_seed)
    obs, info = env.reset(seed=seed)
    records: list = [("reset", obs, info)]
    for _ in range(num_steps):
        result = env.step(env.action_space.sample())
        records.append(("step", *result))
        if result[2] or result[3]:
            records.append(("reset", *env.reset()))
    return records


def vector_rollout(env, seed: int, num_steps: int, action_seed: int = 0) -> list:
    env.action_space.seed(action_seed)
    records: list = [("reset", *env.reset(seed=seed))]
    for _ in range(num_steps):
        records.append(("step", *env.step(env.action_space.sample())))
    return records


def count_episode_ends(records: list) -> int:
    return sum(int(np.sum(np.asarray(r[3]) | np.asarray(r[4]))) for r in records if r[0] == "step")
