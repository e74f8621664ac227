"""The one interface every policy implements, so the runner evaluates them alike.

An agent acts on a batch of observations from a torch-native vector environment
(:class:`shopgym.envs.torch_env.TorchVectorEnv`: B shoppers, tensors on one device)
and returns a (B, k) tensor of slates on the same device; it may learn online from
each batch of transitions (tensors too), may train before evaluation on an
environment of *train* shoppers, and can be saved and loaded. Agents built on NumPy
libraries (Stable-Baselines3) convert at their own edge.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from gymnasium import spaces

from shopgym.envs.spaces import SlateSpace
from shopgym.envs.torch_env import Observation, TorchStep
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.sampling import uniform_subsets


@dataclass(frozen=True)
class Transition:
    """One step of B shoppers, as tensors on the environment's device (B first).

    Attributes:
        observation: what the agent acted on.
        action: (B, k) the slates it showed.
        step: what the environment returned (:class:`TorchStep`): next observation
            (a row whose session ended shows the next shopper), reward, terminated,
            truncated, the slate's clicks and purchases, the final observation of
            ended sessions.
    """

    observation: Observation
    action: torch.Tensor
    step: TorchStep

    @property
    def reward(self) -> torch.Tensor:
        """(B,) float32."""
        return self.step.reward

    @property
    def clicks(self) -> torch.Tensor:
        """(B, k) bool: the positions of the slate shown that were clicked."""
        return self.step.clicks

    @property
    def purchases(self) -> torch.Tensor:
        """(B, k) bool: the positions of the slate shown that were bought."""
        return self.step.purchases

    @property
    def done(self) -> torch.Tensor:
        """(B,) bool: the sessions that ended in this step."""
        return self.step.done

    @property
    def next_observation(self) -> Observation:
        """The observation after the step (the next session's where one ended)."""
        return self.step.observation


Checkpoint = Callable[[int], None]
"""The runner's callback at points of training, called with the slates shown so far.

It may carry two attributes that :class:`CurvePoints` reads: ``points``, how many
evenly spaced points it wants (0: none, it is only there for ``progress``), and
``progress(steps)``, called at every update of training (a progress bar)."""


class CurvePoints:
    """Calls ``checkpoint(steps)`` when training passes each of ``points`` evenly spaced
    step counts up to ``budget`` (the last at the end of training), and
    ``checkpoint.progress(steps)`` at every update where the checkpoint has one.

    Args:
        budget: the training budget, in slates.
        checkpoint: the runner's callback, or ``None`` (then nothing is called).
        points: evaluation points along training; by default the checkpoint's own
            ``points`` attribute (the runner sets it from ``--curve-points``), else 10.
    """

    def __init__(self, budget: int, checkpoint: Checkpoint | None, points: int | None = None):
        if points is None:
            points = getattr(checkpoint, "points", 10)
        self.checkpoint = checkpoint if points > 0 else None
        self.progress = getattr(checkpoint, "progress", None)
        self.every = max(1, budget // max(1, points))
        self.next = self.every
        self.last = 0  # the steps of the last point taken

    def update(self, steps: int) -> None:
        """Training has shown ``steps`` slates so far."""
        if self.progress is not None:
            self.progress(steps)
        if self.checkpoint is not None and steps >= self.next:
            self.checkpoint(steps)
            self.last = steps
            self.next = (steps // self.every + 1) * self.every

    def finish(self, steps: int) -> None:
        """Training is over after ``steps`` slates (a final point, unless one was just taken)."""
        if self.progress is not None:
            self.progress(steps)
        if self.checkpoint is not None and steps > self.last:
            self.checkpoint(steps)
            self.last = steps


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

    Attributes:
        training_log: what ``fit`` recorded as it trained, one dict of floats per
            logging point: ``steps`` (slates shown so far) or ``epoch`` (for agents
            that train offline on a log), and the losses and statistics of training
            there. It depends only on the seed (no wall times), so the runner keeps
            it with the records and TensorBoard reads it. Empty for agents that do
            not train.
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
        # The catalogue size M, where candidates are catalogue items (not InterestEvolution's).
        ids = observation_space.spaces.get("candidate_ids")
        self.num_items = None if ids is None else int(ids.nvec[0])
        self.seed = seed
        self.device = resolve_device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.training_log: list[dict[str, float]] = []

    def attach(self, env: Any) -> None:
        """Called with the environment the agent is about to act in, before its first
        ``act``. Only oracles (``needs_oracle``) use it, to read the simulator's truth."""

    def fit(self, env: Any, budget: int, seed: int, checkpoint: Checkpoint | None = None) -> None:
        """Train before evaluation on ``env``, a torch vector environment of train
        shoppers (:class:`shopgym.envs.torch_env.TorchVectorEnv`), for about ``budget``
        slates (shopper-steps summed over the batch), resetting it with ``seed``.

        Agents that learn from interaction call ``checkpoint(steps)`` at regular points
        of training (:class:`CurvePoints` does the bookkeeping), with the slates shown
        so far: the runner evaluates the current policy (``act``) there on held-out
        shoppers, for learning curves. ``act`` must not draw from the streams that
        training uses, so that a run with checkpoints trains exactly as one without.

        Agents that set ``trains_before_evaluation`` override it; the default does
        nothing."""

    @abstractmethod
    def act(self, observation: Observation) -> torch.Tensor:
        """(B, ...) observation tensors -> (B, k) int64 slates of distinct candidate
        indices, on the observation's device."""

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


def check_at_least(bound: int, **hyperparameters: float) -> None:
    """Raise a :class:`ConfigError` naming the first of ``hyperparameters`` (name=value)
    below ``bound``, for the constructors' checks of their settings."""
    for name, value in hyperparameters.items():
        if not value >= bound:  # not `value < bound`, which lets NaN through
            raise ConfigError(f"{name} must be >= {bound}, got {value}")


def top_k(scores: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """(B, k) indices of the k highest (B, N) scores per row, best first; ties broken at
    random (by ``generator``, which must live on the scores' device)."""
    # Shuffle first, then sort stably: equal scores keep the random order of the shuffle.
    shuffle = torch.rand(scores.shape, generator=generator, device=scores.device).argsort(1)
    order = torch.sort(scores.gather(1, shuffle), dim=1, descending=True, stable=True).indices
    return shuffle.gather(1, order[:, :k])


def batch_of(observation: Observation) -> tuple[int, torch.device]:
    """B and the device of a batch of observations."""
    first = next(iter(observation.values()))
    return len(first), first.device


def random_slates(num_rows: int, num_candidates: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(B, k) uniformly random slates of distinct candidates, on ``generator``'s device."""
    return uniform_subsets(num_rows, num_candidates, k, generator, generator.device)
