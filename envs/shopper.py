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
    agent shows k of them, in order, as a slate. The shopper clicks (multinomial
    logit over the slate's true utilities with a no-click option and position
    logits; or a cascade or position-based model), may buy what they clicked (more
    likely for liked and cheap items, within their money), and spends time budget.
    Depending on the preset (``envs/presets.py``) their interests drift toward what
    they consume, they get bored of repeated categories, they leave after
    unsatisfying slates, and they come back on later days when satisfied. The
    ground truth (the shopper's latent preferences, fitted with NeuMF on real
    MovieLens ratings, and the state of every mechanism) lives in the simulator
    and is never shown to the agent. docs/dynamics.md gives every equation.

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
    | ``session`` | (1,) float32 | with lifetimes only: earlier sessions of this shopper |
    | ``days_away`` | (1,) float32 | with lifetimes only: days since the previous visit |

    Feature columns: popularity (0), standardised log price (1), C category
    indicators, then for ``item_features="exact"`` or ``"noisy"`` the standardised
    latent item representation of the World's model (for MF: item vector and bias),
    for ``"learned"`` the item vectors of another model family fitted on the same
    data; ``"content"`` stops after the categories. New items (cold start) show
    price and categories only.

    ## Rewards

    ``reward="engagement"`` (the default): ``click_reward`` (1) per click plus
    ``purchase_reward`` (1) per purchase; or ``"clicks"``, ``"purchases"``,
    ``"revenue"`` (price paid, in median prices). ``info["clicks"]`` and
    ``info["purchases"]`` are (k,) bool masks over the slate positions. With
    ``oracle_info=True``, ``info["utilities"]`` holds the true utilities (N,) of the
    next candidates for the shopper who sees them: after a session ends, the next
    shopper's (the vector env's ``final_info["utilities"]`` too), not those of the
    shopper in the final observation. For upper bounds only.

    ## Starting State

    A shopper drawn uniformly from the ``shoppers`` part of the population
    (``"train"`` by default; evaluate on ``"test"``), or a new shopper
    (``population="new"``), with full budgets, empty history, no drift or boredom,
    fresh candidates.

    ## Episode End

    ``terminated``: the shopper left for good (patience ran out, or
    ``leave_after_unsatisfying`` slates in a row had no click worth it: none, or
    only disappointing ones; with lifetimes, a
    session ended and the shopper did not come back). ``truncated``: ``max_steps``
    slates were shown, or the lifetime's ``lifetime_days`` ran out.

    ## Arguments

    ``gymnasium.make("shopgym/Shopper-v1", world=None, shoppers="train",
    device="cpu", oracle_info=False, config=None, **options)``: ``device`` is
    ``"cpu"`` by default (one shopper per step is faster there than on a GPU;
    ``"auto"`` and ``"cuda"`` are accepted); ``world`` is
    ``None`` (the default World shipped with shopgym), ``"synthetic"``, a saved World
    folder or a :class:`World`; ``options`` are fields of
    :class:`shopgym.simulator.config.ShopperConfig` (e.g. ``slate_size=3``) and
    override the preset's. A preset's calibrated choice constants stay as they are
    when its dynamics are overridden: ``shopgym.envs.presets.calibrated(options)``
    recomputes them.

    ## Version History

    - v1 (``Shopper-v1``, ``ShopperLongTerm-v0``, ``ShopperColdStart-v0``): shoppers
      whose state responds to what they are shown (drift, boredom, budgets, money,
      returns, cold start), a click's experience set by the item's quality (so
      click-maximising costs sessions), learned item features, choice constants
      calibrated through the simulator. shopgym 0.3 changed these presets (they
      were in development): the item quality and a click's experience, a shorter
      time budget that disappointing clicks drain (patience 6, click cost 1.5,
      refill 3), leaving after 4 unsatisfying slates; results from 0.2 are not
      comparable.
    - v0 (``Shopper-v0``): the static shopper. Since shopgym 0.2 its World is the
      shipped one (the same on every machine), and every mechanism draws from its
      own random stream, so a seed gives other (equally distributed) rollouts than
      in 0.1; its dynamics are unchanged.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        world: World | str | Path | None = None,
        shoppers: str = "train",
        device: str | torch.device = "cpu",
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
        """A (k,) slate -> observation, reward, terminated, truncated, info."""
        action = np.asarray(action)
        slate = torch.as_tensor(action)[None]
        # A valid NumPy slate is checked here, in Python (a few µs for k items), rather
        # than by the simulator's tensor check; anything else gets the simulator's check,
        # and its error message.
        outcome = self.simulator.step(slate, check=not self._valid(action))
        terminated, truncated = outcome.terminated.item(), outcome.truncated.item()
        # When the episode ended, the simulator has already started the next one: the
        # step shows the state it ended in, and the following reset() the new one.
        self._session_started = terminated or truncated
        state = outcome.final_state if self._session_started else None
        observation = row(to_numpy(self.simulator.observe(state)), 0)
        return observation, outcome.reward.item(), terminated, truncated, self._info(outcome)

    def _valid(self, action: np.ndarray) -> bool:
        """``action`` is a (k,) integer array of distinct indices in ``[0, N)``."""
        space = self.action_space
        if action.shape != (space.slate_size,) or action.dtype.kind not in "iu":
            return False
        items = action.tolist()
        return min(items) >= 0 and max(items) < space.num_candidates and len(set(items)) == len(items)

    def _observation(self) -> dict[str, np.ndarray]:
        return row(to_numpy(self.simulator.observe()), 0)

    def _info(self, outcome: StepOutcome | None) -> dict:
        return row(step_info(self.simulator, outcome, self.oracle_info), 0)
