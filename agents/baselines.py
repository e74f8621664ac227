"""Policies that do not learn: random and popularity (the oracles are in ``oracles.py``)."""

from __future__ import annotations

import torch

from shopgym.agents.base import Agent, Observation, batch_of, random_slates, top_k
from shopgym.simulator.shoppers import POPULARITY_FEATURE


class RandomAgent(Agent):
    """Shows k distinct candidates drawn uniformly at random (the lower reference)."""

    name = "random"

    def act(self, observation: Observation) -> torch.Tensor:
        rows, device = batch_of(observation)
        return random_slates(rows, self.num_candidates, self.slate_size, self.generator).to(device)


class PopularityAgent(Agent):
    """Shows the k most popular candidates, most popular first.

    Popularity is the observation's popularity feature: interaction counts in the
    real data the World was fitted on."""

    name = "popularity"

    def act(self, observation: Observation) -> torch.Tensor:
        popularity = observation["candidate_features"][..., POPULARITY_FEATURE].to(self.device)
        return top_k(popularity, self.slate_size, self.generator).to(observation["candidate_ids"].device)
