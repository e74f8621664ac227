"""Bandits that learn online from the shoppers' clicks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from shopgym.agents.base import Agent, Observation, Transition, top_k
from shopgym.envs.core import require_same_step_autoreset
from shopgym.envs.spaces import SlateSpace, random_slates
from shopgym.simulator.errors import ConfigError


class EpsilonGreedyAgent(Agent):
    """Non-contextual ε-greedy bandit over catalogue items, learning online.

    It estimates each item's mean reward per impression (the step's reward is
    credited to the clicked position), shows the k candidates with the highest
    estimates (best first), and with probability ``epsilon`` per shopper and step a
    uniformly random slate instead. Estimates are shrunk towards the global mean
    reward per impression with the weight of ``prior_impressions`` impressions, so
    items never shown start at the average.

    Args:
        epsilon: exploration probability.
        prior_impressions: strength of the shrinkage.
    """

    name = "epsilon-greedy"
    learns_online = True

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str = "auto",
        epsilon: float = 0.1,
        prior_impressions: float = 1.0,
    ):
        super().__init__(observation_space, action_space, seed, device)
        if not 0 <= epsilon <= 1:
            raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
        if not prior_impressions > 0:
            raise ConfigError(f"prior_impressions must be > 0, got {prior_impressions}")
        self.epsilon = epsilon
        self.prior_impressions = prior_impressions
        self.reward_sum = np.zeros(self.num_items)
        self.impressions = np.zeros(self.num_items)

    def estimates(self) -> np.ndarray:
        """(M,) shrunk mean reward per impression of every catalogue item."""
        total = self.impressions.sum()
        global_mean = self.reward_sum.sum() / total if total else 0.0
        return (self.reward_sum + self.prior_impressions * global_mean) / (
            self.impressions + self.prior_impressions
        )

    def act(self, observation: Observation, info: dict[str, Any]) -> np.ndarray:
        candidates = observation["candidate_ids"]
        greedy = top_k(self.estimates()[candidates], self.slate_size, self.rng)
        explore = self.rng.random(len(candidates)) < self.epsilon
        exploring = random_slates(len(candidates), self.num_candidates, self.slate_size, self.rng)
        return np.where(explore[:, None], exploring, greedy)

    def attach(self, env: Any) -> None:
        # It learns from every step's slate: an ended session's last one must be in
        # the same step's info (same-step autoreset), not in a reset-only step.
        require_same_step_autoreset(env, self.name)

    def observe(self, transition: Transition) -> None:
        shown = np.take_along_axis(transition.observation["candidate_ids"], transition.action, axis=1)
        credited = transition.reward[:, None] * transition.clicks
        np.add.at(self.reward_sum, shown, credited)
        np.add.at(self.impressions, shown, 1.0)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "epsilon": self.epsilon,
            "prior_impressions": self.prior_impressions,
            "training": "online, during evaluation, from the test shoppers' clicks",
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "reward_sum": torch.from_numpy(self.reward_sum),
            "impressions": torch.from_numpy(self.impressions),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reward_sum = state["reward_sum"].numpy().copy()
        self.impressions = state["impressions"].numpy().copy()
