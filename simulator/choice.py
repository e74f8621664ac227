"""Multinomial-logit choice over a slate, with a no-click option and position bias.

For shopper b shown slate items j = 0..k-1 with standardised utilities ``s_bj``::

    P(click j)  = exp(beta * s_bj + bias_j) / Z
    P(no click) = exp(beta * s0) / Z,      Z = exp(beta * s0) + sum_j exp(beta * s_bj + bias_j)
"""

from __future__ import annotations

import torch


def choice_probabilities(
    utilities: torch.Tensor, beta: float, no_click_utility: float, position_bias: torch.Tensor
) -> torch.Tensor:
    """(B, k) utilities -> (B, k + 1) probabilities; the last column is "no click"."""
    logits = beta * utilities + position_bias
    no_click = torch.full_like(logits[:, :1], beta * no_click_utility)
    return torch.softmax(torch.cat([logits, no_click], dim=1), dim=1)


def click_probability(
    utilities: torch.Tensor, beta: float, no_click_utility: float, position_bias: torch.Tensor
) -> torch.Tensor:
    """(B, k) utilities -> (B,) probability that the shopper clicks anything."""
    logits = beta * utilities + position_bias - beta * no_click_utility
    # 1 - 1 / (1 + sum exp(logits)) = sigmoid(logsumexp(logits)), stable for large logits.
    return torch.sigmoid(torch.logsumexp(logits, dim=1))


def sample_choice(probabilities: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: (B, k + 1) probabilities and (B,) uniforms in [0, 1) -> (B,) choices.

    A choice equal to k means "no click". Using one given uniform per row keeps the
    draw order fixed and lets tests drive the sampler at degenerate probabilities.
    """
    cumulative = probabilities.cumsum(dim=1)
    # Scaling by the total (not exactly 1 after rounding) keeps every choice of
    # probability 0 impossible, the last one included.
    return (cumulative <= uniform[:, None] * cumulative[:, -1:]).sum(dim=1)


# ---------------------------------------------------------------- click models
# Each returns (B, k + 1) probabilities of "the first click is at position p"
# (last column: no click) for MNL and cascade, or (B, k) independent per-position
# click probabilities for the position-based model.


def examination(position_bias: torch.Tensor) -> torch.Tensor:
    """(k,) examination probability of each position for cascade and PBM:
    ``e_p = exp(min(b_p, 0))``, so the calibrated position logits (b_1 = 0) mean the
    log-probability that a shopper looks at position p."""
    return position_bias.clamp(max=0).exp()


def attraction(utilities: torch.Tensor, beta: float, no_click_utility: float) -> torch.Tensor:
    """(B, k) probability of clicking an item once examined: ``sigmoid(beta (s - s0))``,
    the two-option logit of the item against not clicking."""
    return torch.sigmoid(beta * (utilities - no_click_utility))


def cascade_probabilities(
    utilities: torch.Tensor, beta: float, no_click_utility: float, position_bias: torch.Tensor
) -> torch.Tensor:
    """Cascade model: the shopper goes down the slate, examines position p with
    probability e_p, clicks an examined item with its attraction a_j, and stops at
    the first click::

        P(click at p) = x_p * prod_{q < p} (1 - x_q),   x_p = e_p * a_{j_p}

    Returns (B, k + 1) probabilities; the last column is "no click"."""
    x = examination(position_bias) * attraction(utilities, beta, no_click_utility)
    survive = torch.cumprod(1 - x, dim=1)  # (B, k): no click up to and including p
    before = torch.cat([torch.ones_like(x[:, :1]), survive[:, :-1]], dim=1)
    return torch.cat([x * before, survive[:, -1:]], dim=1)


def pbm_click_probabilities(
    utilities: torch.Tensor, beta: float, no_click_utility: float, position_bias: torch.Tensor
) -> torch.Tensor:
    """Position-based model: position p is examined with probability e_p, and an
    examined item is clicked with its attraction, independently of the other
    positions (several clicks per slate are possible)::

        P(click at p) = e_p * a_{j_p}

    Returns (B, k)."""
    return examination(position_bias) * attraction(utilities, beta, no_click_utility)


CHOICE_MODELS = ("mnl", "cascade", "pbm")


def click_marginals(
    model: str, utilities: torch.Tensor, beta: float, no_click_utility: float, position_bias: torch.Tensor
) -> torch.Tensor:
    """(B, k) probability that each slate position is clicked, under ``model``."""
    if model == "pbm":
        return pbm_click_probabilities(utilities, beta, no_click_utility, position_bias)
    first = cascade_probabilities if model == "cascade" else choice_probabilities
    return first(utilities, beta, no_click_utility, position_bias)[:, :-1]


def sample_clicks(
    model: str,
    utilities: torch.Tensor,
    beta: float,
    no_click_utility: float,
    position_bias: torch.Tensor,
    uniform: torch.Tensor,
) -> torch.Tensor:
    """(B, k) bool clicks under ``model`` from uniforms in [0, 1): (B, k) for PBM (one
    per position), (B, 1) or more columns for MNL and cascade, which click at most once
    (the first column drives an inverse-CDF draw)."""
    k = utilities.shape[1]
    if model == "pbm":
        return uniform < pbm_click_probabilities(utilities, beta, no_click_utility, position_bias)
    first = cascade_probabilities if model == "cascade" else choice_probabilities
    choice = sample_choice(first(utilities, beta, no_click_utility, position_bias), uniform[:, 0])
    return torch.arange(k, device=utilities.device)[None] == choice[:, None]
