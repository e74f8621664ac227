"""The choice model as a part: its random draws (the equations are in ``simulator/choice.py``)."""

from __future__ import annotations

import torch

from shopgym.simulator.choice import click_marginals, sample_clicks
from shopgym.simulator.parts.base import Part


class Choice(Part):
    """Clicks on a slate under ``config.choice_model`` (``mnl``, ``cascade`` or
    ``pbm``) with the choice constants beta, s0 and the position logits b_p."""

    name = "choice"

    def __init__(self, simulator, beta: float, no_click_utility: float, position_bias: torch.Tensor):
        super().__init__(simulator)
        self.model = self.config.choice_model
        self.beta, self.no_click_utility, self.position_bias = beta, no_click_utility, position_bias

    def sample(self, utility: torch.Tensor) -> torch.Tensor:
        """(B, k) utilities of a slate -> (B, k) bool clicks."""
        # One uniform per position for PBM's independent clicks, one per row otherwise.
        shape = utility.shape if self.model == "pbm" else (utility.shape[0], 1)
        uniform = torch.rand(shape, generator=self.generator, device=self.device)
        return sample_clicks(
            self.model, utility, self.beta, self.no_click_utility, self.position_bias, uniform
        )

    def marginals(self, utility: torch.Tensor) -> torch.Tensor:
        """(B, k) probability that each position of a slate of these utilities is clicked."""
        return click_marginals(self.model, utility, self.beta, self.no_click_utility, self.position_bias)
