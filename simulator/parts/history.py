"""What the shop remembers of a shopper: the last H clicked items."""

from __future__ import annotations

import torch

from shopgym.simulator.parts.base import Part, Step
from shopgym.simulator.tensors import rows


class History(Part):
    """State ``history`` (B, H) int64: the last H clicked items, oldest first; ``M``
    (the catalogue size) marks an empty slot. It lasts a shopper's lifetime (a shop
    remembers a returning customer). Observation: ``history_ids`` (B, H) and
    ``history_features`` (B, H, F), zeros for empty slots."""

    name = "history"
    observation_keys = ("history",)

    def __init__(self, simulator):
        super().__init__(simulator)
        self.empty = simulator.world.num_items
        self.state["history"] = torch.full(
            (self.num_shoppers, self.config.history_length), self.empty, device=self.device
        )

    def start(self, session: torch.Tensor, lifetime: torch.Tensor) -> None:
        self.state["history"] = torch.where(lifetime[:, None], self.empty, self.state["history"])

    def update(self, step: Step) -> None:
        history = self.state["history"]
        if step.clicks.shape[1] == 1 or not self.simulator.multiple_clicks:
            # At most one click: shift in the clicked item where there was one.
            item = (step.items * step.clicks).sum(1)
            appended = torch.cat([history[:, 1:], item[:, None]], dim=1)
            self.state["history"] = torch.where(step.clicked[:, None], appended, history)
            return
        # Several clicks (PBM): append them in slate order; a stable sort moves the
        # unclicked positions to the front, out of the last H columns.
        joined = torch.cat([history, step.items], dim=1)
        kept = torch.cat([torch.ones_like(history, dtype=torch.bool), step.clicks], dim=1)
        order = torch.sort(kept.to(torch.uint8), dim=1, stable=True).indices
        self.state["history"] = joined.gather(1, order)[:, -history.shape[1] :]

    def observe(self, state):
        history = state["history"]
        features = rows(self.simulator.corpus.feature_table, history)
        return {"history_ids": history, "history_features": features}

    def observation_spec(self):
        h = self.config.history_length
        table = self.simulator.corpus.feature_table
        low, high = table.min(0).values, table.max(0).values
        return {
            "history_ids": ("ids", (h,), self.empty + 1),
            "history_features": ("box", (h, table.shape[1]), low.expand(h, -1), high.expand(h, -1)),
        }
