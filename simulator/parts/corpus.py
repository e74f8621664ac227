"""What can be shown: the N candidates offered for each slate, and item features."""

from __future__ import annotations

import torch

from shopgym.simulator.errors import ConfigError
from shopgym.simulator.parts.base import Part
from shopgym.simulator.sampling import uniform_subsets
from shopgym.simulator.tensors import rows

# Column layout of item feature vectors (see Corpus.item_features).
POPULARITY_FEATURE = 0
PRICE_FEATURE = 1
FIRST_CATEGORY_FEATURE = 2

# Keeps the new-item draw apart from the new-shopper draws of the same seed (cold_start.py).
_NEW_ITEM_SEED_OFFSET = 7919


class Corpus(Part):
    """State ``candidates`` (B, N) int64: distinct catalogue items for the next slate,
    drawn afresh after every step (uniformly, or by popularity with Gumbel top-N).

    Without new items, candidates do not depend on the shopper, so a session that
    starts after a step sees the same fresh candidates as the final observation of
    the one that ended. Observation: ``candidate_ids`` (B, N) and
    ``candidate_features`` (B, N, F).

    **New items** (``new_item_fraction`` > 0): a fixed share of the catalogue, chosen
    once from ``new_shopper_seed`` (a function of the World and the config, not of the
    environment's seed), is held back; new item i gets an arrival step
    a_i ~ U{1, ..., new_item_arrival_steps} (a_i = 0 for the other items). With t_b the
    slates row b's episode has seen (``simulator.episode_steps``), the candidates are
    the top N of the keys::

        key_bi = log w_i + G_bi   if a_i <= t_b,   -inf otherwise      (G_bi ~ Gumbel(0, 1))

    with w_i = 1 (uniform) or max(popularity_i, 1) (popularity sampling; a new item's
    popularity is 0: nobody has bought it yet): sampling without replacement among
    the items available to the row. A new item's features are content only
    (popularity 0, price, categories; the latent or learned columns 0, their
    standardised mean), since no recommender has data on it. An episode that starts
    in a row draws that row's candidates again at its own t_b = 0.
    """

    name = "corpus"
    observation_keys = ("candidates",)

    def __init__(self, simulator):
        super().__init__(simulator)
        world = simulator.world
        config = self.config
        self.num_items = world.num_items
        self.arrival = new_item_arrivals(
            self.num_items, config.new_item_fraction, config.new_item_arrival_steps, config.new_shopper_seed
        ).to(self.device)  # (M,) int64
        is_new = self.arrival > 0
        self.has_new_items = bool(is_new.any())
        if self.has_new_items and self.num_items - int(is_new.sum()) < config.num_candidates:
            raise ConfigError(
                f"new_item_fraction={config.new_item_fraction} leaves {self.num_items - int(is_new.sum())} "
                f"items at an episode's start, fewer than num_candidates ({config.num_candidates})"
            )
        popularity = torch.where(is_new, 0.0, world.item_popularity)
        self.candidate_logits = (
            popularity.clamp(min=1).log() if config.candidate_sampling == "popularity" else None
        )
        features = item_features(world, config.item_features, config.feature_noise)
        if self.has_new_items:
            # Content only: keep price and categories, zero popularity and every latent column.
            content = torch.zeros(features.shape[1], dtype=torch.bool, device=features.device)
            content[PRICE_FEATURE : FIRST_CATEGORY_FEATURE + world.num_categories] = True
            features = torch.where(is_new[:, None] & ~content, 0.0, features)
        # Row M of the table is all zeros: the features of an empty history slot.
        self.feature_table = torch.cat([features, features.new_zeros(1, features.shape[1])])
        self.state["candidates"] = self.zeros(config.num_candidates, dtype=torch.long)

    def start(self, session: torch.Tensor, lifetime: torch.Tensor) -> None:
        if self.has_new_items:
            # The candidates drawn after the last step were for the old episode's time t_b.
            self.state["candidates"] = torch.where(lifetime[:, None], self._draw(), self.state["candidates"])

    def refresh(self) -> None:
        """Draw the next (B, N) candidates (the simulator calls it at reset and after every step)."""
        self.state["candidates"] = self._draw()

    def available(self) -> torch.Tensor:
        """(B, M) bool: the items that may be candidates in each row now (a_i <= t_b)."""
        return self.arrival[None, :] <= self.simulator.episode_steps[:, None]

    def _draw(self) -> torch.Tensor:
        n = self.config.num_candidates
        if self.candidate_logits is None and not self.has_new_items:
            return uniform_subsets(self.num_shoppers, self.num_items, n, self.generator, self.device)
        # Gumbel top-N of log-weights: weighted sampling without replacement, O(B·M).
        uniform = torch.rand(
            (self.num_shoppers, self.num_items), generator=self.generator, device=self.device
        )
        keys = -torch.log(-torch.log(uniform.clamp(min=1e-20)))
        if self.candidate_logits is not None:
            keys = self.candidate_logits + keys
        if self.has_new_items:
            keys = keys.masked_fill(~self.available(), -torch.inf)
        return keys.topk(n, dim=1).indices

    def observe(self, state):
        candidates = state["candidates"]
        # The final observation of a step and the next one usually share the candidates
        # tensor (drawn before the sessions that ended were replaced), and the (B, N, F)
        # gather is the largest part of an observation: gather it once per tensor. Parts
        # never write into a state tensor, so the same tensor means the same candidates.
        cached, features = getattr(self, "_observed", (None, None))
        if cached is not candidates:
            features = rows(self.feature_table, candidates)
            self._observed = (candidates, features)
        return {"candidate_ids": candidates, "candidate_features": features}

    def observation_spec(self):
        n = self.config.num_candidates
        table = self.feature_table
        low, high = table.min(0).values, table.max(0).values
        return {
            "candidate_ids": ("ids", (n,), self.num_items),
            "candidate_features": ("box", (n, table.shape[1]), low.expand(n, -1), high.expand(n, -1)),
        }


def new_item_arrivals(num_items: int, fraction: float, arrival_steps: int, seed: int) -> torch.Tensor:
    """(M,) int64 arrival step of each item: 0 for the catalogue at an episode's start,
    a_i ~ U{1, ..., arrival_steps} for the round(fraction * M) new items, chosen
    uniformly (a fixed function of the arguments, on CPU)."""
    arrival = torch.zeros(num_items, dtype=torch.long)
    count = round(fraction * num_items)
    if count == 0:
        return arrival
    generator = torch.Generator().manual_seed(_NEW_ITEM_SEED_OFFSET + seed)
    chosen = torch.randperm(num_items, generator=generator)[:count]
    arrival[chosen] = torch.randint(1, arrival_steps + 1, (count,), generator=generator)
    return arrival


def item_features(world, kind: str, noise_std: float) -> torch.Tensor:
    """(M, F) item features as a real system could know them.

    Columns: popularity (log count, scaled to [0, 1]), price (standardised log
    price), C category indicators, then for ``exact``/``noisy`` features the
    standardised latent item representation of the World's model (for MF the item
    vector and bias), for ``learned`` the standardised item vectors of the other
    model family fitted on the same data (``World.learned_item_features``).
    """
    popularity = world.item_popularity.log1p()
    popularity = popularity / popularity.max().clamp(min=1e-12)
    log_price = world.item_price.log()
    price = (log_price - log_price.mean()) / log_price.std().clamp(min=1e-12)
    columns = [popularity[:, None], price[:, None], world.item_category]
    if kind in ("exact", "noisy"):
        latent = standardised(world.item_representation())
        if kind == "noisy":
            # Fixed per item (its own generator), so features do not change between steps.
            noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0)).to(latent.device)
            latent = latent + noise_std * noise
        columns.append(latent)
    elif kind == "learned":
        learned = getattr(world, "learned_item_features", None)
        if learned is None:
            raise ConfigError(
                "item_features='learned' needs a World with learned item features (fitted by another "
                "model family); this World has none: use 'exact', 'noisy' or 'content'"
            )
        columns.append(standardised(learned))
    return torch.cat(columns, dim=1).float()


def standardised(table: torch.Tensor) -> torch.Tensor:
    """(M, r) -> columns of mean 0 and standard deviation 1."""
    return (table - table.mean(0)) / table.std(0).clamp(min=1e-12)
