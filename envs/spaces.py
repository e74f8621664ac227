"""Action and observation spaces of the shopper environments."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from shopgym.simulator.shoppers import ShopperSimulator


class SlateSpace(spaces.MultiDiscrete):
    """Slates of k distinct indices into N candidates, optionally for B shoppers.

    A ``MultiDiscrete`` whose ``sample()`` draws without replacement and whose
    ``contains()`` rejects repeated items, so that environment checkers (which step
    with ``action_space.sample()``) only ever send valid slates, while an invalid
    slate stays an error in ``step``.

    Args:
        num_candidates: N.
        slate_size: k (<= N).
        num_shoppers: B for a batched space of shape (B, k); ``None`` for shape (k,).
    """

    def __init__(
        self,
        num_candidates: int,
        slate_size: int,
        num_shoppers: int | None = None,
        seed: Any = None,
    ):
        if not 1 <= slate_size <= num_candidates:
            raise ValueError(f"slate_size must be in [1, {num_candidates}], got {slate_size}")
        shape = (slate_size,) if num_shoppers is None else (num_shoppers, slate_size)
        super().__init__(np.full(shape, num_candidates, dtype=np.int64), dtype=np.int64, seed=seed)
        self.num_candidates = num_candidates
        self.slate_size = slate_size
        self.num_shoppers = num_shoppers

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        if mask is not None or probability is not None:
            raise ValueError("SlateSpace.sample does not support mask or probability")
        rows = 1 if self.num_shoppers is None else self.num_shoppers
        slates = random_slates(rows, self.num_candidates, self.slate_size, self.np_random)
        return slates[0] if self.num_shoppers is None else slates

    def contains(self, x: Any) -> bool:
        if not super().contains(x):
            return False
        rows = np.sort(np.asarray(x).reshape(-1, self.slate_size), axis=1)
        return bool((rows[:, 1:] != rows[:, :-1]).all())

    def __repr__(self) -> str:
        batch = "" if self.num_shoppers is None else f", num_shoppers={self.num_shoppers}"
        return f"SlateSpace(num_candidates={self.num_candidates}, slate_size={self.slate_size}{batch})"


@batch_space.register(SlateSpace)
def _batch_slate_space(space: SlateSpace, n: int = 1) -> SlateSpace:
    """Batch a single-shopper SlateSpace for Gymnasium's sync/async vector envs, which
    would otherwise fall back to a plain integer Box whose samples repeat items."""
    if space.num_shoppers is not None:
        raise ValueError(f"{space} is already batched")
    return SlateSpace(space.num_candidates, space.slate_size, n, seed=deepcopy(space.np_random))


def random_slates(
    num_rows: int, num_candidates: int, slate_size: int, rng: np.random.Generator
) -> np.ndarray:
    """(B, k) uniformly random slates without repeats."""
    keys = rng.random((num_rows, num_candidates))
    return np.argsort(keys, axis=1)[:, :slate_size].astype(np.int64)


def observation_space(simulator: ShopperSimulator) -> spaces.Dict:
    """The observation space of one shopper, from ``simulator.observation_spec()``."""
    entries = {}
    for key, (kind, shape, *bounds) in simulator.observation_spec().items():
        if kind == "ids":
            entries[key] = spaces.MultiDiscrete(np.full(shape, bounds[0], dtype=np.int64))
        else:
            low, high = (np.broadcast_to(_array(b), shape) for b in bounds)
            entries[key] = spaces.Box(low.copy(), high.copy(), dtype=np.float32)
    return spaces.Dict(entries)


def feature_space(space: spaces.Dict) -> spaces.Dict:
    """``space`` without its ID entries (``candidate_ids``, ``history_ids``: every
    ``MultiDiscrete``), keeping the float ``Box`` entries (features, step, ...).

    Policies that one-hot encode ``MultiDiscrete`` inputs (Stable-Baselines3's
    ``MultiInputPolicy``) would otherwise get ``(N + H) * M`` inputs from the IDs alone.
    """
    return spaces.Dict({key: entry for key, entry in space.items() if isinstance(entry, spaces.Box)})


def _array(bound: Any) -> np.ndarray:
    """A float32 array from a number or a tensor on any device."""
    if isinstance(bound, torch.Tensor):
        bound = bound.detach().cpu().numpy()
    return np.asarray(bound, dtype=np.float32)
