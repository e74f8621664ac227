"""Collecting interaction logs in the simulator with a logging policy.

Static recommenders learn only from such logs (never from the World's ground
truth), as a real shop's recommender learns from its own traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shopgym.agents.base import Agent
from shopgym.envs.core import require_same_step_autoreset, slate_info


@dataclass(frozen=True)
class SlateLog:
    """n logged slates.

    Attributes:
        history_ids: (n, H) the shopper's clicked items before the slate (``M`` = empty).
        shown_ids: (n, k) catalogue IDs shown, by position.
        clicks: (n, k) bool; purchases: (n, k) bool.
        reward: (n,) the step's reward.
    """

    history_ids: np.ndarray
    shown_ids: np.ndarray
    clicks: np.ndarray
    purchases: np.ndarray
    reward: np.ndarray

    def __len__(self) -> int:
        return len(self.reward)


def collect_log(env, policy: Agent, num_slates: int, seed: int) -> SlateLog:
    """Run ``policy`` on ``env`` (a Gymnasium vector env with same-step autoreset:
    ours, or Gymnasium's sync/async ones) until ``num_slates`` slates (at least) have
    been shown; returns every slate shown. The last slate of an ended session is read
    from ``info["final_info"]``; another autoreset mode is a :class:`ConfigError`."""
    require_same_step_autoreset(env, "collect_log")
    observation, info = env.reset(seed=seed)
    parts: dict[str, list[np.ndarray]] = {field: [] for field in SlateLog.__dataclass_fields__}
    shown = 0
    while shown < num_slates:
        action = policy.act(observation, info)
        next_observation, reward, _, _, info = env.step(action)
        parts["history_ids"].append(observation["history_ids"])
        parts["shown_ids"].append(np.take_along_axis(observation["candidate_ids"], action, axis=1))
        parts["clicks"].append(slate_info(info, "clicks"))
        parts["purchases"].append(slate_info(info, "purchases"))
        parts["reward"].append(reward)
        observation = next_observation
        shown += len(action)
    return SlateLog(**{field: np.concatenate(values) for field, values in parts.items()})
