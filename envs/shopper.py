"""``shopgym/Shopper-v0``: one shopper browsing slates (the scalar environment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from shopgym.envs.core import make_simulator, row, step_info, to_numpy
from shopgym.envs.spaces import SlateSpace, observation_space
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.outcome import StepOutcome
from shopgym.simulator.world import World


class ShopperEnv(gym.Env):
    """A shopper drawn from a fitted population browses slates of k items.

    ## Description

    At each step the shop offers N candidate items from its catalogue and the
    agent shows k of them, in order, as a slate. The shopper clicks at most one
    item (multinomial logit over the slate's true utilities with a no-click option
    and a per-position bias), may buy the clicked item (more likely for liked and
    cheap items), and spends patience; a slate without a click drains patience
    faster, a purchase gives some back. The ground truth (the shopper's latent
    preferences, fitted with NeuMF on real MovieLens ratings) lives in a World
    and is never shown to the agent.

    ## Action Space

    :class:`SlateSpace`: ``k`` distinct integers in ``[0, N)``, indices into the
    current candidates, best position first. ``sample()`` draws valid slates; a
    slate with repeats or out-of-range indices raises
    :class:`shopgym.simulator.errors.SlateError` (it is never repaired).

    ## Observation Space

    A ``Dict`` of what a real shop sees (``M`` catalogue items, ``F`` features):

    | key | shape | meaning |
    |---|---|---|
    | ``candidate_ids`` | (N,) int64 | catalogue IDs of the candidates |
    | ``candidate_features`` | (N, F) float32 | their item features |
    | ``history_ids`` | (H,) int64 | the last H clicked items, oldest first; ``M`` = empty |
    | ``history_features`` | (H, F) float32 | their features (zeros when empty) |
    | ``step`` | (1,) float32 | slates shown so far in this session |

    Feature columns: popularity (0), standardised log price (1), C category
    indicators, then (``item_features="exact"`` or ``"noisy"``) the standardised
    latent item representation of the World's model (for MF: item vector and bias).

    ## Rewards

    ``click_reward`` (1) per click plus ``purchase_reward`` (1) per purchase.
    ``info["clicks"]`` and ``info["purchases"]`` are (k,) bool masks over the
    slate positions. With ``oracle_info=True``, ``info["utilities"]`` holds the true
    utilities (N,) of the next candidates: for the oracle upper bound only.

    ## Starting State

    A shopper drawn uniformly from the ``shoppers`` part of the population
    (``"train"`` by default; evaluate on ``"test"``), full patience, empty
    history, fresh candidates.

    ## Episode End

    ``terminated``: the shopper's patience reached 0 and they left.
    ``truncated``: ``max_steps`` slates were shown.

    ## Arguments

    ``gymnasium.make("shopgym/Shopper-v0", world=None, shoppers="train",
    device="auto", oracle_info=False, config=None, **options)``: ``world`` is
    ``None`` (the embedded MovieLens World, fitted once and cached), ``"synthetic"``,
    a saved World folder or a :class:`World`; ``options`` are fields of
    :class:`shopgym.simulator.config.ShopperConfig` (e.g. ``slate_size=3``).

    ## Version History

    - v0: initial release.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        world: World | str | Path | None = None,
        shoppers: str = "train",
        device: str | torch.device = "auto",
        oracle_info: bool = False,
        config: ShopperConfig | None = None,
        render_mode: None = None,
        **options: Any,
    ):
        self.simulator = make_simulator(1, world, shoppers, device, config, options)
        self.oracle_info = oracle_info
        self.render_mode = render_mode
        config = self.simulator.config
        self.action_space = SlateSpace(config.num_candidates, config.slate_size)
        self.observation_space = observation_space(self.simulator)
        self._session_started = False  # the simulator already began the next session

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None or not self._session_started:
            self.simulator.reset(seed)
        self._session_started = False
        return self._observation(), self._info(None)

    def step(self, action: np.ndarray):
        slate = torch.as_tensor(np.asarray(action))[None]
        outcome = self.simulator.step(slate)
        terminated, truncated = bool(outcome.terminated[0]), bool(outcome.truncated[0])
        # When the episode ended, the simulator has already started the next one: the
        # step shows the state it ended in, and the following reset() the new one.
        self._session_started = terminated or truncated
        state = outcome.final_state if self._session_started else None
        observation = row(to_numpy(self.simulator.observe(state)), 0)
        return observation, float(outcome.reward[0]), terminated, truncated, self._info(outcome)

    def _observation(self) -> dict[str, np.ndarray]:
        return row(to_numpy(self.simulator.observe()), 0)

    def _info(self, outcome: StepOutcome | None) -> dict:
        return row(step_info(self.simulator, outcome, self.oracle_info), 0)
