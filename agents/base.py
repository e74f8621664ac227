"""The one interface every policy implements, so the runner evaluates them alike.

An agent acts on a batch of observations from a vector environment (B shoppers),
may learn online from each batch of transitions, may train before evaluation on
an environment of *train* shoppers, and can be saved and loaded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from shopgym.envs.core import slate_info
from shopgym.envs.spaces import SlateSpace
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError

Observation = dict[str, np.ndarray]


@dataclass(frozen=True)
class Transition:
    """One step of B shoppers (arrays lead with B).

    ``next_observation`` shows the next shopper where a session ended (same-step
    autoreset); ``info`` is the vector env's step info, in Gymnasium's layout (the
    last step of an ended session under ``info["final_info"]``). :attr:`clicks` and
    :attr:`purchases` read the slate's outcome for every shopper from it.
    """

    observation: Observation
    action: np.ndarray
    reward: np.ndarray
    next_observation: Observation
    terminated: np.ndarray
    truncated: np.ndarray
    info: dict[str, Any]

    @property
    def clicks(self) -> np.ndarray:
        """(B, k) bool: the positions of the slate shown that were clicked."""
        return slate_info(self.info, "clicks")

    @property
    def purchases(self) -> np.ndarray:
        """(B, k) bool: the positions of the slate shown that were bought."""
        return slate_info(self.info, "purchases")


class Agent(ABC):
    """Base class of shopgym policies.

    Args:
        observation_space: the *single* shopper's observation space (a ``Dict``).
        action_space: the single shopper's :class:`SlateSpace`.
        seed: seeds every random draw of the agent.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` for agents that use torch.

    Class attributes:
        name: the name used on the command line.
        needs_oracle: the agent reads the true state (the simulator, through
            :meth:`attach`); only the oracle upper bounds may set this.
        learns_online: ``observe`` updates the agent during evaluation.
        trains_before_evaluation: ``fit`` trains the agent on train shoppers first.
    """

    name: ClassVar[str]
    needs_oracle: ClassVar[bool] = False
    learns_online: ClassVar[bool] = False
    trains_before_evaluation: ClassVar[bool] = False

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
    ):
        if not isinstance(action_space, SlateSpace) or action_space.num_shoppers is not None:
            raise ConfigError(f"{type(self).__name__} needs a single-shopper SlateSpace, got {action_space}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.slate_size = action_space.slate_size
        self.num_candidates = action_space.num_candidates
        self.num_items = int(observation_space["candidate_ids"].nvec[0])
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.device = resolve_device(device)

    def attach(self, env: Any) -> None:
        """Called with the environment the agent is about to act in, before its first
        ``act``. Only oracles (``needs_oracle``) use it, to read the simulator's truth."""

    def fit(self, env: Any, budget: int, seed: int) -> None:
        """Train before evaluation on ``env``, a vector environment of train shoppers,
        for about ``budget`` slates, resetting it with ``seed``. Agents that set
        ``trains_before_evaluation`` override it; the default does nothing."""

    @abstractmethod
    def act(self, observation: Observation, info: dict[str, Any]) -> np.ndarray:
        """(B, ...) observations -> (B, k) int64 slates of distinct candidate indices."""

    def observe(self, transition: Transition) -> None:
        """Learn from one batch of transitions (online learners only)."""

    def describe(self) -> dict[str, Any]:
        """What a result must say about this agent (its training data, settings)."""
        return {"name": self.name}

    def state_dict(self) -> dict[str, Any]:
        """The learned state as tensors (saved with ``torch.save``, loaded with weights_only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ConfigError(f"{self.name} has no state to load, got keys {sorted(state)}")

    def save(self, path: str | Path) -> None:
        torch.save({"name": self.name, "state": self.state_dict()}, Path(path))

    def load(self, path: str | Path) -> None:
        saved = torch.load(Path(path), weights_only=True)
        if saved.get("name") != self.name:
            raise ConfigError(f"{path}: saved agent is {saved.get('name')!r}, not {self.name!r}")
        self.load_state_dict(saved["state"])


def top_k(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the k highest (B, N) scores per row, best first; ties broken at random."""
    tie_breaker = rng.random(scores.shape)
    # lexsort sorts by the last key first: descending score, then the random key.
    order = np.lexsort((tie_breaker, -scores), axis=1)
    return order[:, :k].astype(np.int64)
