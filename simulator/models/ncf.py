"""Neural collaborative filtering (He et al., WWW 2017): GMF, MLP and NeuMF.

- GMF:   f(u, i) = h · (p_u ⊙ q_i) + b
- MLP:   f(u, i) = h · tower([p_u, q_i]) + b, a ReLU tower that halves its width per layer
- NeuMF: f(u, i) = h · [p_u ⊙ q_i, tower([p'_u, q'_i])] + b, GMF and MLP with separate
  embeddings joined at the output layer; it may start from fitted GMF and MLP models.

Scores are logits (the models are trained with a pointwise log loss on positives
and sampled negatives, see ``training.py``).
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from shopgym.simulator.models.base import PreferenceModel, item_chunks, normal_, seeded_linear


class GMF(PreferenceModel):
    """Generalised matrix factorisation. Attributes: user_embedding (U, d),
    item_embedding (M, d), output: Linear(d, 1)."""

    def __init__(self, num_users: int, num_items: int, dim: int = 32, *, generator: torch.Generator):
        super().__init__(num_users, num_items)
        self.dim = dim
        self.user_embedding = nn.Parameter(normal_(torch.empty(num_users, dim), 0.01, generator))
        self.item_embedding = nn.Parameter(normal_(torch.empty(num_items, dim), 0.01, generator))
        self.output = seeded_linear(dim, 1, generator)

    def interaction(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B,), (B, n) -> (B, n, d) element-wise products p_u ⊙ q_i."""
        return self.user_embedding[users][:, None, :] * self.item_embedding[items]

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.output(self.interaction(users, items)).squeeze(-1)

    def score_all(self, users: torch.Tensor, pairs_per_pass: int = 1 << 15) -> torch.Tensor:
        # h · (p_u ⊙ q_i) = (h ⊙ p_u) · q_i: one matrix product.
        return (self.user_embedding[users] * self.output.weight) @ self.item_embedding.T + self.output.bias

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.user_embedding[users].pow(2).sum() + self.item_embedding[items].pow(2).sum()

    def item_representation(self) -> torch.Tensor:
        # h ⊙ q_i: the item vector that a shopper's p_u is dotted with.
        return self.item_embedding * self.output.weight

    def hyperparameters(self) -> dict[str, Any]:
        return {"dim": self.dim}


class MLP(PreferenceModel):
    """Multi-layer perceptron over concatenated embeddings. ``layers[0]`` is the
    width of the concatenation (each embedding has ``layers[0] // 2`` dimensions);
    each following entry is a ReLU layer's width.

    Attributes: user_embedding (U, layers[0]/2), item_embedding (M, layers[0]/2),
    tower: the ReLU layers, output: Linear(layers[-1], 1)."""

    def __init__(
        self,
        num_users: int,
        num_items: int,
        layers: tuple[int, ...] = (64, 32, 16, 8),
        *,
        generator: torch.Generator,
    ):
        super().__init__(num_users, num_items)
        if len(layers) < 2 or layers[0] % 2:
            raise ValueError(f"MLP layers need an even first width and one hidden layer, got {layers}")
        self.layers = tuple(layers)
        half = layers[0] // 2
        self.user_embedding = nn.Parameter(normal_(torch.empty(num_users, half), 0.01, generator))
        self.item_embedding = nn.Parameter(normal_(torch.empty(num_items, half), 0.01, generator))
        blocks: list[nn.Module] = []
        for inputs, outputs in itertools.pairwise(layers):
            blocks += [seeded_linear(inputs, outputs, generator), nn.ReLU()]
        self.tower = nn.Sequential(*blocks)
        self.output = seeded_linear(layers[-1], 1, generator)

    def hidden(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B,), (B, n) -> (B, n, layers[-1]) the tower's last activations."""
        # The first layer applied to [p_u, q_i] is W_u p_u + W_i q_i + b: projecting each
        # side separately never builds the (B, n, layers[0]) concatenation.
        first, half = self.tower[0], self.layers[0] // 2
        user = self.user_embedding[users] @ first.weight[:, :half].T + first.bias  # (B, layers[1])
        item = self.item_embedding[items] @ first.weight[:, half:].T  # (B, n, layers[1])
        return self.tower[1:](user[:, None, :] + item)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden(users, items)).squeeze(-1)

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.user_embedding[users].pow(2).sum() + self.item_embedding[items].pow(2).sum()

    def item_representation(self) -> torch.Tensor:
        return self.item_embedding

    def hyperparameters(self) -> dict[str, Any]:
        return {"layers": list(self.layers)}


class NeuMF(PreferenceModel):
    """GMF and MLP with separate embeddings, joined at one output layer.

    Attributes: gmf (a GMF whose own output layer is unused), mlp (an MLP, likewise),
    output: Linear(dim + layers[-1], 1)."""

    def __init__(
        self,
        num_users: int,
        num_items: int,
        dim: int = 32,
        layers: tuple[int, ...] = (64, 32, 16, 8),
        *,
        generator: torch.Generator,
    ):
        super().__init__(num_users, num_items)
        self.gmf = GMF(num_users, num_items, dim, generator=generator)
        self.mlp = MLP(num_users, num_items, layers, generator=generator)
        self.output = seeded_linear(dim + layers[-1], 1, generator)

    @classmethod
    def from_pretrained(cls, gmf: GMF, mlp: MLP, alpha: float = 0.5) -> NeuMF:
        """Start from fitted GMF and MLP: their embeddings and tower, and an output
        layer that weighs their output layers by ``alpha`` and ``1 - alpha``."""
        model = cls(gmf.num_users, gmf.num_items, gmf.dim, mlp.layers, generator=torch.Generator())
        model.gmf.load_state_dict(gmf.state_dict())
        model.mlp.load_state_dict(mlp.state_dict())
        with torch.no_grad():
            model.output.weight.copy_(
                torch.cat([alpha * gmf.output.weight, (1 - alpha) * mlp.output.weight], 1)
            )
            model.output.bias.copy_(alpha * gmf.output.bias + (1 - alpha) * mlp.output.bias)
        return model.to(gmf.output.weight.device)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([self.gmf.interaction(users, items), self.mlp.hidden(users, items)], dim=-1)
        return self.output(joined).squeeze(-1)

    def score_all(self, users: torch.Tensor, pairs_per_pass: int = 1 << 15) -> torch.Tensor:
        # The output layer splits into a GMF part (one matrix product, as in GMF.score_all)
        # and an MLP part over item chunks.
        dim = self.gmf.dim
        gmf_weight, mlp_weight = self.output.weight[0, :dim], self.output.weight[0, dim:]
        scores = (self.gmf.user_embedding[users] * gmf_weight) @ self.gmf.item_embedding.T + self.output.bias
        for items in item_chunks(self.num_items, len(users), pairs_per_pass, users.device):
            scores[:, items[0] : items[-1] + 1] += self.mlp.hidden(users, items[None]) @ mlp_weight
        return scores

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.gmf.penalty(users, items) + self.mlp.penalty(users, items)

    def item_representation(self) -> torch.Tensor:
        return torch.cat([self.gmf.item_embedding, self.mlp.item_embedding], dim=1)

    def hyperparameters(self) -> dict[str, Any]:
        return {"dim": self.gmf.dim, "layers": list(self.mlp.layers)}
