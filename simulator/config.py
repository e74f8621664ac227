"""Configuration of the shopper dynamics (everything except the World's ground truth)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, get_args

from shopgym.simulator.errors import ConfigError

ItemFeatures = Literal["exact", "noisy", "content"]
CandidateSampling = Literal["uniform", "popularity"]


@dataclass(frozen=True)
class ShopperConfig:
    """How shoppers browse, click, buy and leave.

    A step shows one slate. The shopper clicks at most one item (multinomial logit,
    see :mod:`shopgym.simulator.choice`), may buy it, and spends patience::

        patience -= step_cost + no_click_cost * [no click] - purchase_refund * [purchase]

    The session ends (``terminated``) when patience reaches 0, or is cut
    (``truncated``) after ``max_steps`` slates.
    """

    slate_size: int = 5
    """k, the number of items in a slate."""
    num_candidates: int = 20
    """N, the number of candidate items offered to the agent at each step."""
    history_length: int = 10
    """H, the number of most recent clicked items in the observation."""
    max_steps: int = 50
    """Time limit of a session (``truncated`` when reached)."""
    patience: float = 10.0
    """Initial time budget of a session."""
    step_cost: float = 1.0
    """Patience spent by every slate."""
    no_click_cost: float = 1.0
    """Extra patience spent by a slate with no click (boring slates drain faster)."""
    purchase_refund: float = 1.0
    """Patience given back by a purchase (satisfied shoppers stay longer)."""
    click_reward: float = 1.0
    purchase_reward: float = 1.0
    purchase_bias: float = -1.0
    """Logit of buying a clicked item of utility 0 at the median price."""
    purchase_utility_weight: float = 1.0
    """How much the clicked item's utility raises the purchase logit."""
    purchase_price_weight: float = 1.0
    """How much log(price / median price) lowers the purchase logit."""
    candidate_sampling: CandidateSampling = "uniform"
    """How the N candidates are drawn from the catalogue (without replacement):
    uniformly, or proportionally to item popularity."""
    item_features: ItemFeatures = "exact"
    """Item features in observations: ``exact`` latent item vectors, ``noisy`` ones
    (fixed Gaussian noise per item), or ``content`` only (popularity, price, categories)."""
    feature_noise: float = 0.5
    """Standard deviation of the noise for ``item_features="noisy"``."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"ShopperConfig.{name} must be finite, got {value!r}")
        positive_ints = ("slate_size", "num_candidates", "history_length", "max_steps")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"ShopperConfig.{name} must be a positive integer, got {value!r}")
        if self.slate_size > self.num_candidates:
            raise ConfigError(
                f"ShopperConfig.slate_size ({self.slate_size}) must not exceed "
                f"num_candidates ({self.num_candidates})"
            )
        non_negative = (
            "patience",
            "step_cost",
            "no_click_cost",
            "purchase_refund",
            "feature_noise",
        )
        for name in non_negative:
            value = getattr(self, name)
            if value < 0:
                raise ConfigError(f"ShopperConfig.{name} must be >= 0, got {value!r}")
        if self.patience <= 0 or self.step_cost <= 0:
            raise ConfigError("ShopperConfig.patience and step_cost must be > 0")
        for name, allowed in (("candidate_sampling", CandidateSampling), ("item_features", ItemFeatures)):
            if getattr(self, name) not in get_args(allowed):
                raise ConfigError(
                    f"ShopperConfig.{name} must be one of {get_args(allowed)}, got {getattr(self, name)!r}"
                )

    def to_dict(self) -> dict:
        return asdict(self)
