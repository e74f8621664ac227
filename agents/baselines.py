"""Policies that do not learn: random and popularity (the oracles are in ``oracles.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from shopgym.agents.base import Agent, Observation, top_k
from shopgym.envs.spaces import random_slates
from shopgym.simulator.shoppers import POPULARITY_FEATURE


class RandomAgent(Agent):
    """Shows k distinct candidates drawn uniformly at random (the lower reference)."""

    name = "random"

    def act(self, observation: Observation, info: dict[str, Any]) -> np.ndarray:
        num_rows = len(observation["candidate_ids"])
        return random_slates(num_rows, self.num_candidates, self.slate_size, self.rng)


class PopularityAgent(Agent):
    """Shows the k most popular candidates, most popular first.

    Popularity is the observation's popularity feature: interaction counts in the
    real data the World was fitted on."""

    name = "popularity"

    def act(self, observation: Observation, info: dict[str, Any]) -> np.ndarray:
        popularity = observation["candidate_features"][..., POPULARITY_FEATURE]
        return top_k(popularity, self.slate_size, self.rng)
