"""A static matrix-factorisation recommender trained on logs collected in the simulator."""

from __future__ import annotations

from typing import Any

import torch
from gymnasium import spaces
from torch import nn

from shopgym.agents.base import Agent, Checkpoint, Observation, top_k
from shopgym.agents.baselines import RandomAgent
from shopgym.agents.logged_data import SlateLog, collect_log
from shopgym.envs.spaces import SlateSpace
from shopgym.simulator.determinism import deterministic_algorithms


class SessionMF(nn.Module):
    """Logistic factorisation of the click matrix between a session's clicked items
    and the item shown: ``P(click i | history h) = σ(b_i + mean_{j in h} q_j · p_i)``.

    Attributes:
        item_bias: (M,); item_vector p: (M, d); context_vector q: (M + 1, d), whose
        last row (the empty slot) stays zero.
    """

    def __init__(self, num_items: int, dim: int, generator: torch.Generator):
        super().__init__()
        self.num_items = num_items
        self.item_bias = nn.Parameter(torch.zeros(num_items))
        self.item_vector = nn.Parameter(0.1 * torch.randn(num_items, dim, generator=generator))
        self.context_vector = nn.Parameter(0.1 * torch.randn(num_items + 1, dim, generator=generator))
        with torch.no_grad():
            self.context_vector[-1].zero_()

    def forward(self, history: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, H) history IDs and (B, n) item IDs -> (B, n) click logits."""
        filled = (history < self.num_items).float()
        context = (self.context_vector[history] * filled[..., None]).sum(1)
        context = context / filled.sum(1, keepdim=True).clamp(min=1.0)
        return self.item_bias[items] + torch.einsum("bd,bnd->bn", context, self.item_vector[items])


class StaticMFAgent(Agent):
    """Static MF recommender trained on random-policy logs of train shoppers.

    It learns from a log that a uniformly random logging policy collects on the
    *train* shoppers, then serves the test shoppers frozen.

    It never reads the World: what it knows of items comes from the clicks in its
    log. It shows the k candidates with the highest predicted click probability
    given the shopper's clicks so far in the session, best first.

    Args:
        dim: factor dimension.
        epochs, batch_size, lr, weight_decay: training of :class:`SessionMF` (Adam, BCE).
    """

    name = "static-mf"
    trains_before_evaluation = True

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str = "auto",
        dim: int = 16,
        epochs: int = 10,
        batch_size: int = 1024,
        lr: float = 0.01,
        weight_decay: float = 1e-5,
    ):
        super().__init__(observation_space, action_space, seed, device)
        # On the CPU, so that the initial weights and the shuffles do not depend on the device.
        self.training_generator = torch.Generator().manual_seed(seed)
        self.model = SessionMF(self.num_items, dim, self.training_generator).to(self.device)
        self.epochs, self.batch_size, self.lr, self.weight_decay = (
            epochs,
            batch_size,
            lr,
            weight_decay,
        )
        self.training_data: dict[str, Any] = {"slates": 0}

    def fit(self, env: Any, budget: int, seed: int, checkpoint: Checkpoint | None = None) -> None:
        logger = RandomAgent(self.observation_space, self.action_space, seed=seed, device=self.device)
        log = collect_log(env, logger, budget, seed=seed)
        losses = self.train_on(log)
        self.training_log = [{"epoch": float(epoch), "loss": loss} for epoch, loss in enumerate(losses, 1)]
        self.training_data = {
            "slates": len(log),
            "clicks": int(log.clicks.sum()),
            "logging_policy": "uniformly random slates",
        }
        if checkpoint is not None:  # trained offline: one point, after training
            checkpoint(len(log))

    @deterministic_algorithms()
    def train_on(self, log: SlateLog) -> list[float]:
        """Fit the model on every (slate position) impression of ``log``; returns epoch losses."""
        k = log.shown_ids.shape[1]
        history = log.history_ids.to(self.device).repeat_interleave(k, dim=0)
        items = log.shown_ids.to(self.device).reshape(-1, 1)
        labels = log.clicks.to(self.device).reshape(-1, 1).float()
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        losses = []
        for _ in range(self.epochs):
            order = torch.randperm(len(items), generator=self.training_generator).to(self.device)
            total = 0.0
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                logits = self.model(history[rows], items[rows])
                loss = nn.functional.binary_cross_entropy_with_logits(logits, labels[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                # Keep the empty-slot context vector at zero.
                with torch.no_grad():
                    self.model.context_vector[-1].zero_()
                total += float(loss.detach()) * len(rows)
            losses.append(total / len(order))
        return losses

    def act(self, observation: Observation) -> torch.Tensor:
        candidates = observation["candidate_ids"]
        with torch.no_grad():
            logits = self.model(observation["history_ids"].to(self.device), candidates.to(self.device))
        return top_k(logits, self.slate_size, self.generator).to(candidates.device)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": "session MF (logistic)",
            "training_data": self.training_data,
        }

    def state_dict(self) -> dict[str, Any]:
        weights = {key: value.cpu() for key, value in self.model.state_dict().items()}
        return {"model": weights, "training_data": self.training_data}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.training_data = dict(state["training_data"])
