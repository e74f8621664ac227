"""Random and popularity."""

from __future__ import annotations

import numpy as np
import torch

from shopgym.agents import PopularityAgent, RandomAgent
from shopgym.simulator.shoppers import POPULARITY_FEATURE

from .helpers import synthetic_env


def _make(cls, env, seed=0):
    return cls(env.single_observation_space, env.single_action_space, seed=seed, device="cpu")


def test_popularity_shows_the_most_popular_candidates_first():
    env = synthetic_env()
    agent = _make(PopularityAgent, env)
    observation, _ = env.reset(seed=4)
    for _ in range(20):
        slate = agent.act(observation)
        popularity = observation["candidate_features"][..., POPULARITY_FEATURE]
        shown = popularity.gather(1, slate)
        assert (shown.diff(dim=1) <= 0).all()
        hidden = popularity.scatter(1, slate, float("-inf"))
        assert (shown.amin(1) >= hidden.amax(1)).all()
        observation = env.step(slate).observation


def test_random_slates_are_uniform_over_candidates_and_positions():
    env = synthetic_env()
    agent = _make(RandomAgent, env)
    observation, _ = env.reset(seed=0)
    slates = torch.cat([agent.act(observation) for _ in range(500)]).numpy()  # (4000, 3)
    for position in range(3):
        counts = np.bincount(slates[:, position], minlength=10)
        assert np.all(np.abs(counts - 400) < 80), counts
