"""The batched shopper simulator: B shoppers advanced together, in pure torch.

The shopper model is a set of parts (:mod:`shopgym.simulator.parts`), each with
its own state, random stream, update and observation keys, wired here in one
place. One step, for (B, k) slates::

    items    = corpus.candidates[slate]                        what is shown
    utility  = f(u, i) + drift term + boredom term + ...       (World + parts' terms)
    clicks   = choice.sample(utility)                          MNL, cascade or PBM
    buys     = purchases.respond(items, utility, clicks)       price, sensitivity, money
    experience = utility, or partly the item's quality          what the click was worth
    reward   = clicks / purchases / revenue                    (config.reward)
    every part updates (history, budget, drift, boredom, returns' satisfaction, ...)
    a session ends when the budget says so; with lifetimes the shopper may come back
    the corpus draws the next candidates; ended episodes restart with new shoppers

Sessions that end are replaced at once (same-step autoreset); the state they
ended in is kept in :class:`StepOutcome` ``final_state``. Every random draw comes
from the part that makes it, seeded from the simulator's seed and the part's name,
so a draw added in one part shifts no other stream.
"""

from __future__ import annotations

import secrets
import zlib
from typing import Any

import numpy as np
import torch

from shopgym.simulator.cold_start import new_shopper_world, pool_members
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.outcome import StepOutcome
from shopgym.simulator.parts.base import Part, Step
from shopgym.simulator.parts.boredom import Boredom
from shopgym.simulator.parts.budget import Budget
from shopgym.simulator.parts.choice import Choice
from shopgym.simulator.parts.complements import Complements
from shopgym.simulator.parts.corpus import (
    FIRST_CATEGORY_FEATURE,
    POPULARITY_FEATURE,
    PRICE_FEATURE,
    Corpus,
    standardised,
)
from shopgym.simulator.parts.drift import Drift
from shopgym.simulator.parts.history import History
from shopgym.simulator.parts.population import Population
from shopgym.simulator.parts.purchases import Purchases, reward_per_click, step_reward
from shopgym.simulator.parts.returns import Returns
from shopgym.simulator.slates import check_slates
from shopgym.simulator.world import World

__all__ = [
    "FIRST_CATEGORY_FEATURE",
    "POPULARITY_FEATURE",
    "PRICE_FEATURE",
    "ShopperSimulator",
    "StepOutcome",
]


class ShopperSimulator:
    """B shoppers from ``world`` browsing slates under ``config``.

    Args:
        world: the ground truth (moved to ``device``).
        config: the shopper dynamics.
        num_shoppers: B, the batch size.
        shoppers: which part of the population to draw from: ``"train"``, ``"test"`` or ``"all"``.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        seed: seed of every part's random stream; :meth:`reset` can reseed.
    """

    def __init__(
        self,
        world: World,
        config: ShopperConfig = ShopperConfig(),
        num_shoppers: int = 1,
        shoppers: str = "train",
        device: str | torch.device = "auto",
        seed: int | None = None,
    ):
        if not isinstance(num_shoppers, int) or num_shoppers < 1:
            raise ConfigError(
                f"the number of shoppers (num_envs) must be a positive integer, got {num_shoppers!r}"
            )
        self.device = dev = resolve_device(device)
        if config.population == "new":
            # Cold start: the World plus a pool of shoppers drawn from a mixture fitted to its user side.
            world = new_shopper_world(
                world, config.new_shopper_components, config.new_shopper_pool, config.new_shopper_seed
            )
        self.world = world = world.to(dev)
        self.config = config
        self.num_shoppers = num_shoppers
        self.shoppers = shoppers
        self.num_items = world.num_items
        if config.num_candidates > world.num_items:
            raise ConfigError(
                f"num_candidates ({config.num_candidates}) exceeds the World's catalogue "
                f"({world.num_items} items)"
            )
        calibration = world.calibration
        self.beta = calibration.beta
        self.no_click_utility = (
            calibration.no_click_utility if config.no_click_utility is None else config.no_click_utility
        )
        logits = calibration.position_logits if config.position_logits is None else config.position_logits
        self.position_bias = (
            type(calibration)(position_logits=logits).position_bias(config.slate_size).to(dev)
        )
        self.multiple_clicks = config.choice_model == "pbm"
        if config.quality_weight and world.item_quality is None:
            raise ConfigError(
                "quality_weight > 0 needs a World with item quality (mean ratings of the "
                "fitting data, World.item_quality); this World has none (implicit data, "
                "synthetic, or built before builder 8): add it with "
                "shopgym.simulator.build.with_data_statistics(world, interactions), refit it, "
                "or set quality_weight=0"
            )
        self.episode_steps = torch.zeros(num_shoppers, dtype=torch.long, device=dev)

        # The wiring: every part, in update order.
        new = config.population == "new"
        self.population = Population(
            self, pool_members(world, shoppers) if new else world.shopper_indices(shoppers)
        )
        self.corpus = Corpus(self)
        self.choice = Choice(self, self.beta, self.no_click_utility, self.position_bias)
        self.purchases = Purchases(self)
        self.history = History(self)
        self.budget = Budget(self)
        self.drift = Drift(self) if config.drift_rate else None
        self.boredom = Boredom(self) if config.boredom_weight else None
        self.complements = Complements(self) if config.complement_weight else None
        self.returns = Returns(self) if config.lifetime_days else None
        self.parts: list[Part] = [
            part
            for part in (
                self.population,
                self.corpus,
                self.choice,
                self.purchases,
                self.history,
                self.budget,
                self.drift,
                self.boredom,
                self.complements,
                self.returns,
            )
            if part is not None
        ]
        self._utility_parts = [part for part in self.parts if type(part).utility is not Part.utility]
        self.seed(seed if seed is not None else secrets.randbits(63))

    # ------------------------------------------------------------- item tables
    @property
    def feature_table(self) -> torch.Tensor:
        """(M + 1, F) item features; row M (an empty history slot) is zeros."""
        return self.corpus.feature_table

    @property
    def num_features(self) -> int:
        return self.feature_table.shape[1]

    def item_features(self) -> torch.Tensor:
        """(M, F) item features as a real system could know them (see ``parts.corpus``)."""
        return self.feature_table[:-1]

    @property
    def unit_item_vectors(self) -> torch.Tensor:
        """(M, r) the World's standardised item representation, rows of unit length."""
        if not hasattr(self, "_unit_item_vectors"):
            vectors = standardised(self.world.item_representation().float())
            self._unit_item_vectors = vectors / vectors.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return self._unit_item_vectors

    # ------------------------------------------------------ state, for readers
    @property
    def shopper(self) -> torch.Tensor:
        """(B,) World shopper index of each row."""
        return self.population.state["shopper"]

    @property
    def candidates(self) -> torch.Tensor:
        """(B, N) catalogue items offered for the next slate."""
        return self.corpus.state["candidates"]

    @property
    def patience(self) -> torch.Tensor:
        return self.budget.state["patience"]

    @property
    def steps(self) -> torch.Tensor:
        """(B,) slates seen this session."""
        return self.budget.state["steps"]

    @property
    def clicked_history(self) -> torch.Tensor:
        """(B, H) last clicked items (``M`` = empty)."""
        return self.history.state["history"]

    # -------------------------------------------------------------------- reset
    def seed(self, seed: int) -> None:
        """Seed every part's stream from ``seed`` and the part's name."""
        for part in self.parts:
            part.generator.manual_seed(_stream_seed(seed, part.name))

    def reset(self, seed: int | None = None) -> None:
        """Start new lifetimes for every row (reseeding first if ``seed`` is given)."""
        if seed is not None:
            self.seed(seed)
        everyone = torch.ones(self.num_shoppers, dtype=torch.bool, device=self.device)
        self._start(everyone, everyone)
        self.corpus.refresh()

    def _start(self, session: torch.Tensor, lifetime: torch.Tensor) -> None:
        self.episode_steps = torch.where(lifetime, 0, self.episode_steps)
        for part in self.parts:
            part.start(session, lifetime)

    # --------------------------------------------------------------------- step
    def utilities(self, items: torch.Tensor) -> torch.Tensor:
        """True utilities of (B, n) catalogue items for the current shoppers in their
        current state -> (B, n): the World's score plus every part's term."""
        utility = self.world.utilities(self.shopper, items)
        for part in self._utility_parts:
            utility = utility + part.utility(items)
        return utility

    def step(self, slates: torch.Tensor, check: bool = True) -> StepOutcome:
        """Show (B, k) slates of candidate indices; advance every shopper by one step.

        Args:
            slates: (B, k) int64, indices into ``candidates`` (distinct per row).
            check: validate the slates first (raises :class:`SlateError`).
        """
        config = self.config
        if check:
            check_slates(slates, self.num_shoppers, config.slate_size, config.num_candidates)
        slates = slates.to(self.device, torch.long)
        items = self.candidates.gather(1, slates)  # (B, k)
        utility = self.utilities(items)
        clicks = self.choice.sample(utility)
        purchases = self.purchases.respond(items, utility, clicks)
        price = self.purchases.relative_price[items]
        step = Step(
            items=items,
            utility=utility,
            experience=self.experience(items, utility),
            clicks=clicks,
            purchases=purchases,
            price=price,
        )
        for part in self.parts:
            part.update(step)
        self.episode_steps = self.episode_steps + 1

        session_end = step.session_end
        if self.returns is None:
            terminated = session_end
            truncated = (self.episode_steps >= config.max_steps) & ~terminated
            comes_back = None
        else:
            comes_back, cut, days = self.returns.come_back(session_end)
            terminated = session_end & ~comes_back & ~cut
            truncated = (cut | (self.episode_steps >= config.max_steps)) & ~terminated
            comes_back = comes_back & ~truncated
            if self.boredom is not None:
                self.boredom.rest(days)
        # The next candidates belong in the final observation too: they do not depend
        # on the shopper, and the next observation of the row shows the same ones.
        self.corpus.refresh()
        outcome = StepOutcome(
            reward=step_reward(config, clicks, purchases, price),
            clicks=clicks,
            purchases=purchases,
            terminated=terminated,
            truncated=truncated,
            final_state=self._observed_state(),
            info={"revenue": (purchases * price).sum(1)},
        )
        done = outcome.done
        # One start for both kinds of row, so the parts draw the same amount every
        # step with or without lifetimes.
        self._start(done if comes_back is None else comes_back | done, done)
        return outcome

    def experience(self, items: torch.Tensor, utility: torch.Tensor) -> torch.Tensor:
        """(B, n) what consuming (B, n) items of (B, n) utilities is worth to the
        shopper: ``(1 - w) utility + w quality`` with w = ``quality_weight``."""
        weight = self.config.quality_weight
        if not weight:
            return utility
        return (1 - weight) * utility + weight * self.world.item_quality[items]

    # ------------------------------------------------------------- observation
    def _observed_state(self) -> dict[str, torch.Tensor]:
        """The state tensors that :meth:`observe` reads. No copies: parts replace
        their tensors and never write into them (see :class:`Part`)."""
        return {key: part.state[key] for part in self.parts for key in part.observation_keys}

    def observe(self, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The agent's view of each shopper (no latent state), as tensors.

        Args:
            state: ``StepOutcome.final_state`` to observe the state sessions ended in;
                ``None`` for the current state.

        Returns:
            ``candidate_ids`` (B, N) int64, ``candidate_features`` (B, N, F) float32,
            ``history_ids`` (B, H) int64 (``M`` = empty slot), ``history_features``
            (B, H, F) float32 (zeros for empty slots), ``step`` (B, 1) float32, and
            with lifetimes ``session`` and ``days_away`` (B, 1) float32.
        """
        observation: dict[str, torch.Tensor] = {}
        for part in self.parts:
            if part.observation_keys:
                source = part.state if state is None else state
                observation |= part.observe(source)
        return observation

    def observation_spec(self) -> dict[str, tuple]:
        """Per observation key: ``("box", shape, low, high)`` or ``("ids", shape, n)``."""
        spec: dict[str, tuple] = {}
        for part in self.parts:
            spec |= part.observation_spec()
        return spec

    # ------------------------------------------------- snapshots, for planning
    def snapshot(self) -> dict[str, Any]:
        """A copy of the whole state: every part's tensors and random streams."""
        return {
            "episode_steps": self.episode_steps.clone(),
            "parts": {
                part.name: {key: value.clone() for key, value in part.state.items()} for part in self.parts
            },
            "generators": {part.name: part.generator.get_state() for part in self.parts},
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Return to a :meth:`snapshot` of this simulator (or of one with the same B)."""
        self.load_rows(snapshot, repeats=1)
        for part in self.parts:
            part.generator.set_state(snapshot["generators"][part.name])

    def load_rows(self, snapshot: dict[str, Any], repeats: int) -> None:
        """Take the state of a simulator of B / ``repeats`` rows, each row repeated
        ``repeats`` times in a row (rows b*repeats .. b*repeats + repeats - 1 copy row b).
        Random streams are left as they are."""
        self.episode_steps = snapshot["episode_steps"].repeat_interleave(repeats, 0)
        for part in self.parts:
            saved = snapshot["parts"][part.name]
            for key, value in saved.items():
                if value.shape[0] * repeats != self.num_shoppers:
                    raise ConfigError(
                        f"a snapshot of {value.shape[0]} rows x {repeats} does not fit "
                        f"{self.num_shoppers} shoppers"
                    )
                part.state[key] = value.repeat_interleave(repeats, 0)

    # ------------------------------------------------------ expected rewards
    def click_values(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For (B, n) items in the current state: (B, n) utilities and (B, n) expected
        reward of a click on each (what the myopic oracle weighs)."""
        utility = self.utilities(items)
        purchase = self.purchases.probability(items, utility)
        return utility, reward_per_click(self.config, purchase, self.purchases.relative_price[items])


def _stream_seed(seed: int, name: str) -> int:
    """A seed for the stream of part ``name``, independent of the other parts'."""
    sequence = np.random.SeedSequence([seed % (1 << 63), zlib.crc32(name.encode())])
    return int(sequence.generate_state(1, dtype=np.uint64)[0] % (1 << 63))
