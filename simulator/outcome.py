"""What one step of a batched simulator returns (every simulator of shopgym uses it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class StepOutcome:
    """What one step did, for B shoppers.

    Attributes:
        reward: (B,) float32.
        clicks: (B, k) bool, True at each slate position clicked.
        purchases: (B, k) bool, True at each slate position bought (all False in
            simulators without purchases).
        terminated: (B,) bool, the episode ended because the shopper left for good.
        truncated: (B,) bool, the episode hit its time limit.
        final_state: the state tensors that ``observe`` reads, as they were at the
            end of the step, before sessions that ended were replaced (same-step
            autoreset); ``simulator.observe(outcome.final_state)`` is the final observation.
        info: further (B, ...) tensors of the step (for example ``revenue``).
    """

    reward: torch.Tensor
    clicks: torch.Tensor
    purchases: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_state: dict[str, torch.Tensor]
    info: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated
