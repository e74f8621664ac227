"""Configuration of the shopper dynamics (everything except the World's ground truth).

Every mechanism of :mod:`shopgym.simulator.parts` is switched and parameterised
here; the defaults are ``shopgym/Shopper-v0``'s shopper (multinomial logit, no
drift, no boredom, unlimited money, one session per episode).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, get_args

from shopgym.simulator.errors import ConfigError

ItemFeatures = Literal["exact", "noisy", "content", "learned"]
CandidateSampling = Literal["uniform", "popularity"]
ChoiceModel = Literal["mnl", "cascade", "pbm"]
Reward = Literal["engagement", "clicks", "purchases", "revenue"]
Population = Literal["fitted", "new"]


@dataclass(frozen=True)
class ShopperConfig:
    """How shoppers browse, click, buy, get bored, leave and come back.

    A step shows one slate. The shopper clicks (see ``choice_model``), may buy what
    they clicked, and spends time budget (patience)::

        patience -= step_cost + no_click_cost [no click] + click_cost * clicks
                    - purchase_refund * purchases - utility_refill * sum(max(x_clicked, 0))

    with x the experience of a clicked item (its utility, or with ``quality_weight``
    partly its quality).

    A session ends when patience reaches 0, after ``leave_after_unsatisfying``
    unsatisfying slates in a row (no click of positive experience), or
    (``lifetime_days`` > 0) never by time: then the shopper may come back on a later
    day. The episode ends (``terminated``) when the shopper leaves for good, or is
    cut (``truncated``) after ``max_steps`` slates or past ``lifetime_days``.
    """

    # ------------------------------------------------------------------ slates
    slate_size: int = 5
    """k, the number of items in a slate."""
    num_candidates: int = 20
    """N, the number of candidate items offered to the agent at each step."""
    history_length: int = 10
    """H, the number of most recent clicked items in the observation."""
    max_steps: int = 50
    """Time limit of an episode in slates (``truncated`` when reached)."""
    candidate_sampling: CandidateSampling = "uniform"
    """How the N candidates are drawn from the catalogue (without replacement):
    uniformly, or proportionally to item popularity."""
    item_features: ItemFeatures = "exact"
    """Item features in observations: ``exact`` latent item vectors of the World's
    model, ``noisy`` ones (fixed Gaussian noise per item), ``learned`` ones (fitted by
    another model family on the same data: what a shop's own recommender knows), or
    ``content`` only (popularity, price, categories)."""
    feature_noise: float = 0.5
    """Standard deviation of the noise for ``item_features="noisy"``."""

    # ------------------------------------------------------------------ choice
    choice_model: ChoiceModel = "mnl"
    """``mnl``: multinomial logit over the slate with a no-click option and position
    logits; ``cascade``: examine top-down (position p with probability exp(b_p)),
    stop at the first click; ``pbm``: position-based model, independent clicks."""
    no_click_utility: float | None = None
    """s0 of the choice model; ``None``: the World's calibrated value."""
    position_logits: tuple[float, ...] | None = None
    """b_p of the choice model (first 0); ``None``: the World's calibrated values.
    Presets with dynamics carry constants calibrated through the simulator itself."""

    # ------------------------------------------------------- budget and leaving
    patience: float = 10.0
    """Initial time budget of a session."""
    step_cost: float = 1.0
    """Patience spent by every slate."""
    no_click_cost: float = 1.0
    """Extra patience spent by a slate with no click (boring slates drain faster)."""
    click_cost: float = 0.0
    """Patience a click consumes (time spent on the item, as RecSim's watch time)."""
    purchase_refund: float = 1.0
    """Patience given back by a purchase (satisfied shoppers stay longer)."""
    utility_refill: float = 0.0
    """Patience given back per unit of positive experience of a clicked item (good
    items refill the time budget, as in RecSim)."""
    leave_after_unsatisfying: int = 0
    """Leave after this many unsatisfying slates in a row (0: never): slates without a
    click of positive experience (nothing clicked, or only what disappointed; with
    ``quality_weight`` = 0 the experience is the utility)."""
    money: float = 0.0
    """Money budget of a session in units of the median price; a purchase needs
    the price and spends it (0: unlimited)."""

    # ----------------------------------------------------- purchases and reward
    purchase_bias: float = -1.0
    """Logit of buying a clicked item of utility 0 at the median price."""
    purchase_utility_weight: float = 1.0
    """How much the clicked item's utility raises the purchase logit."""
    purchase_price_weight: float = 1.0
    """Median shopper's price sensitivity: how much log(price / median price)
    lowers the purchase logit."""
    price_sensitivity_spread: float = 0.0
    """Log-normal spread of price sensitivity over shoppers (0: all the median)."""
    reward: Reward = "engagement"
    """``engagement``: click_reward per click + purchase_reward per purchase;
    ``clicks``; ``purchases``; ``revenue`` (price paid, in units of the median price)."""
    click_reward: float = 1.0
    purchase_reward: float = 1.0

    # ---------------------------------------------------------------- dynamics
    drift_rate: float = 0.0
    """Interest drift: each click moves the shopper's drift vector d toward the
    clicked item's unit item vector (negative: away), d <- (1 - |rate|) d + rate e_i."""
    drift_weight: float = 1.0
    """Utility added by drift: drift_weight * d . e_j."""
    boredom_weight: float = 0.0
    """Utility lost per unit of boredom with the item's categories (0: no boredom)."""
    boredom_decay: float = 0.8
    """Boredom kept per slate (and per day away); a click adds the item's categories,
    normalised to sum 1."""
    complement_weight: float = 0.0
    """Utility added per unit of complementary interest: a purchase in category c
    raises interest in c's complements (co-occurrence lift in the fitting data)."""
    complement_decay: float = 0.9
    """Complementary interest kept per slate."""

    quality_weight: float = 0.0
    """Share of the item's quality in the experience of a click: experience =
    (1 - w) * utility + w * quality, with quality the item's standardised mean rating
    (``World.item_quality``). The experience, not the utility, refills the time budget
    and makes sessions satisfying; so an item that is clicked often but disappoints
    (RecSim's clickbait) costs a shopper's time and returns. 0: experience = utility."""

    # -------------------------------------------------------------- lifetimes
    lifetime_days: int = 0
    """Days in a shopper's lifetime (0: an episode is one session). Each session is
    a day; the shopper then comes back after a delay or leaves for good."""
    return_bias: float = 0.0
    """Logit of coming back after a session of satisfaction 0."""
    return_satisfaction_weight: float = 1.0
    """How much session satisfaction raises the logit of coming back."""
    return_delay_days: float = 3.0
    """Mean days until the next visit at satisfaction 0 (1 + a geometric draw)."""
    return_delay_satisfaction_weight: float = 1.0
    """How much satisfaction shortens the delay (its logit of returning each day)."""
    satisfaction_purchase_weight: float = 1.0
    """Satisfaction of a slate: utility of what was clicked, plus this per purchase,
    minus ``satisfaction_no_click_penalty`` without a click; a session's is the mean."""
    satisfaction_no_click_penalty: float = 1.0

    # -------------------------------------------------------------- cold start
    population: Population = "fitted"
    """``fitted``: shoppers of the World's population; ``new``: new shoppers drawn
    from a Gaussian mixture fitted to the World's user side, with no history."""
    new_shopper_components: int = 8
    """K, the Gaussian components of the mixture that new shoppers are drawn from
    (diagonal covariances, fitted by EM to the train shoppers' user-side parameters)."""
    new_shopper_pool: int = 2048
    """How many new shoppers are drawn from the mixture (half train, half test); new
    lifetimes draw uniformly from their half."""
    new_shopper_seed: int = 0
    """Seed of the mixture fit, of the pool's draws and of which items are new: the
    new population and the new items are a fixed function of the World and this
    seed, not of the environment's seed."""
    new_item_fraction: float = 0.0
    """Share of the catalogue held back as new items that enter mid-episode (each
    with its own arrival step, content features only, popularity 0)."""
    new_item_arrival_steps: int = 20
    """New items arrive uniformly over the first this-many steps of an episode."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"ShopperConfig.{name} must be finite, got {value!r}")
        positive_ints = (
            "slate_size",
            "num_candidates",
            "history_length",
            "max_steps",
            "new_item_arrival_steps",
            "new_shopper_components",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"ShopperConfig.{name} must be a positive integer, got {value!r}")
        for name in ("leave_after_unsatisfying", "lifetime_days", "new_shopper_seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"ShopperConfig.{name} must be an integer >= 0, got {value!r}")
        pool = self.new_shopper_pool
        if not isinstance(pool, int) or isinstance(pool, bool) or pool < 2:
            raise ConfigError(f"ShopperConfig.new_shopper_pool must be an integer >= 2, got {pool!r}")
        if self.slate_size > self.num_candidates:
            raise ConfigError(
                f"ShopperConfig.slate_size ({self.slate_size}) must not exceed "
                f"num_candidates ({self.num_candidates})"
            )
        non_negative = (
            "patience",
            "step_cost",
            "no_click_cost",
            "click_cost",
            "purchase_refund",
            "utility_refill",
            "money",
            "feature_noise",
            "purchase_price_weight",
            "price_sensitivity_spread",
            "boredom_weight",
            "complement_weight",
            "satisfaction_no_click_penalty",
        )
        for name in non_negative:
            value = getattr(self, name)
            if value < 0:
                raise ConfigError(f"ShopperConfig.{name} must be >= 0, got {value!r}")
        if self.patience <= 0 or self.step_cost <= 0:
            raise ConfigError("ShopperConfig.patience and step_cost must be > 0")
        for name in ("boredom_decay", "complement_decay", "quality_weight"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"ShopperConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not -1 <= self.drift_rate <= 1:
            raise ConfigError(f"ShopperConfig.drift_rate must be in [-1, 1], got {self.drift_rate!r}")
        if not 0 <= self.new_item_fraction < 1:
            raise ConfigError(
                f"ShopperConfig.new_item_fraction must be in [0, 1), got {self.new_item_fraction!r}"
            )
        if self.return_delay_days < 1:
            raise ConfigError(f"ShopperConfig.return_delay_days must be >= 1, got {self.return_delay_days!r}")
        choices = (
            ("candidate_sampling", CandidateSampling),
            ("item_features", ItemFeatures),
            ("choice_model", ChoiceModel),
            ("reward", Reward),
            ("population", Population),
        )
        for name, allowed in choices:
            if getattr(self, name) not in get_args(allowed):
                raise ConfigError(
                    f"ShopperConfig.{name} must be one of {get_args(allowed)}, got {getattr(self, name)!r}"
                )
        if self.position_logits is not None:
            logits = tuple(self.position_logits)
            if not logits or not all(isinstance(v, int | float) and math.isfinite(v) for v in logits):
                raise ConfigError(f"ShopperConfig.position_logits must be finite numbers, got {logits!r}")
            object.__setattr__(self, "position_logits", tuple(float(v) for v in logits))

    def to_dict(self) -> dict:
        return asdict(self)
