"""Full-ranking evaluation of preference models: HR@k and NDCG@k.

Each held-out (user, item) pair is ranked against every item the user has not
already consumed in training; ties are broken by one fixed random order of the
items, so a constant scorer gets the expected metrics of a random ranking.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

# Scores a batch of users against all items: (B,) user indices -> (B, M) scores.
Scorer = Callable[[torch.Tensor], torch.Tensor]


def full_ranking_metrics(
    scorer: Scorer,
    held_out: np.ndarray,
    seen: np.ndarray,
    num_items: int,
    k: int = 10,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
    tie_seed: int = 0,
) -> dict[str, float]:
    """HR@k and NDCG@k of ``scorer`` on ``held_out`` pairs.

    Args:
        scorer: maps (B,) user indices to (B, M) item scores.
        held_out: (n, 2) ``[user, item]`` pairs to rank, at most one per user.
        seen: (m, 2) ``[user, item]`` pairs excluded from each user's ranking.
        num_items: M, the number of items ranked.
        k: the cut-off.
        tie_seed: seed of the fixed random order that breaks score ties.
    """
    device = torch.device(device)
    generator = torch.Generator().manual_seed(tie_seed)
    tie_order = torch.randperm(num_items, generator=generator).to(device)
    seen_t = torch.as_tensor(seen, device=device)
    hits, gains = [], []
    for start in range(0, len(held_out), batch_size):
        batch = torch.as_tensor(held_out[start : start + batch_size], device=device)
        users, targets = batch[:, 0], batch[:, 1]
        with torch.no_grad():
            scores = scorer(users).float().clone()  # masked in place below
        # Mask items each user already consumed (rows: position in this batch).
        row_of_user = torch.full((int(users.max()) + 1,), -1, device=device, dtype=torch.long)
        row_of_user[users] = torch.arange(len(users), device=device)
        in_batch = seen_t[:, 0] <= users.max()
        rows = row_of_user[seen_t[in_batch, 0]]
        keep = rows >= 0
        # The target keeps its score even if the user also consumed it earlier (repeat events).
        target_scores = scores.gather(1, targets[:, None])
        scores[rows[keep], seen_t[in_batch][keep, 1]] = -torch.inf
        scores.scatter_(1, targets[:, None], target_scores)
        higher = (scores > target_scores).sum(1)
        tied_before = ((scores == target_scores) & (tie_order[None] < tie_order[targets][:, None])).sum(1)
        rank = higher + tied_before  # 0-based
        hit = rank < k
        hits.append(hit.float())
        gains.append(torch.where(hit, 1.0 / torch.log2(rank.float() + 2.0), 0.0))
    return {
        f"hr@{k}": float(torch.cat(hits).mean()),
        f"ndcg@{k}": float(torch.cat(gains).mean()),
    }


def popularity_scorer(train: np.ndarray, num_items: int, device: torch.device | str = "cpu") -> Scorer:
    """A scorer that ranks every user's items by their training-set interaction count."""
    counts = torch.as_tensor(np.bincount(train[:, 1], minlength=num_items), device=device).float()
    return lambda users: counts.expand(len(users), -1).clone()
