"""Collecting interaction logs in the simulator with a logging policy.

Static recommenders learn only from such logs (never from the World's ground
truth), as a real shop's recommender learns from its own traffic. The logging
policies (:data:`LOGGING_POLICIES`, built by :func:`make_logging_policy`) are what
that traffic was served by; which one it was changes what the log can teach (a
random policy shows every item at every position alike, popularity shows few items).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from gymnasium import spaces

from shopgym.agents.bandits import EpsilonGreedyAgent
from shopgym.agents.base import Agent, Transition
from shopgym.agents.baselines import PopularityAgent, RandomAgent
from shopgym.envs.spaces import SlateSpace
from shopgym.envs.torch_env import as_torch_env
from shopgym.simulator.errors import ConfigError

# Logging policy name -> what a result says it was.
LOGGING_POLICIES: dict[str, str] = {
    "random": "uniformly random slates",
    "popularity": "the k most popular candidates (popularity feature), ties at random",
    "epsilon-greedy": "the epsilon-greedy bandit over items, learning online from the log's own rewards",
}


@dataclass(frozen=True)
class SlateLog:
    """n logged slates, as tensors on the environment's device.

    Attributes:
        history_ids: (n, H) the shopper's clicked items before the slate (``M`` = empty).
        shown_ids: (n, k) catalogue IDs shown, by position.
        clicks: (n, k) bool; purchases: (n, k) bool.
        reward: (n,) the step's reward.
    """

    history_ids: torch.Tensor
    shown_ids: torch.Tensor
    clicks: torch.Tensor
    purchases: torch.Tensor
    reward: torch.Tensor

    def __len__(self) -> int:
        return len(self.reward)


def collect_log(env: Any, policy: Agent, num_slates: int, seed: int) -> SlateLog:
    """Run ``policy`` on ``env`` until ``num_slates`` slates (at least) have been shown;
    returns every slate shown.

    ``env`` is a torch vector env (:class:`shopgym.envs.torch_env.TorchVectorEnv`) or a
    Gymnasium vector env with same-step autoreset (ours, or Gymnasium's sync/async
    ones, through :class:`~shopgym.envs.torch_env.GymnasiumTorchAdapter`: the last
    slate of an ended session is read from ``info["final_info"]``); another autoreset
    mode is a :class:`ConfigError`.

    A policy that ``learns_online`` (the ε-greedy bandit) observes every batch of
    transitions while it logs, as a shop's live bandit would."""
    env = as_torch_env(env, "collect_log")
    observation, _ = env.reset(seed=seed)
    parts: dict[str, list[torch.Tensor]] = {field.name: [] for field in fields(SlateLog)}
    shown = 0
    while shown < num_slates:
        action = policy.act(observation)
        step = env.step(action)
        if policy.learns_online:
            policy.observe(Transition(observation, action, step))
        parts["history_ids"].append(observation["history_ids"])
        parts["shown_ids"].append(observation["candidate_ids"].gather(1, action))
        parts["clicks"].append(step.clicks)
        parts["purchases"].append(step.purchases)
        parts["reward"].append(step.reward)
        observation = step.observation
        shown += len(action)
    return SlateLog(**{name: torch.cat(values) for name, values in parts.items()})


def make_logging_policy(
    name: str,
    observation_space: spaces.Dict,
    action_space: SlateSpace,
    seed: int,
    device: str | torch.device = "auto",
    epsilon: float = 0.1,
) -> Agent:
    """The logging policy ``name`` (a key of :data:`LOGGING_POLICIES`), seeded with ``seed``.

    Args:
        epsilon: the exploration probability of ``"epsilon-greedy"`` (ignored otherwise).

    Raises:
        ConfigError: ``name`` is not a logging policy.
    """
    if name == "random":
        return RandomAgent(observation_space, action_space, seed=seed, device=device)
    if name == "popularity":
        return PopularityAgent(observation_space, action_space, seed=seed, device=device)
    if name == "epsilon-greedy":
        return EpsilonGreedyAgent(observation_space, action_space, seed=seed, device=device, epsilon=epsilon)
    raise ConfigError(f"unknown logging policy {name!r}; available: {', '.join(LOGGING_POLICIES)}")
