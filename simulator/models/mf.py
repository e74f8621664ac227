"""Matrix factorisation: ``f(u, i) = p_u · q_i + b_u + b_i + b``.

The same model serves two objectives (see ``training.py``): squared error on
explicit ratings ("mf", biased MF) and the pairwise BPR loss on implicit feedback
("bpr", Rendle et al. 2009). Under BPR the user and global biases cancel out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from shopgym.simulator.models.base import PreferenceModel, normal_


class MatrixFactorization(PreferenceModel):
    """Attributes: user_embedding (U, d), item_embedding (M, d), user_bias (U,),
    item_bias (M,), global_bias ()."""

    def __init__(self, num_users: int, num_items: int, dim: int = 64, *, generator: torch.Generator):
        super().__init__(num_users, num_items)
        self.dim = dim
        self.user_embedding = nn.Parameter(normal_(torch.empty(num_users, dim), 0.1, generator))
        self.item_embedding = nn.Parameter(normal_(torch.empty(num_items, dim), 0.1, generator))
        self.user_bias = nn.Parameter(torch.zeros(num_users))
        self.item_bias = nn.Parameter(torch.zeros(num_items))
        self.global_bias = nn.Parameter(torch.zeros(()))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = torch.einsum("bd,bnd->bn", self.user_embedding[users], self.item_embedding[items])
        return dot + self.item_bias[items] + self.user_bias[users][:, None] + self.global_bias

    def score_all(self, users: torch.Tensor, pairs_per_pass: int = 1 << 15) -> torch.Tensor:
        # One matrix product instead of the generic chunked gather.
        scores = self.user_embedding[users] @ self.item_embedding.T + self.item_bias
        return scores + self.user_bias[users][:, None] + self.global_bias

    def penalty(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (
            self.user_embedding[users].pow(2).sum()
            + self.user_bias[users].pow(2).sum()
            + self.item_embedding[items].pow(2).sum()
            + self.item_bias[items].pow(2).sum()
        )

    def item_representation(self) -> torch.Tensor:
        return torch.cat([self.item_embedding, self.item_bias[:, None]], dim=1)

    def hyperparameters(self) -> dict[str, Any]:
        return {"dim": self.dim}
