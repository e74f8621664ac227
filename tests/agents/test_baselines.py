"""Random and popularity."""

from __future__ import annotations

import numpy as np

from shopgym.agents import PopularityAgent, RandomAgent
from shopgym.simulator.shoppers import POPULARITY_FEATURE

from .helpers import synthetic_env


def _make(cls, env, seed=0):
    return cls(env.single_observation_space, env.single_action_space, seed=seed, device="cpu")


def test_popularity_shows_the_most_popular_candidates_first():
    env = synthetic_env()
    agent = _make(PopularityAgent, env)
    observation, info = env.reset(seed=4)
    for _ in range(20):
        slate = agent.act(observation, info)
        popularity = observation["candidate_features"][..., POPULARITY_FEATURE]
        shown = np.take_along_axis(popularity, slate, axis=1)
        assert (np.diff(shown, axis=1) <= 0).all()
        hidden = popularity.copy()
        np.put_along_axis(hidden, slate, -np.inf, axis=1)
        assert (shown.min(1) >= hidden.max(1)).all()
        observation, _, _, _, info = env.step(slate)


def test_random_slates_are_uniform_over_candidates_and_positions():
    env = synthetic_env()
    agent = _make(RandomAgent, env)
    observation, info = env.reset(seed=0)
    slates = np.concatenate([agent.act(observation, info) for _ in range(500)])  # (4000, 3)
    for position in range(3):
        counts = np.bincount(slates[:, position], minlength=10)
        assert np.all(np.abs(counts - 400) < 80), counts
