"""Matrix factorisation fitted with the BPR loss on implicit feedback.

Score of item i for user u: ``f(u, i) = p_u · q_i + b_i``. Every observed (u, i) is
a positive; each is paired with an item drawn uniformly from the catalogue as the
negative (Rendle et al., 2009). Training stops early when validation NDCG@10
(full ranking) has not improved for ``patience`` epochs, and the best epoch's
parameters are kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from shopgym.simulator.determinism import deterministic_algorithms
from shopgym.simulator.errors import ConfigError, DataError
from shopgym.simulator.ranking import full_ranking_metrics
from shopgym.simulator.splits import Split


@dataclass(frozen=True)
class MFConfig:
    """Hyperparameters of BPR matrix factorisation."""

    dim: int = 64
    """Embedding dimension d."""
    epochs: int = 60
    """Maximum number of passes over the training events."""
    batch_size: int = 2048
    lr: float = 0.005
    """Adam learning rate."""
    weight_decay: float = 1e-2
    """L2 penalty on the embeddings and biases used in each batch."""
    patience: int = 8
    """Epochs without validation NDCG@10 improvement before stopping."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("dim", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ConfigError(f"MFConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError("MFConfig: lr must be > 0 and weight_decay >= 0")


class MatrixFactorization(nn.Module):
    """User and item embeddings with an item bias.

    Attributes:
        user_embedding: (U, d); item_embedding: (M, d); item_bias: (M,).
    """

    def __init__(self, num_users: int, num_items: int, dim: int, generator: torch.Generator):
        super().__init__()
        self.user_embedding = nn.Parameter(torch.randn(num_users, dim, generator=generator) * 0.1)
        self.item_embedding = nn.Parameter(torch.randn(num_items, dim, generator=generator) * 0.1)
        self.item_bias = nn.Parameter(torch.zeros(num_items))

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B,) users and (B, ...) items -> (B, ...) scores."""
        p = self.user_embedding[users]
        q = self.item_embedding[items]
        p = p.view(p.shape[0], *([1] * (items.dim() - 1)), p.shape[1])
        return (p * q).sum(-1) + self.item_bias[items]

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) users -> (B, M) scores of every item."""
        return self.user_embedding[users] @ self.item_embedding.T + self.item_bias


@dataclass
class FitResult:
    model: MatrixFactorization
    history: list[dict]
    best_epoch: int
    wall_time_s: float


@deterministic_algorithms()
def fit_bpr(
    split: Split,
    config: MFConfig = MFConfig(),
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> FitResult:
    """Fit BPR-MF on ``split.train`` with early stopping on ``split.valid``."""
    if len(split.valid) == 0:
        raise DataError("no validation events to stop on: every user has fewer than 3 events")
    device = torch.device(device)
    generator = torch.Generator().manual_seed(config.seed)
    model = MatrixFactorization(split.num_users, split.num_items, config.dim, generator).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    train = torch.as_tensor(split.train, device=device)
    best_ndcg, best_epoch, best_state, history = -1.0, 0, None, []
    started = time.perf_counter()
    bar = tqdm(range(1, config.epochs + 1), desc="fit BPR-MF", disable=not progress, leave=False)
    for epoch in bar:
        order = torch.randperm(len(train), generator=generator).to(device)
        negatives = torch.randint(split.num_items, (len(train),), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(train), config.batch_size):
            rows = order[start : start + config.batch_size]
            users, positives = train[rows, 0], train[rows, 1]
            negs = negatives[rows]
            margin = model.score(users, positives) - model.score(users, negs)
            penalty = (
                model.user_embedding[users].pow(2).sum()
                + model.item_embedding[positives].pow(2).sum()
                + model.item_embedding[negs].pow(2).sum()
                + model.item_bias[positives].pow(2).sum()
                + model.item_bias[negs].pow(2).sum()
            )
            loss = -nn.functional.logsigmoid(margin).mean() + config.weight_decay * penalty / len(rows)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        metrics = full_ranking_metrics(
            model.score_all, split.valid, split.train, split.num_items, device=device
        )
        history.append({"epoch": epoch, "loss": total / len(train), **metrics})
        bar.set_postfix(loss=f"{total / len(train):.4f}", ndcg=f"{metrics['ndcg@10']:.4f}")
        if metrics["ndcg@10"] > best_ndcg:
            best_ndcg, best_epoch = metrics["ndcg@10"], epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    return FitResult(model, history, best_epoch, time.perf_counter() - started)
