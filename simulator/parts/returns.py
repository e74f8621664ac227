"""Lifetimes of several sessions: satisfied shoppers come back sooner and more often."""

from __future__ import annotations

import math

import torch

from shopgym.simulator.parts.base import Part, Step


class Returns(Part):
    """State: ``day`` (B,) of the current session in the shopper's lifetime,
    ``session`` (B,) sessions before this one, ``days_away`` (B,) days since the
    previous visit, ``satisfaction`` (B,) summed over this session's slates and
    ``slates`` (B,) their count, ``days_until_return`` (B,) of a shopper who is coming
    back (applied when the next session starts).

    A slate's satisfaction is the experience of what was clicked (its utility, or
    with ``quality_weight`` partly its quality), plus
    ``satisfaction_purchase_weight`` per purchase, minus
    ``satisfaction_no_click_penalty`` if nothing was; a session's, S, is its mean.
    When a session ends the shopper comes back with probability
    ``sigmoid(return_bias + return_satisfaction_weight * S)``, after
    ``1 + Geometric(q)`` days, q = sigmoid(logit(1 / return_delay_days) +
    return_delay_satisfaction_weight * S): the mean delay is ``return_delay_days``
    at S = 0 and shrinks as S grows. A lifetime lasts ``lifetime_days``; a return
    that would fall past it ends the episode as ``truncated``. Observation:
    ``session`` (B, 1) and ``days_away`` (B, 1).
    """

    name = "returns"
    observation_keys = ("session", "days_away")

    def __init__(self, simulator):
        super().__init__(simulator)
        self.delay_logit = (
            -math.log(self.config.return_delay_days - 1) if self.config.return_delay_days > 1 else 20.0
        )
        self.state |= {
            name: self.zeros()
            for name in ("day", "session", "days_away", "satisfaction", "slates", "days_until_return")
        }

    def start(self, session: torch.Tensor, lifetime: torch.Tensor) -> None:
        state = self.state
        returning = session & ~lifetime
        days = state["days_until_return"]
        state["day"] = torch.where(returning, state["day"] + days, state["day"])
        state["session"] = state["session"] + returning.float()
        state["days_away"] = torch.where(returning, days, state["days_away"])
        for name in ("day", "session", "days_away"):
            state[name] = torch.where(lifetime, 0.0, state[name])
        for name in ("satisfaction", "slates"):
            state[name] = torch.where(session, 0.0, state[name])

    def update(self, step: Step) -> None:
        config = self.config
        clicks = step.clicks.float()
        experience = (
            (clicks * step.experience).sum(1)
            + config.satisfaction_purchase_weight * step.purchases.sum(1)
            - config.satisfaction_no_click_penalty * (1 - clicks.amax(1))
        )
        self.state["satisfaction"] = self.state["satisfaction"] + experience
        self.state["slates"] = self.state["slates"] + 1

    def come_back(self, session_end: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decide for the rows of (B,) bool ``session_end``.

        Returns (B,) bool ``comes_back`` (a new session of the same lifetime starts),
        (B,) bool ``cut`` (it would, but past the lifetime) and (B,) ``days`` away."""
        config, state = self.config, self.state
        satisfaction = state["satisfaction"] / state["slates"].clamp(min=1)
        uniform = torch.rand((2, self.num_shoppers), generator=self.generator, device=self.device)
        returns = session_end & (
            uniform[0] < torch.sigmoid(config.return_bias + config.return_satisfaction_weight * satisfaction)
        )
        per_day = torch.sigmoid(self.delay_logit + config.return_delay_satisfaction_weight * satisfaction)
        # Geometric number of days without a visit, by inversion; at least one day passes.
        skipped = torch.floor(torch.log1p(-uniform[1]) / torch.log1p(-per_day.clamp(max=1 - 1e-6)))
        days = torch.where(returns, 1 + skipped, 0.0)
        cut = returns & (state["day"] + days >= config.lifetime_days)
        comes_back = returns & ~cut
        # Applied when the next session starts (start), so that the final observation
        # of this step still shows the session that ended.
        state["days_until_return"] = torch.where(comes_back, days, 0.0)
        return comes_back, cut, state["days_until_return"]

    def observe(self, state):
        return {"session": state["session"][:, None], "days_away": state["days_away"][:, None]}

    def observation_spec(self):
        days = float(self.config.lifetime_days)
        return {"session": ("box", (1,), 0.0, days), "days_away": ("box", (1,), 0.0, days)}
