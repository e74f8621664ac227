"""Bandits that learn online from the shoppers' clicks."""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces

from shopgym.agents.base import Agent, Observation, Transition, random_slates, top_k
from shopgym.envs.spaces import SlateSpace
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
        self.reward_sum = torch.zeros(self.num_items, dtype=torch.float64, device=self.device)
        self.impressions = torch.zeros(self.num_items, dtype=torch.float64, device=self.device)

    def estimates(self) -> torch.Tensor:
        """(M,) shrunk mean reward per impression of every catalogue item."""
        total = self.impressions.sum()
        global_mean = self.reward_sum.sum() / total.clamp(min=1.0)
        return (self.reward_sum + self.prior_impressions * global_mean) / (
            self.impressions + self.prior_impressions
        )

    def act(self, observation: Observation) -> torch.Tensor:
        candidates = observation["candidate_ids"].to(self.device)
        rows = len(candidates)
        greedy = top_k(self.estimates()[candidates], self.slate_size, self.generator)
        explore = torch.rand(rows, generator=self.generator, device=self.device) < self.epsilon
        exploring = random_slates(rows, self.num_candidates, self.slate_size, self.generator)
        return torch.where(explore[:, None], exploring, greedy).to(observation["candidate_ids"].device)

    def observe(self, transition: Transition) -> None:
        shown = transition.observation["candidate_ids"].gather(1, transition.action).to(self.device)
        credited = (transition.reward[:, None] * transition.clicks).to(self.device, torch.float64)
        self.reward_sum.index_add_(0, shown.reshape(-1), credited.reshape(-1))
        self.impressions.index_add_(0, shown.reshape(-1), torch.ones_like(credited).reshape(-1))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "epsilon": self.epsilon,
            "prior_impressions": self.prior_impressions,
            "training": "online, during evaluation, from the test shoppers' clicks",
        }

    def state_dict(self) -> dict[str, Any]:
        return {"reward_sum": self.reward_sum.cpu(), "impressions": self.impressions.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reward_sum = state["reward_sum"].to(self.device, torch.float64).clone()
        self.impressions = state["impressions"].to(self.device, torch.float64).clone()
