"""What can be shown: the N candidates offered for each slate, and item features."""

from __future__ import annotations

import torch

from shopgym.simulator.errors import ConfigError
from shopgym.simulator.parts.base import Part
from shopgym.simulator.sampling import uniform_subsets

# Column layout of item feature vectors (see Corpus.item_features).
POPULARITY_FEATURE = 0
PRICE_FEATURE = 1
FIRST_CATEGORY_FEATURE = 2


class Corpus(Part):
    """State ``candidates`` (B, N) int64: distinct catalogue items for the next slate,
    drawn afresh after every step (uniformly, or by popularity with Gumbel top-N).

    Candidates do not depend on the shopper, so a session that starts after a step
    sees the same fresh candidates as the final observation of the one that ended.
    Observation: ``candidate_ids`` (B, N) and ``candidate_features`` (B, N, F).
    """

    name = "corpus"
    observation_keys = ("candidates",)

    def __init__(self, simulator):
        super().__init__(simulator)
        world = simulator.world
        self.num_items = world.num_items
        self.candidate_logits = (
            world.item_popularity.clamp(min=1).log()
            if self.config.candidate_sampling == "popularity"
            else None
        )
        features = item_features(world, self.config.item_features, self.config.feature_noise)
        # Row M of the table is all zeros: the features of an empty history slot.
        self.feature_table = torch.cat([features, features.new_zeros(1, features.shape[1])])
        self.state["candidates"] = self.zeros(self.config.num_candidates, dtype=torch.long)

    def refresh(self) -> None:
        """Draw the next (B, N) candidates (the simulator calls it at reset and after every step)."""
        n = self.config.num_candidates
        if self.candidate_logits is None:
            drawn = uniform_subsets(self.num_shoppers, self.num_items, n, self.generator, self.device)
        else:
            # Gumbel top-N of log-popularity: weighted sampling without replacement, O(B·M).
            uniform = torch.rand((self.num_shoppers, self.num_items), generator=self.generator, device=self.device)
            keys = self.candidate_logits - torch.log(-torch.log(uniform.clamp(min=1e-20)))
            drawn = keys.topk(n, dim=1).indices
        self.state["candidates"] = drawn

    def observe(self, state):
        candidates = state["candidates"]
        return {"candidate_ids": candidates, "candidate_features": self.feature_table[candidates]}

    def observation_spec(self):
        n = self.config.num_candidates
        table = self.feature_table
        low, high = table.min(0).values, table.max(0).values
        return {
            "candidate_ids": ("ids", (n,), self.num_items),
            "candidate_features": ("box", (n, table.shape[1]), low.expand(n, -1), high.expand(n, -1)),
        }


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
