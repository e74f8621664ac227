"""Evaluating preference models on held-out events: HR@k, NDCG@k and Recall@k.

Full ranking (the headline): each held-out (user, item) pair is ranked against
every item the user has not already consumed; ties are broken by one fixed random
order of the items, so a constant scorer gets the expected metrics of a random
ranking. Sampled ranking (for comparability with He et al. 2017): against 100
items the user never interacted with.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from shopgym.simulator.errors import DataError
from shopgym.simulator.splits import Split

# Scores a batch of users against all items: (B,) user indices -> (B, M) scores.
Scorer = Callable[[torch.Tensor], torch.Tensor]


def full_ranking_ranks(
    scorer: Scorer,
    held_out: np.ndarray,
    seen: np.ndarray,
    num_items: int,
    batch_size: int = 1024,
    device: torch.device | str = "cpu",
    tie_seed: int = 0,
) -> torch.Tensor:
    """(n,) 0-based rank of each held-out item among every item its user has not consumed.

    Args:
        scorer: maps (B,) user indices to (B, M) item scores.
        held_out: (n, 2) ``[user, item]`` pairs to rank, at most one per user.
        seen: (m, 2) ``[user, item]`` pairs excluded from each user's ranking.
        num_items: M, the number of items ranked.
        tie_seed: seed of the fixed random order that breaks score ties.
    """
    device = torch.device(device)
    generator = torch.Generator().manual_seed(tie_seed)
    tie_order = torch.randperm(num_items, generator=generator).to(device)
    seen_t = torch.as_tensor(seen, device=device)
    ranks = []
    for start in range(0, len(held_out), batch_size):
        batch = torch.as_tensor(held_out[start : start + batch_size], device=device)
        users, targets = batch[:, 0], batch[:, 1]
        with torch.no_grad():
            scores = _finite_scores(scorer(users)).clone()  # masked in place below
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
        ranks.append(higher + tied_before)
    return torch.cat(ranks)


def sampled_ranks(
    scorer: Scorer,
    held_out: np.ndarray,
    interacted: np.ndarray,
    num_items: int,
    num_negatives: int = 100,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(n,) 0-based rank of each held-out item among ``num_negatives`` items drawn
    uniformly from those its user never interacted with (the protocol of He et al.
    2017, kept for comparability; full ranking is the headline, since sampled metrics
    can order models inconsistently). Ties count against the held-out item."""
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    interacted_by = {}
    for user, item in interacted:
        interacted_by.setdefault(int(user), set()).add(int(item))
    negatives = np.empty((len(held_out), num_negatives), dtype=np.int64)
    for row, (user, _) in enumerate(held_out):
        excluded = interacted_by.get(int(user), set())
        if num_items - len(excluded) < num_negatives:
            raise ValueError(f"user {user} has fewer than {num_negatives} items left to sample")
        drawn: list[int] = []
        while len(drawn) < num_negatives:  # rejection sampling; few rejections when M >> n
            for item in torch.randint(num_items, (num_negatives,), generator=generator).tolist():
                if item not in excluded and item not in drawn and len(drawn) < num_negatives:
                    drawn.append(item)
        negatives[row] = drawn
    users = torch.as_tensor(held_out[:, 0], device=device)
    with torch.no_grad():
        scores = _finite_scores(scorer(users))
    target_scores = scores.gather(1, torch.as_tensor(held_out[:, 1:2], device=device))
    negative_scores = scores.gather(1, torch.as_tensor(negatives, device=device))
    return (negative_scores >= target_scores).sum(1)


def _finite_scores(scores: torch.Tensor) -> torch.Tensor:
    """``scores`` as float32; NaN is refused, since it compares false with everything
    and would rank first."""
    scores = scores.float()
    if bool(scores.isnan().any()):
        raise ValueError(f"the scorer returned NaN for {int(scores.isnan().sum())} (user, item) pairs")
    return scores


def metrics_from_ranks(ranks: torch.Tensor, k: int) -> dict[str, float]:
    """HR@k and NDCG@k of 0-based ranks (one relevant item per user, so Recall@k = HR@k)."""
    return {f"hr@{k}": float((ranks < k).float().mean()), f"ndcg@{k}": float(ndcg_gains(ranks, k).mean())}


def ndcg_gains(ranks: torch.Tensor, k: int) -> torch.Tensor:
    """(n,) 0-based ranks of one relevant item each -> (n,) per-user NDCG@k."""
    return torch.where(ranks < k, 1.0 / torch.log2(ranks.float() + 2.0), 0.0)


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
    """HR@k and NDCG@k of ``scorer`` on ``held_out`` pairs, ranked against every item
    not in ``seen`` (arguments as :func:`full_ranking_ranks`)."""
    ranks = full_ranking_ranks(scorer, held_out, seen, num_items, batch_size, device, tie_seed)
    return metrics_from_ranks(ranks, k)


def ranking_report(scorer: Scorer, split: Split, device: torch.device | str = "cpu") -> dict[str, float]:
    """The test metrics shopgym reports for a preference model: full-ranking HR@10,
    NDCG@10 and Recall@20, and sampled HR@10 and NDCG@10 (against 100 negatives, or
    as many as the catalogue leaves every user: ``sampled_negatives``)."""
    seen = split.consumed_before_test()
    ranks = full_ranking_ranks(scorer, split.test, seen, split.num_items, device=device)
    full_20 = metrics_from_ranks(ranks, 20)
    everything = np.concatenate([seen, split.test])
    # 100 negatives as in He et al. 2017, fewer when a small catalogue has fewer left.
    distinct_pairs = np.unique(everything, axis=0)
    most_interacted = np.bincount(distinct_pairs[:, 0], minlength=split.num_users).max()
    negatives = int(min(100, split.num_items - most_interacted))
    if negatives < 1:
        raise DataError(
            f"a user interacted with all {split.num_items} items: no negatives left for the sampled metrics"
        )
    sampled_ranks_ = sampled_ranks(scorer, split.test, everything, split.num_items, negatives, device=device)
    sampled = metrics_from_ranks(sampled_ranks_, 10)
    return {
        **metrics_from_ranks(ranks, 10),
        "recall@20": full_20["hr@20"],
        "sampled_hr@10": sampled["hr@10"],
        "sampled_ndcg@10": sampled["ndcg@10"],
        "sampled_negatives": negatives,
    }


def popularity_scorer(train: np.ndarray, num_items: int, device: torch.device | str = "cpu") -> Scorer:
    """A scorer that ranks every user's items by their training-set interaction count."""
    counts = torch.as_tensor(np.bincount(train[:, 1], minlength=num_items), device=device).float()
    return lambda users: counts.expand(len(users), -1).clone()
