"""Valid slates: ``SlateSpace`` samples and accepts only k distinct in-range indices, and
every environment rejects an invalid slate with ``SlateError`` (never repairs it)."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest

import shopgym.envs
from shopgym.envs import ShopperSB3VecEnv, SlateSpace
from shopgym.simulator.errors import SlateError
from tests.envs._helpers import SYNTHETIC, assert_same

# SyntheticShopper-v0: N = 10 candidates, slates of k = 3.
N, K = 10, 3
BAD_SLATES = {
    "repeated": (np.array([4, 1, 4]), "repeats"),
    "out_of_range": (np.array([0, 1, N]), "out of range"),
    "negative": (np.array([-1, 0, 1]), "out of range"),
    "too_short": (np.array([0, 1]), "shape"),
    "too_long": (np.array([0, 1, 2, 3]), "shape"),
    "float": (np.array([0.0, 1.0, 2.0]), "integer"),
    "bool": (np.array([True, False, True]), "integer"),
}


def _no_repeats(rows: np.ndarray) -> bool:
    rows = np.sort(rows.reshape(-1, rows.shape[-1]), axis=1)
    return bool((rows[:, 1:] != rows[:, :-1]).all())


# ------------------------------------------------------------------ SlateSpace
def test_slate_space_rejects_impossible_sizes():
    with pytest.raises(ValueError):
        SlateSpace(5, 6)
    with pytest.raises(ValueError):
        SlateSpace(5, 0)


@pytest.mark.parametrize(("n", "k"), [(10, 3), (5, 5), (7, 1), (40, 39)])
def test_slate_space_samples_never_repeat(n, k):
    space = SlateSpace(n, k, seed=0)
    samples = np.stack([space.sample() for _ in range(2000)])
    assert samples.shape == (2000, k) and samples.dtype == np.int64
    assert samples.min() >= 0 and samples.max() < n
    assert _no_repeats(samples)
    assert all(space.contains(sample) for sample in samples[:200])


def test_slate_space_samples_cover_every_item_at_every_position():
    space = SlateSpace(N, K, seed=1)
    samples = np.stack([space.sample() for _ in range(6000)])
    counts = np.stack([np.bincount(samples[:, p], minlength=N) for p in range(K)])
    expected = 6000 / N
    assert counts.min() > 0.8 * expected and counts.max() < 1.2 * expected


def test_batched_slate_space_samples_valid_rows():
    space = SlateSpace(N, K, num_shoppers=6, seed=0)
    assert space.shape == (6, K)
    for _ in range(300):
        sample = space.sample()
        assert sample.shape == (6, K) and sample.dtype == np.int64
        assert _no_repeats(sample)
        assert sample.min() >= 0 and sample.max() < N
        assert space.contains(sample)


def test_slate_space_contains():
    space = SlateSpace(N, K)
    assert space.contains(np.array([9, 0, 5]))
    assert space.contains([2, 1, 0])
    assert not space.contains(np.array([9, 0, 9]))
    assert not space.contains(np.array([1, 1, 1]))
    assert not space.contains(np.array([0, 1, N]))
    assert not space.contains(np.array([-1, 0, 1]))
    assert not space.contains(np.array([0, 1]))
    assert not space.contains(np.array([0, 1, 2, 3]))
    assert not space.contains(np.array([[0, 1, 2]]))
    assert not space.contains(np.array([0.0, 1.0, 2.0]))


def test_batched_slate_space_contains():
    space = SlateSpace(N, K, num_shoppers=2)
    assert space.contains(np.array([[0, 1, 2], [2, 1, 0]]))
    assert not space.contains(np.array([[0, 1, 2], [3, 4, 3]]))
    assert not space.contains(np.array([[0, 1, 2], [3, 4, N]]))
    assert not space.contains(np.array([0, 1, 2]))
    assert not space.contains(np.array([[0, 1, 2]]))
    # A repeat across rows is fine: each shopper has their own candidates.
    assert space.contains(np.array([[0, 1, 2], [0, 1, 2]]))


def test_slate_space_seeding_is_reproducible():
    first, second = SlateSpace(N, K, seed=42), SlateSpace(N, K, seed=42)
    assert_same([first.sample() for _ in range(50)], [second.sample() for _ in range(50)])
    first.seed(7)
    a = [first.sample() for _ in range(50)]
    first.seed(7)
    assert_same(a, [first.sample() for _ in range(50)])
    first.seed(8)
    with pytest.raises(AssertionError):
        assert_same(a, [first.sample() for _ in range(50)])
    batched = SlateSpace(N, K, num_shoppers=4, seed=3)
    again = SlateSpace(N, K, num_shoppers=4, seed=3)
    assert_same([batched.sample() for _ in range(20)], [again.sample() for _ in range(20)])


@pytest.mark.parametrize("num_shoppers", [None, 3])
def test_slate_space_pickles(num_shoppers):
    space = SlateSpace(N, K, num_shoppers=num_shoppers, seed=5)
    space.sample()
    copy = pickle.loads(pickle.dumps(space))
    assert isinstance(copy, SlateSpace)
    assert copy == space and repr(copy) == repr(space)
    assert (copy.num_candidates, copy.slate_size, copy.num_shoppers) == (N, K, num_shoppers)
    # The random state travels with it, and repeats are still rejected.
    assert_same([copy.sample() for _ in range(20)], [space.sample() for _ in range(20)])
    bad = np.array([1, 1, 2]) if num_shoppers is None else np.array([[1, 1, 2]] * 3)
    assert not copy.contains(bad)


# ------------------------------------------------------------- environments
@pytest.mark.parametrize("bad", sorted(BAD_SLATES))
def test_single_env_rejects_invalid_slates(bad):
    slate, message = BAD_SLATES[bad]
    env = gym.make(SYNTHETIC)
    env.reset(seed=0)
    with pytest.raises(SlateError, match=message):
        env.unwrapped.step(slate)
    with pytest.raises(SlateError, match=message):
        env.unwrapped.step(slate.tolist())


def _batched_bad(bad: str, num_envs: int) -> np.ndarray:
    slate = BAD_SLATES[bad][0]
    good = np.arange(len(slate)).astype(slate.dtype)
    # Only the last shopper's slate is wrong.
    return np.stack([good] * (num_envs - 1) + [slate])


@pytest.mark.parametrize("bad", sorted(BAD_SLATES))
def test_vector_env_rejects_invalid_slates(bad):
    env = gym.make_vec(SYNTHETIC, num_envs=3)
    env.reset(seed=0)
    with pytest.raises(SlateError, match=BAD_SLATES[bad][1]):
        env.step(_batched_bad(bad, 3))


@pytest.mark.parametrize("bad", sorted(BAD_SLATES))
def test_sb3_vec_env_rejects_invalid_slates(bad):
    env = ShopperSB3VecEnv(3, **shopgym.envs.PRESETS[SYNTHETIC])
    env.seed(0)
    env.reset()
    with pytest.raises(SlateError, match=BAD_SLATES[bad][1]):
        env.step(_batched_bad(bad, 3))


def test_vector_envs_reject_wrong_batch_shapes():
    vector = gym.make_vec(SYNTHETIC, num_envs=3)
    vector.reset(seed=0)
    sb3 = ShopperSB3VecEnv(3, **shopgym.envs.PRESETS[SYNTHETIC])
    sb3.reset()
    for actions in (np.array([0, 1, 2]), np.array([[0, 1, 2]] * 2), np.array([[0, 1, 2]] * 4)):
        with pytest.raises(SlateError, match="shape"):
            vector.step(actions)
        with pytest.raises(SlateError, match="shape"):
            sb3.step(actions)


def test_rejected_slate_leaves_the_env_untouched():
    """A rejected slate must not advance the shopper nor consume random draws."""
    checked, clean = gym.make(SYNTHETIC), gym.make(SYNTHETIC)
    assert_same(checked.reset(seed=4), clean.reset(seed=4))
    clean.action_space.seed(0)
    for step in range(60):
        action = clean.action_space.sample()
        for slate, _ in BAD_SLATES.values():
            with pytest.raises(SlateError):
                checked.unwrapped.step(slate)
        first, second = checked.step(action), clean.step(action)
        assert_same(first, second, f"step {step}")
        if first[2] or first[3]:
            assert_same(checked.reset(), clean.reset())


def test_other_integer_dtypes_are_accepted():
    env = gym.make(SYNTHETIC).unwrapped
    env.reset(seed=0)
    for dtype in (np.int32, np.int64, np.uint8):
        obs, *_ = env.step(np.array([2, 0, 1], dtype=dtype))
        assert env.observation_space.contains(obs)
