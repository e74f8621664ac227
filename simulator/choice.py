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
