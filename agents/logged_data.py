"""Collecting interaction logs in the simulator with a logging policy.

Static recommenders learn only from such logs (never from the World's ground
truth), as a real shop's recommender learns from its own traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from shopgym.agents.base import Agent
from shopgym.envs.torch_env import as_torch_env


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
    mode is a :class:`ConfigError`."""
    env = as_torch_env(env)
    observation, _ = env.reset(seed=seed)
    parts: dict[str, list[torch.Tensor]] = {field.name: [] for field in fields(SlateLog)}
    shown = 0
    while shown < num_slates:
        action = policy.act(observation)
        step = env.step(action)
        parts["history_ids"].append(observation["history_ids"])
        parts["shown_ids"].append(observation["candidate_ids"].gather(1, action))
        parts["clicks"].append(step.clicks)
        parts["purchases"].append(step.purchases)
        parts["reward"].append(step.reward)
        observation = step.observation
        shown += len(action)
    return SlateLog(**{name: torch.cat(values) for name, values in parts.items()})
