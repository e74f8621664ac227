"""Per-shopper reference simulators, and the rollouts that compare them with the batched core.

The batched simulators (:mod:`shopgym.simulator.shoppers`,
:mod:`shopgym.simulator.interest_evolution`) advance B shoppers at once in torch. The
references here write the same dynamics the way classic simulators (RecSim, RecoGym)
do: one shopper at a time, in plain Python and NumPy, sharing no step code with the
batched core. They serve two purposes:

- **a check of the batched core**: under uniformly random slates, both must give the
  same distribution of outcomes (mean return, mean episode length, click-through rate
  per slate position); see ``tests/simulator/test_reference.py``;
- **a baseline for the benchmark**: the batched core's speed-up over a per-shopper
  simulator, measured in the same run.

The simulators live in the submodules (imported explicitly, so that this module stays
free of either one's dependencies):

- :class:`shopgym.simulator.reference.shopper.ReferenceShopper`: ``shopgym/Shopper-v0``'s
  shopper (static World utilities, multinomial logit with a no-click option and
  position logits, purchases, a patience budget);
- :class:`shopgym.simulator.reference.interest_evolution.ReferenceInterestEvolution`:
  ``shopgym/InterestEvolution-v0``'s user (RecSim's interest-evolution dynamics).

Both follow :class:`ReferenceSimulator`. This module holds what they share: the episode
records (:class:`Episodes`), their estimates with standard errors (:class:`Estimate`),
and the two rollouts under uniformly random slates, :func:`run_random_episodes` for a
reference and :func:`batched_random_episodes` for a batched simulator.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from shopgym.simulator.errors import SlateError

__all__ = [
    "Episodes",
    "Estimate",
    "ReferenceSimulator",
    "StepResult",
    "batched_random_episodes",
    "check_slate",
    "compare",
    "run_random_episodes",
]


class StepResult(NamedTuple):
    """What one step of a reference simulator returns (one shopper, k slate positions)."""

    reward: float
    clicks: np.ndarray
    """(k,) bool, True at each slate position clicked."""
    terminated: bool
    """The shopper left (the episode is over; call ``reset``)."""
    truncated: bool
    """The episode hit its time limit (``max_steps``)."""


class ReferenceSimulator(Protocol):
    """One shopper at a time: ``reset`` starts an episode, ``step`` shows one slate."""

    num_candidates: int
    slate_size: int

    def reset(self) -> dict[str, np.ndarray]:
        """Start an episode with a new shopper; return the first observation."""
        ...

    def step(self, slate: Sequence[int] | np.ndarray) -> StepResult:
        """Show a (k,) slate of distinct candidate indices in [0, N)."""
        ...


def check_slate(slate: np.ndarray, slate_size: int, num_candidates: int) -> None:
    """Raise :class:`SlateError` unless ``slate`` is ``slate_size`` distinct integers in
    [0, ``num_candidates``). Plain Python on the (k,) values: cheaper than NumPy's
    reductions for a handful of them."""
    values = slate.tolist() if slate.ndim == 1 and slate.dtype.kind in "iu" else None
    if (
        values is None
        or len(values) != slate_size
        or len(set(values)) != slate_size
        or min(values) < 0
        or max(values) >= num_candidates
    ):
        raise SlateError(
            f"a slate is {slate_size} distinct integers in [0, {num_candidates}), got {slate.tolist()!r}"
        )


# ------------------------------------------------------------------ statistics
@dataclass(frozen=True)
class Estimate:
    """A mean and its standard error."""

    mean: float
    stderr: float

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """The normal interval ``mean ± z stderr`` (z = 1.96: 95%)."""
        return self.mean - z * self.stderr, self.mean + z * self.stderr

    def agrees_with(self, other: Estimate, z: float = 3.5) -> bool:
        """Whether the difference of two independent estimates lies within z of its
        standard error, ``sqrt(se_a² + se_b²)`` (a two-sample z-test at level ``z``)."""
        return abs(self.mean - other.mean) <= z * math.hypot(self.stderr, other.stderr)

    def __str__(self) -> str:
        low, high = self.interval()
        return f"{self.mean:.4f} [{low:.4f}, {high:.4f}]"


def _mean(values: np.ndarray) -> Estimate:
    return Estimate(float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))))


@dataclass(frozen=True)
class Episodes:
    """Records of E finished episodes.

    Attributes:
        returns: (E,) float64, the sum of an episode's rewards.
        lengths: (E,) int64, its slates.
        clicks: (E, k) int64, its clicks at each slate position.
        seconds: wall time of the rollout that produced them: with :attr:`steps`, the
            throughput of a reference. (A batched rollout also runs rows past their
            first episode, which :attr:`steps` does not count: not a throughput.)
    """

    returns: np.ndarray
    lengths: np.ndarray
    clicks: np.ndarray
    seconds: float = 0.0

    @property
    def num_episodes(self) -> int:
        return len(self.returns)

    @property
    def steps(self) -> int:
        """Shopper-steps (slates shown) in all the episodes together."""
        return int(self.lengths.sum())

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else math.nan

    def mean_return(self) -> Estimate:
        return _mean(self.returns)

    def mean_length(self) -> Estimate:
        return _mean(self.lengths.astype(np.float64))

    def ctr(self) -> list[Estimate]:
        """Click-through rate of each slate position: its clicks over all slates shown.

        A ratio of two per-episode sums (clicks c_e at the position, length n_e), so
        its standard error is the delta method's, with episodes as the independent
        units: ``sd(c_e - ctr n_e) / (mean(n_e) sqrt(E))``.
        """
        lengths = self.lengths.astype(np.float64)
        scale = lengths.mean() * math.sqrt(self.num_episodes)
        estimates = []
        for position in range(self.clicks.shape[1]):
            clicks = self.clicks[:, position].astype(np.float64)
            rate = clicks.sum() / lengths.sum()
            estimates.append(Estimate(float(rate), float((clicks - rate * lengths).std(ddof=1) / scale)))
        return estimates

    def estimates(self) -> dict[str, Estimate]:
        """``return``, ``length`` and ``ctr_<p>`` for every slate position p."""
        named = {"return": self.mean_return(), "length": self.mean_length()}
        return named | {f"ctr_{position}": ctr for position, ctr in enumerate(self.ctr())}


def compare(a: Episodes, b: Episodes, z: float = 3.5) -> dict[str, tuple[Estimate, Estimate, bool]]:
    """Per estimate of :meth:`Episodes.estimates`: a's, b's, and whether they agree
    (:meth:`Estimate.agrees_with` at ``z``)."""
    theirs = b.estimates()
    return {
        name: (mine, theirs[name], mine.agrees_with(theirs[name], z)) for name, mine in a.estimates().items()
    }


# -------------------------------------------------------------------- rollouts
def run_random_episodes(simulator: ReferenceSimulator, episodes: int, seed: int) -> Episodes:
    """Roll out ``episodes`` episodes of a reference simulator one after the other, each
    slate k distinct candidates drawn uniformly (from a stream seeded by ``seed``, apart
    from the simulator's own)."""
    policy = np.random.default_rng(seed)
    n, k = simulator.num_candidates, simulator.slate_size
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    clicks = np.zeros((episodes, k), dtype=np.int64)
    start = time.perf_counter()
    for episode in range(episodes):
        simulator.reset()
        total, steps, clicked = 0.0, 0, np.zeros(k, dtype=np.int64)
        while True:
            result = simulator.step(policy.permutation(n)[:k])
            total += result.reward
            steps += 1
            clicked += result.clicks
            if result.terminated or result.truncated:
                break
        returns[episode], lengths[episode], clicks[episode] = total, steps, clicked
    return Episodes(returns, lengths, clicks, time.perf_counter() - start)


def batched_random_episodes(simulator: Any, seed: int, max_steps: int = 100_000) -> Episodes:
    """The first episode of each of a batched simulator's B rows under uniformly random
    slates: B episodes.

    Rows restart at once when their episode ends (same-step autoreset), so a row
    counts only its first episode: counting every episode finished within some number
    of steps would over-represent short ones. The rollout runs until every row's first
    episode is over.

    Args:
        simulator: a batched simulator (``ShopperSimulator``, ``InterestEvolutionSimulator``):
            ``num_shoppers``, ``device``, ``config.num_candidates``, ``config.slate_size``,
            ``reset(seed)`` and ``step(slates, check)`` returning a ``StepOutcome``.
        seed: seeds the simulator (``reset(seed)``) and, through a derived seed, the slates' stream.
        max_steps: give up (RuntimeError) if some first episode is still running then.
    """
    b, n, k = simulator.num_shoppers, simulator.config.num_candidates, simulator.config.slate_size
    device = simulator.device
    # A seed of its own for the slates, so that no simulator stream shares the policy's.
    policy_seed = int(np.random.SeedSequence([seed, 1]).generate_state(1, dtype=np.uint64)[0] >> 1)
    policy = torch.Generator(device=device).manual_seed(policy_seed)
    start = time.perf_counter()
    simulator.reset(seed)
    active = torch.ones(b, dtype=torch.bool, device=device)
    returns = torch.zeros(b, dtype=torch.float64, device=device)
    lengths = torch.zeros(b, dtype=torch.long, device=device)
    clicks = torch.zeros((b, k), dtype=torch.long, device=device)
    for _ in range(max_steps):
        slates = torch.rand((b, n), generator=policy, device=device).argsort(1)[:, :k]
        outcome = simulator.step(slates, check=False)
        returns += torch.where(active, outcome.reward.double(), 0.0)
        lengths += active
        clicks += outcome.clicks & active[:, None]
        active &= ~outcome.done
        if not bool(active.any()):
            break
    else:
        raise RuntimeError(f"some first episodes were still running after {max_steps} steps")
    seconds = time.perf_counter() - start
    return Episodes(returns.cpu().numpy(), lengths.cpu().numpy(), clicks.cpu().numpy(), seconds)
