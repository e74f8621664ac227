"""Time budget (patience) and leaving: when a session ends."""

from __future__ import annotations

import torch

from shopgym.simulator.parts.base import Part, Step


class Budget(Part):
    """State: ``patience`` (B,) time budget left, ``steps`` (B,) slates seen this
    session, ``unsatisfied`` (B,) unsatisfying slates in a row.

    After a slate (c clicks, of experiences x, and b purchases)::

        patience -= step_cost + no_click_cost [c = 0] + click_cost c
                    - purchase_refund b - utility_refill sum(max(x, 0))

    The session ends when patience reaches 0, or after ``leave_after_unsatisfying``
    unsatisfying slates in a row (when > 0): slates without a click of positive
    experience (nothing clicked, or only what disappointed). Observation: ``step`` (B, 1), slates
    seen this session.
    """

    name = "budget"
    observation_keys = ("steps",)

    def __init__(self, simulator):
        super().__init__(simulator)
        self.state |= {
            "patience": self.zeros(),
            "steps": self.zeros(dtype=torch.long),
            "unsatisfied": self.zeros(),
        }

    def start(self, session: torch.Tensor, lifetime: torch.Tensor) -> None:
        state = self.state
        state["patience"] = torch.where(session, self.config.patience, state["patience"])
        state["steps"] = torch.where(session, 0, state["steps"])
        state["unsatisfied"] = torch.where(session, 0.0, state["unsatisfied"])

    def update(self, step: Step) -> None:
        config, state = self.config, self.state
        clicks, purchases = step.clicks.float(), step.purchases.float()
        no_click = 1.0 - clicks.amax(1)
        patience = state["patience"] - config.step_cost - config.no_click_cost * no_click
        if config.click_cost:
            patience = patience - config.click_cost * clicks.sum(1)
        patience = patience + config.purchase_refund * purchases.sum(1)
        if config.utility_refill:
            patience = patience + config.utility_refill * (clicks * step.experience.clamp(min=0)).sum(1)
        state["patience"] = patience
        state["steps"] = state["steps"] + 1
        session_end = state["patience"] <= 0
        if config.leave_after_unsatisfying:
            satisfied = (step.clicks & (step.experience > 0)).any(1)
            state["unsatisfied"] = torch.where(satisfied, 0.0, state["unsatisfied"] + 1)
            session_end = session_end | (state["unsatisfied"] >= config.leave_after_unsatisfying)
        step.session_end = session_end

    def observe(self, state):
        return {"step": state["steps"][:, None].float()}

    def observation_spec(self):
        return {"step": ("box", (1,), 0.0, float(self.config.max_steps))}
