"""``shopgym/Shopper-v0``'s shopper, one at a time, in plain Python and NumPy.

A reference for :class:`shopgym.simulator.shoppers.ShopperSimulator` with no code in
common with it: it reads the World once (utilities as a NumPy matrix, prices,
popularity, the calibrated choice constants) and then runs one shopper per
:meth:`ReferenceShopper.step`, the way classic simulators do. One step, for a slate
of k of the N candidates::

    s_j        = utility of the shopper for slate item j (the World's, static)
    P(click j) = exp(beta s_j + b_j) / Z,  P(no click) = exp(beta s0) / Z     (MNL)
    P(buy | click j) = sigmoid(purchase_bias + w_s s_j - sensitivity log(price_j / median))
    reward     = click_reward [click] + purchase_reward [purchase]             (engagement)
    patience  -= step_cost + no_click_cost [no click] + click_cost [click]
                 - purchase_refund [purchase] - utility_refill max(s_j, 0) [click]
    the session ends when patience <= 0 (terminated), or is cut after max_steps slates
    (truncated); fresh candidates are drawn after every slate

Supported: ``ShopperConfig``'s multinomial-logit shopper with every budget,
purchase, money and reward option, and uniform or popularity candidate sampling.
The mechanisms that make utilities move or episodes span sessions (drift, boredom,
complements, quality, lifetimes, new shoppers or items, cascade and PBM choice) are
refused with a :class:`ConfigError`: they are not part of ``Shopper-v0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.reference import StepResult, check_slate
from shopgym.simulator.world import World

# Options of ShopperConfig whose mechanisms the reference does not model, with the
# value that switches each off.
_UNSUPPORTED = {
    "choice_model": "mnl",
    "drift_rate": 0.0,
    "boredom_weight": 0.0,
    "complement_weight": 0.0,
    "quality_weight": 0.0,
    "lifetime_days": 0,
    "population": "fitted",
    "new_item_fraction": 0.0,
}


@dataclass(frozen=True)
class ShopperTruth:
    """What the reference knows of a World, as NumPy arrays (U' shoppers, M items).

    Attributes:
        utilities: (U', M) float32 standardised utility of every item for every member
            of the population (the World's ``utilities``, in the World's precision:
            float64 would double a matrix of some 17 M entries on MovieLens).
        members: (U',) int64 World shopper index of each row of ``utilities``.
        relative_price: (M,) float64 item price over the catalogue's median price.
        popularity: (M,) float64 interaction counts (for popularity sampling).
        beta, no_click_utility, position_logits: the World's calibrated choice constants.
    """

    utilities: np.ndarray
    members: np.ndarray
    relative_price: np.ndarray
    popularity: np.ndarray
    beta: float
    no_click_utility: float
    position_logits: tuple[float, ...]

    @classmethod
    def from_world(cls, world: World, shoppers: str = "train", chunk: int = 512) -> ShopperTruth:
        """Read ``world``'s ``"train"``, ``"test"`` or ``"all"`` shoppers (utilities
        computed ``chunk`` shoppers at a time: the whole matrix at once could be large)."""
        members = world.shopper_indices(shoppers).cpu()
        items = torch.arange(world.num_items, device=world.device)
        rows = [
            world.utilities(users.to(world.device), items.expand(len(users), -1)).cpu().numpy()
            for users in members.split(chunk)
        ]
        price = world.item_price.double().cpu().numpy()
        # The lower of the two middle prices for an even catalogue, as torch.median
        # (which the batched core divides by) defines the median.
        median = np.sort(price)[(len(price) - 1) // 2]
        calibration = world.calibration
        return cls(
            utilities=np.concatenate(rows),
            members=members.numpy(),
            relative_price=price / median,
            popularity=world.item_popularity.double().cpu().numpy(),
            beta=float(calibration.beta),
            no_click_utility=float(calibration.no_click_utility),
            position_logits=tuple(float(v) for v in calibration.position_logits),
        )


def position_bias(logits: Sequence[float], slate_size: int) -> np.ndarray:
    """(k,) position logits b_p: the given ones, the last repeated past their end."""
    values = list(logits)[:slate_size]
    return np.array(values + [values[-1]] * (slate_size - len(values)), dtype=np.float64)


class ReferenceShopper:
    """One shopper of ``shopgym/Shopper-v0`` at a time.

    Args:
        truth: the World (read with :meth:`ShopperTruth.from_world` over ``shoppers``)
            or a :class:`ShopperTruth`.
        config: the shopper's dynamics (see the module docstring for what is supported);
            ``no_click_utility`` and ``position_logits`` default to the World's.
        shoppers: which part of the World's population to draw from, when ``truth`` is a World.
        seed: seed of the simulator's random stream (or a ``np.random.Generator``).

    State of the current episode: ``shopper`` (a row of ``truth.utilities``),
    ``patience``, ``steps``, ``unsatisfied`` (slates in a row without a satisfying
    click), ``money``, ``price_sensitivity``, ``history`` (clicked items, oldest first)
    and ``candidates`` (N,) for the next slate.
    """

    def __init__(
        self,
        truth: World | ShopperTruth,
        config: ShopperConfig = ShopperConfig(),
        shoppers: str = "train",
        seed: int | np.random.Generator | None = None,
    ):
        for name, off in _UNSUPPORTED.items():
            if getattr(config, name) != off:
                raise ConfigError(
                    f"the reference shopper models Shopper-v0's dynamics only: "
                    f"ShopperConfig.{name} must be {off!r}, got {getattr(config, name)!r}"
                )
        self.truth = truth if isinstance(truth, ShopperTruth) else ShopperTruth.from_world(truth, shoppers)
        self.config = config
        self.num_items = self.truth.utilities.shape[1]
        self.num_candidates = config.num_candidates
        self.slate_size = config.slate_size
        if self.num_candidates > self.num_items:
            raise ConfigError(f"num_candidates ({self.num_candidates}) exceeds the {self.num_items} items")
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.beta = self.truth.beta
        s0 = self.truth.no_click_utility if config.no_click_utility is None else config.no_click_utility
        logits = self.truth.position_logits if config.position_logits is None else config.position_logits
        self.bias = position_bias(logits, self.slate_size)  # (k,)
        self.no_click_logit = self.beta * s0
        self.log_price = np.log(self.truth.relative_price)  # (M,)
        popularity = np.maximum(self.truth.popularity, 1.0)
        self.candidate_weights = (
            popularity / popularity.sum() if config.candidate_sampling == "popularity" else None
        )
        self.done = True

    # ------------------------------------------------------------------ episode
    def reset(self) -> dict[str, np.ndarray]:
        """A new shopper, drawn uniformly from the population, starts a session."""
        config, rng = self.config, self.rng
        self.shopper = int(rng.integers(len(self.truth.members)))
        self.utility = self.truth.utilities[self.shopper]  # (M,)
        self.patience = config.patience
        self.steps = 0
        self.unsatisfied = 0
        self.money = config.money
        spread = config.price_sensitivity_spread
        self.price_sensitivity = config.purchase_price_weight * (
            math.exp(spread * rng.standard_normal()) if spread else 1.0
        )
        self.history: list[int] = []
        self.candidates = self._draw_candidates()
        self.done = False
        return self.observe()

    def _draw_candidates(self) -> np.ndarray:
        """(N,) distinct items, uniformly or (successively) in proportion to popularity."""
        return self.rng.choice(self.num_items, self.num_candidates, replace=False, p=self.candidate_weights)

    def observe(self) -> dict[str, np.ndarray]:
        """``candidate_ids`` (N,) int64, ``history_ids`` (H,) int64 (the last H clicked
        items, oldest first, M for an empty slot) and ``step`` (1,) float32. Item
        features are not rebuilt here: they are a lookup of ``candidate_ids``."""
        h = self.config.history_length
        recent = self.history[-h:]
        history = np.array([self.num_items] * (h - len(recent)) + recent, dtype=np.int64)
        return {
            "candidate_ids": self.candidates.astype(np.int64),
            "history_ids": history,
            "step": np.array([self.steps], dtype=np.float32),
        }

    # --------------------------------------------------------------------- step
    def step(self, slate: Sequence[int] | np.ndarray, check: bool = True) -> StepResult:
        """Show a slate: k distinct indices into the N candidates, in slate order."""
        config, rng, k = self.config, self.rng, self.slate_size
        if self.done:
            raise RuntimeError("the episode is over: call reset()")
        slate = np.asarray(slate)
        if check:
            check_slate(slate, k, self.num_candidates)
        items = self.candidates[slate]  # (k,)
        utility = self.utility[items]  # (k,)

        # Multinomial logit over the slate and the no-click option (last), by inverse CDF.
        logits = np.concatenate((self.beta * utility + self.bias, [self.no_click_logit]))
        weights = np.exp(logits - logits.max())
        cumulative = np.cumsum(weights)
        choice = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        clicks = np.zeros(k, dtype=bool)
        clicked = choice < k
        bought = False
        price = value = 0.0
        if clicked:
            clicks[choice] = True
            item, value = int(items[choice]), float(utility[choice])
            price = float(self.truth.relative_price[item])
            logit = (
                config.purchase_bias
                + config.purchase_utility_weight * value
                - self.price_sensitivity * self.log_price[item]
            )
            # With a money budget, only what the shopper can still afford is bought.
            affordable = config.money <= 0 or price <= self.money
            # sigmoid(logit), written with tanh so that no logit overflows exp.
            bought = affordable and rng.random() < 0.5 * (1.0 + math.tanh(0.5 * logit))
            self.history.append(item)

        if config.reward == "clicks":
            reward = float(clicked)
        elif config.reward == "purchases":
            reward = float(bought)
        elif config.reward == "revenue":
            reward = price if bought else 0.0
        else:
            reward = config.click_reward * clicked + config.purchase_reward * bought

        # Patience: every slate costs time, a boring one more; clicks cost their time,
        # purchases and good items give some back.
        self.patience -= config.step_cost
        if clicked:
            self.patience -= config.click_cost
            self.patience += config.utility_refill * max(value, 0.0)
        else:
            self.patience -= config.no_click_cost
        if bought:
            self.patience += config.purchase_refund
            self.money -= price
        self.steps += 1
        # A satisfying slate is one with a click of positive experience (here: utility).
        self.unsatisfied = 0 if clicked and value > 0 else self.unsatisfied + 1

        leaves = config.leave_after_unsatisfying > 0 and self.unsatisfied >= config.leave_after_unsatisfying
        terminated = self.patience <= 0 or leaves
        truncated = not terminated and self.steps >= config.max_steps
        self.done = terminated or truncated
        self.candidates = self._draw_candidates()
        return StepResult(float(reward), clicks, terminated, truncated)
