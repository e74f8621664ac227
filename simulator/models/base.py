"""The interface every preference model implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn


class PreferenceModel(nn.Module, ABC):
    """Scores (user, item) pairs: higher means the user prefers the item more.

    A World keeps one fitted model as the shoppers' ground truth, so a model must be
    rebuilt exactly from its class, ``hyperparameters()`` and ``state_dict()``.

    Args:
        num_users: U; num_items: M.
    """

    def __init__(self, num_users: int, num_items: int):
        super().__init__()
        self.num_users = num_users
        self.num_items = num_items

    @abstractmethod
    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B,) user indices and (B, n) item indices -> (B, n) scores. A (1, n) item
        batch is scored for every user (``score_all`` relies on it)."""

    @abstractmethod
    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Squared norm of the embedding rows (and, for MF, the biases) that (B,) users
        and (B, n) items use (the L2 term of the loss; only the rows in a batch are
        penalised)."""

    @abstractmethod
    def item_representation(self) -> torch.Tensor:
        """(M, r) the model's latent description of each item (agents may see it as
        item features; nothing of the user side is ever exposed)."""

    def hyperparameters(self) -> dict[str, Any]:
        """Constructor keyword arguments besides ``num_users``/``num_items`` (JSON-able)."""
        return {}

    def score_all(self, users: torch.Tensor, pairs_per_pass: int = 1 << 15) -> torch.Tensor:
        """(B,) users -> (B, M) scores of every item, in item chunks of about
        ``pairs_per_pass`` (user, item) pairs each."""
        parts = []
        for items in item_chunks(self.num_items, len(users), pairs_per_pass, users.device):
            # (1, n) broadcasts over users: each item's embedding is gathered once, not B times.
            parts.append(self(users, items[None]))
        return torch.cat(parts, dim=1)


def item_chunks(num_items: int, num_users: int, pairs_per_pass: int, device: torch.device):
    """Consecutive (n,) item index ranges with n * num_users ~ pairs_per_pass.

    Small passes are faster, not only leaner: activations of a few MB are reused by the
    allocator, where passes of hundreds of MB are fresh pages every time."""
    step = max(1, pairs_per_pass // max(1, num_users))
    for start in range(0, num_items, step):
        yield torch.arange(start, min(start + step, num_items), device=device)


def normal_(parameter: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Initialise in place from ``generator`` (torch's default initialisers use the global RNG)."""
    with torch.no_grad():
        return parameter.copy_(std * torch.randn(parameter.shape, generator=generator))


def seeded_linear(inputs: int, outputs: int, generator: torch.Generator) -> nn.Linear:
    """A linear layer with LeCun-uniform weights and zero bias drawn from ``generator``."""
    layer = nn.Linear(inputs, outputs)
    bound = (3.0 / inputs) ** 0.5
    with torch.no_grad():
        layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound)
        layer.bias.zero_()
    return layer
