"""The batched shopper simulator: B shoppers advanced together, in pure torch.

State of shopper b (all tensors lead with the batch dimension B, also for B = 1):

- ``shopper``: index into the World's population (the latent vector stays inside);
- ``patience``: remaining time budget; ``steps``: slates seen this session;
- ``history``: the last H clicked items (``M`` marks an empty slot);
- ``candidates``: the N catalogue items offered for the next slate.

Every random draw comes from one seeded ``torch.Generator`` on the simulator's
device, in a fixed order per step: choice uniforms (B,), purchase uniforms (B,),
next candidates, replacement shoppers (B,). Sessions that end in a step are
replaced at once by new shoppers (same-step autoreset); the state they ended in is
kept in :class:`StepOutcome` so that environments can report final observations.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import torch

from shopgym.simulator.choice import choice_probabilities, sample_choice
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.sampling import uniform_subsets
from shopgym.simulator.slates import check_slates
from shopgym.simulator.world import World

# Column layout of item feature vectors (see ShopperSimulator.item_features).
POPULARITY_FEATURE = 0
PRICE_FEATURE = 1
FIRST_CATEGORY_FEATURE = 2


@dataclass(frozen=True)
class StepOutcome:
    """What one step did, for B shoppers.

    Attributes:
        reward: (B,) float32.
        clicks: (B, k) bool, True at the slate position clicked (at most one per row).
        purchases: (B, k) bool, True at the slate position bought.
        terminated: (B,) bool, the shopper ran out of patience and left.
        truncated: (B,) bool, the session hit ``max_steps``.
        final_history: (B, H) history at the end of the step, before any reset.
        final_steps: (B,) slates seen at the end of the step, before any reset.
    """

    reward: torch.Tensor
    clicks: torch.Tensor
    purchases: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_history: torch.Tensor
    final_steps: torch.Tensor

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated


class ShopperSimulator:
    """B shoppers from ``world`` browsing slates under ``config``.

    Args:
        world: the ground truth (moved to ``device``).
        config: the session dynamics.
        num_shoppers: B, the batch size.
        shoppers: which part of the population to draw from: ``"train"``, ``"test"`` or ``"all"``.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        seed: seed of the generator; :meth:`reset` can reseed.
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
        self.world = world.to(dev)
        self.config = config
        self.num_shoppers = num_shoppers
        self.shoppers = shoppers
        self.num_items = world.num_items
        self.generator = torch.Generator(device=dev)
        self.generator.manual_seed(seed if seed is not None else secrets.randbits(63))
        if config.num_candidates > world.num_items:
            raise ConfigError(
                f"num_candidates ({config.num_candidates}) exceeds the World's catalogue "
                f"({world.num_items} items)"
            )
        self.population = world.shopper_indices(shoppers).to(dev)
        if len(self.population) == 0:
            raise ConfigError(f"the World has no {shoppers!r} shoppers")
        self._log_price_ratio = (world.item_price / world.item_price.median()).log().to(dev)
        self._candidate_logits = (
            world.item_popularity.clamp(min=1).log().to(dev)
            if config.candidate_sampling == "popularity"
            else None
        )
        self._position_bias = world.calibration.position_bias(config.slate_size).to(dev)
        # Row M of the feature table is all zeros: the features of an empty history slot.
        features = self.item_features()
        self.feature_table = torch.cat([features, features.new_zeros(1, features.shape[1])]).to(dev)
        batch = (num_shoppers,)
        self.shopper = torch.zeros(batch, dtype=torch.long, device=dev)
        self.patience = torch.zeros(batch, device=dev)
        self.steps = torch.zeros(batch, dtype=torch.long, device=dev)
        self.history = torch.full((num_shoppers, config.history_length), self.num_items, device=dev)
        self.candidates = torch.zeros((num_shoppers, config.num_candidates), dtype=torch.long, device=dev)

    # ----------------------------------------------------------------- features
    def item_features(self) -> torch.Tensor:
        """(M, F) item features as a real system could know them.

        Columns: popularity (log count, scaled to [0, 1]), price (standardised log
        price), C category indicators, then for ``exact``/``noisy`` features the
        standardised latent item representation of the World's model (r columns;
        for MF the item vector and bias).
        """
        world, config = self.world, self.config
        popularity = world.item_popularity.log1p()
        popularity = popularity / popularity.max().clamp(min=1e-12)
        log_price = world.item_price.log()
        price = (log_price - log_price.mean()) / log_price.std().clamp(min=1e-12)
        columns = [popularity[:, None], price[:, None], world.item_category]
        if config.item_features != "content":
            latent = world.item_representation()
            latent = (latent - latent.mean(0)) / latent.std(0).clamp(min=1e-12)
            if config.item_features == "noisy":
                # Fixed per item (its own generator), so features do not change between steps.
                noise_generator = torch.Generator().manual_seed(0)
                noise = torch.randn(latent.shape, generator=noise_generator).to(latent.device)
                latent = latent + config.feature_noise * noise
            columns.append(latent)
        return torch.cat(columns, dim=1).float()

    @property
    def num_features(self) -> int:
        return self.feature_table.shape[1]

    # -------------------------------------------------------------------- reset
    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def reset(self, seed: int | None = None) -> None:
        """Start new sessions for every shopper (reseeding first if ``seed`` is given)."""
        if seed is not None:
            self.seed(seed)
        everyone = torch.ones(self.num_shoppers, dtype=torch.bool, device=self.device)
        self._start_sessions(everyone, self._draw_shoppers())
        self.candidates = self._draw_candidates()

    def _draw_shoppers(self) -> torch.Tensor:
        """(B,) population indices drawn uniformly with replacement."""
        rows = torch.randint(
            len(self.population), (self.num_shoppers,), generator=self.generator, device=self.device
        )
        return self.population[rows]

    def _draw_candidates(self) -> torch.Tensor:
        """(B, N) distinct catalogue items per row, uniformly or popularity-weighted."""
        if self._candidate_logits is None:
            return uniform_subsets(
                self.num_shoppers, self.num_items, self.config.num_candidates, self.generator, self.device
            )
        # Gumbel top-N of log-popularity: weighted sampling without replacement, O(B·M).
        uniform = torch.rand(
            (self.num_shoppers, self.num_items), generator=self.generator, device=self.device
        )
        keys = self._candidate_logits - torch.log(-torch.log(uniform.clamp(min=1e-20)))
        return keys.topk(self.config.num_candidates, dim=1).indices

    def _start_sessions(self, rows: torch.Tensor, new_shoppers: torch.Tensor) -> None:
        """Replace the shoppers in ``rows`` (B,) bool with ``new_shoppers`` (B,)."""
        self.shopper = torch.where(rows, new_shoppers, self.shopper)
        self.patience = torch.where(rows, self.config.patience, self.patience)
        self.steps = torch.where(rows, 0, self.steps)
        self.history = torch.where(rows[:, None], self.num_items, self.history)

    # --------------------------------------------------------------------- step
    def utilities(self, items: torch.Tensor) -> torch.Tensor:
        """True utilities of (B, n) items for the current shoppers -> (B, n)."""
        return self.world.utilities(self.shopper, items)

    def step(self, slates: torch.Tensor, check: bool = True) -> StepOutcome:
        """Show (B, k) slates of candidate indices; advance every shopper by one step.

        Args:
            slates: (B, k) int64, indices into ``candidates`` (distinct per row).
            check: validate the slates first (raises :class:`SlateError`).
        """
        config, calibration = self.config, self.world.calibration
        if check:
            check_slates(slates, self.num_shoppers, config.slate_size, config.num_candidates)
        slates = slates.to(self.device, torch.long)
        items = self.candidates.gather(1, slates)  # (B, k)
        utility = self.utilities(items)
        probabilities = choice_probabilities(
            utility, calibration.beta, calibration.no_click_utility, self._position_bias
        )
        choice_uniform = torch.rand(self.num_shoppers, generator=self.generator, device=self.device)
        purchase_uniform = torch.rand(self.num_shoppers, generator=self.generator, device=self.device)
        choice = sample_choice(probabilities, choice_uniform)  # (B,), k = no click
        clicked = choice < config.slate_size
        position = choice.clamp(max=config.slate_size - 1)[:, None]
        clicked_item = items.gather(1, position).squeeze(1)
        purchase_logit = (
            config.purchase_bias
            + config.purchase_utility_weight * utility.gather(1, position).squeeze(1)
            - config.purchase_price_weight * self._log_price_ratio[clicked_item]
        )
        purchased = clicked & (purchase_uniform < torch.sigmoid(purchase_logit))

        positions = torch.arange(config.slate_size, device=self.device)
        clicks = clicked[:, None] & (positions[None] == choice[:, None])
        purchases = clicks & purchased[:, None]
        reward = config.click_reward * clicked.float() + config.purchase_reward * purchased.float()

        appended = torch.cat([self.history[:, 1:], clicked_item[:, None]], dim=1)
        self.history = torch.where(clicked[:, None], appended, self.history)
        self.patience = (
            self.patience
            - config.step_cost
            - config.no_click_cost * (~clicked).float()
            + config.purchase_refund * purchased.float()
        )
        self.steps = self.steps + 1
        terminated = self.patience <= 0
        truncated = (self.steps >= config.max_steps) & ~terminated
        outcome = StepOutcome(
            reward=reward,
            clicks=clicks,
            purchases=purchases,
            terminated=terminated,
            truncated=truncated,
            final_history=self.history.clone(),
            final_steps=self.steps.clone(),
        )
        # Candidates do not depend on the shopper, so a new session starts with the
        # same fresh candidates that the ended session's final observation shows.
        self.candidates = self._draw_candidates()
        self._start_sessions(outcome.done, self._draw_shoppers())
        return outcome

    # ------------------------------------------------------------- observation
    def observe(self, history: torch.Tensor | None = None, steps: torch.Tensor | None = None) -> dict:
        """The agent's view of each shopper (no latent vectors), as tensors.

        Args:
            history, steps: override the current ones (used for final observations).

        Returns:
            ``candidate_ids`` (B, N) int64, ``candidate_features`` (B, N, F) float32,
            ``history_ids`` (B, H) int64 (``M`` = empty slot), ``history_features``
            (B, H, F) float32 (zeros for empty slots), ``step`` (B, 1) float32.
        """
        history = self.history if history is None else history
        steps = self.steps if steps is None else steps
        return {
            "candidate_ids": self.candidates,
            "candidate_features": self.feature_table[self.candidates],
            "history_ids": history,
            "history_features": self.feature_table[history],
            "step": steps[:, None].float(),
        }
