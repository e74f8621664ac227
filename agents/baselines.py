"""Policies that do not learn: random, popularity, and the oracle upper bound."""

from __future__ import annotations

from typing import Any

import numpy as np

from shopgym.agents.base import Agent, Observation, top_k
from shopgym.envs.spaces import random_slates
from shopgym.simulator.errors import ConfigError
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


class OracleAgent(Agent):
    """Upper bound: reads the true utilities and shows the k best candidates.

    Best first. It is myopic (it maximises the click and purchase probability of
    each slate) and exists only as an upper bound: no real system sees these numbers."""

    name = "oracle"
    needs_oracle = True

    def act(self, observation: Observation, info: dict[str, Any]) -> np.ndarray:
        if "utilities" not in info:
            raise ConfigError("the oracle needs an environment made with oracle_info=True")
        return top_k(info["utilities"], self.slate_size, self.rng)
