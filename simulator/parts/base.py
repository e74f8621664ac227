"""What every part of the shopper model is: state, random draws, update, observation.

RecSim NG splits a user model into state, choice and response; shopgym does the
same with one :class:`Part` per behaviour. A part owns

- its **state**: a dict of tensors that all lead with the batch dimension B, so that
  the simulator can snapshot, restore and replicate rows without knowing them. A
  part replaces a state tensor when it changes it and never writes into it, so that
  the tensors a step hands out (the final observation's state) stay as they were;
- its **random draws**: its own ``torch.Generator``, seeded from the simulator's seed
  and the part's name, so that a draw added in one part shifts no other stream;
- its **update** after each step (:meth:`update`), its term in the utility of an item
  (:meth:`utility`), what it does when a session or a lifetime starts
  (:meth:`start`), and the observation keys it adds (:meth:`observe`).

:class:`shopgym.simulator.shoppers.ShopperSimulator` wires the parts in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

if TYPE_CHECKING:
    from shopgym.simulator.shoppers import ShopperSimulator


@dataclass
class Step:
    """What happened in one step, for the parts' updates (B rows, k slate positions).

    Attributes:
        items: (B, k) catalogue items shown.
        utility: (B, k) their utilities at the time (all parts' terms included).
        experience: (B, k) what consuming each would be worth to the shopper (the
            utility, or with ``quality_weight`` partly the item's quality).
        clicks: (B, k) bool.
        purchases: (B, k) bool.
        price: (B, k) prices of the shown items in units of the median price.
        session_end: (B,) bool, set by the budget part: the shopper leaves the session.
    """

    items: torch.Tensor
    utility: torch.Tensor
    experience: torch.Tensor
    clicks: torch.Tensor
    purchases: torch.Tensor
    price: torch.Tensor
    session_end: torch.Tensor | None = None

    @property
    def clicked(self) -> torch.Tensor:
        """(B,) bool: anything clicked."""
        return self.clicks.any(1)


class Part:
    """One behaviour of B shoppers. Subclasses set ``name`` and override what they use.

    Args:
        simulator: the simulator the part belongs to (read its ``world``, ``config``,
            ``num_shoppers``, ``device`` and item tables; never its other parts' state).
    """

    name: ClassVar[str]
    observation_keys: ClassVar[tuple[str, ...]] = ()
    """State keys that :meth:`observe` reads (copied into ``StepOutcome.final_state``)."""

    def __init__(self, simulator: ShopperSimulator):
        self.simulator = simulator
        self.config = simulator.config
        self.device = simulator.device
        self.num_shoppers = simulator.num_shoppers
        self.state: dict[str, torch.Tensor] = {}
        self.generator = torch.Generator(device=self.device)

    def zeros(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A (B, *shape) zero state tensor on the part's device."""
        return torch.zeros((self.num_shoppers, *shape), dtype=dtype, device=self.device)

    def start(self, session: torch.Tensor, lifetime: torch.Tensor) -> None:
        """New sessions begin in the rows of (B,) bool ``session``; of those, the rows
        of ``lifetime`` also hold a new shopper (state that lasts across a shopper's
        sessions restarts only there)."""

    def utility(self, items: torch.Tensor) -> torch.Tensor | None:
        """(B, n) catalogue items -> (B, n) term added to their utility, or ``None``."""
        return None

    def update(self, step: Step) -> None:
        """Advance the state after a step."""

    def observe(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Observation keys from ``state`` (this part's state, current or final)."""
        return {}

    def observation_spec(self) -> dict[str, tuple]:
        """Per key of :meth:`observe`: ``("box", shape, low, high)`` or ``("ids", shape, n)``."""
        return {}
