"""Calibrating the choice model to click-through rates per slate position.

A :class:`ClickTarget` says how often the item at each position of a uniformly
random slate of k items should be clicked (per impression). It comes from a real
log whose logging policy was uniformly random (the Open Bandit Dataset's ``random``
logs), or is a stated level split over positions by relative position effects
(a smooth decay, or effects borrowed from a log).

:func:`calibrate` then fits the no-click utility s0 and the position logits
b_2..b_k (b_1 = 0) so that the choice model reproduces the target exactly, on a
fixed sample of (shopper, random slate) pairs. The temperature beta is not
identified by per-position rates under a random policy (they fix the level and the
position effects, not how strongly shoppers follow their preferences), so it stays
a stated constant, recorded with the rest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch

from shopgym.simulator.choice import choice_probabilities
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.obd import wilson_interval
from shopgym.simulator.sampling import uniform_subsets
from shopgym.simulator.shoppers import ShopperSimulator
from shopgym.simulator.world import Calibration, World


@dataclass(frozen=True)
class ClickTarget:
    """Per-impression click-through rate of each position under uniformly random slates.

    Attributes:
        ctr: (k,) target rates, position 1 first.
        source: where they come from (a log, or "stated").
        low, high: (k,) 95% intervals of the rates when read off a log.
        clicks, impressions: (k,) the log's counts, when read off a log.
    """

    ctr: tuple[float, ...]
    source: str
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    clicks: tuple[int, ...] | None = None
    impressions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.ctr or not all(0 < rate < 1 for rate in self.ctr):
            raise ConfigError(f"click targets must lie in (0, 1), got {self.ctr}")
        if sum(self.ctr) >= 1:
            raise ConfigError(f"click targets sum to {sum(self.ctr):.3f}: a slate cannot draw >= 1 click")

    @property
    def slate_size(self) -> int:
        return len(self.ctr)

    @classmethod
    def stated(cls, click_rate: float, slate_size: int, decay: float = 0.2) -> ClickTarget:
        """A stated click probability per random slate, split over positions in
        proportion to ``exp(-decay * p)`` (p = 0 for the first position)."""
        if not 0 < click_rate < 1:
            raise ConfigError(f"--click-rate must be in (0, 1), got {click_rate}")
        if slate_size < 1:
            raise ConfigError(f"slate size must be >= 1, got {slate_size}")
        weights = np.exp(-decay * np.arange(slate_size))
        ctr = click_rate * weights / weights.sum()
        return cls(
            ctr=tuple(float(rate) for rate in ctr), source=f"stated: {click_rate} per slate, decay {decay}"
        )

    @classmethod
    def from_counts(
        cls, clicks: np.ndarray, impressions: np.ndarray, source: str, confidence: float = 0.95
    ) -> ClickTarget:
        """Targets read off a log: per-position click and impression counts."""
        low, high = wilson_interval(clicks, impressions, confidence)
        return cls(
            ctr=tuple(float(c / n) for c, n in zip(clicks, impressions, strict=True)),
            source=source,
            low=tuple(float(v) for v in low),
            high=tuple(float(v) for v in high),
            clicks=tuple(int(c) for c in clicks),
            impressions=tuple(int(n) for n in impressions),
        )

    def at_level(self, click_rate: float) -> ClickTarget:
        """The same relative position effects, rescaled to ``click_rate`` clicks per slate."""
        if not 0 < click_rate < 1:
            raise ConfigError(f"--click-rate must be in (0, 1), got {click_rate}")
        scale = click_rate / sum(self.ctr)
        return ClickTarget(
            ctr=tuple(rate * scale for rate in self.ctr),
            source=f"{self.source}, relative position effects at stated level {click_rate} per slate",
        )

    def to_dict(self) -> dict:
        return {
            key: (list(value) if isinstance(value, tuple) else value) for key, value in asdict(self).items()
        }


def position_click_rates(
    world: World, calibration: Calibration, slate_size: int, samples: int = 200_000, seed: int = 0
) -> torch.Tensor:
    """(k,) expected per-impression click rate of each position under random slates."""
    utilities = random_slate_utilities(world, slate_size, samples, seed)
    bias = calibration.position_bias(slate_size).to(utilities.device)
    probabilities = choice_probabilities(utilities, calibration.beta, calibration.no_click_utility, bias)
    return probabilities[:, :slate_size].mean(0)


def calibrate(
    world: World, target: ClickTarget, beta: float = 2.0, samples: int = 1_000_000, seed: int = 0
) -> Calibration:
    """A :class:`Calibration` whose random-slate per-position click rates equal ``target``
    on a fixed sample of ``samples`` (shopper, random slate) pairs; on the whole
    population they then differ by the sample's error (per-pair click probabilities
    are heavy-tailed: about 1-3% at a million pairs on the MovieLens Worlds).

    Iterative proportional fitting in float64: each round moves every position's
    logit, and the no-click logit, by the log ratio of its target to its current rate
    (the softmax analogue of raking), then shifts all so that the first position's
    logit is 0. It converges for any target with positive rates summing below 1, in
    tens of rounds at moderate beta and in thousands at beta ~ 100; it stops when the
    largest log error is below 1e-9 or has stopped shrinking.
    """
    if not (0 < beta < math.inf):
        raise ConfigError(f"beta must be a positive finite number, got {beta}")
    k = target.slate_size
    if k > world.num_items:
        raise ConfigError(f"a slate of {k} items does not fit a catalogue of {world.num_items}")
    logits = beta * random_slate_utilities(world, k, samples, seed).double().cpu()
    wanted = torch.tensor([*target.ctr, 1 - sum(target.ctr)], dtype=torch.float64)  # k positions, no click
    free = torch.zeros(k + 1, dtype=torch.float64)  # position logits b_1..b_k, then beta * s0
    scores = torch.cat([logits, logits.new_zeros(len(logits), 1)], dim=1)  # the last column: no click
    best, stalled = math.inf, 0
    for _ in range(20_000):
        rates = torch.softmax(scores + free, dim=1).mean(0)
        error = float((rates.log() - wanted.log()).abs().max())
        if error < 1e-9 or not math.isfinite(error):
            break
        # Slow convergence still shrinks the error; a target the sample cannot reach
        # (some position's utilities all but -inf) stops shrinking it.
        best, stalled = (error, 0) if error < 0.999 * best else (best, stalled + 1)
        if stalled > 200:
            break
        free = free + wanted.log() - rates.log()
        free = free - free[0]
    else:  # out of rounds: measure where the last update landed
        rates = torch.softmax(scores + free, dim=1).mean(0)
        error = float((rates.log() - wanted.log()).abs().max())
    if not error <= 1e-6:  # also catches NaN
        raise ConfigError(
            f"calibration missed the target {target.ctr} at beta {beta} (largest log error {error:.2g}): "
            "the sampled utilities cannot produce these rates; try a lower --world.beta or another target"
        )
    return Calibration(
        beta=beta,
        no_click_utility=float(free[k]) / beta,
        position_logits=tuple(float(v) for v in free[:k]),
        target={**target.to_dict(), "fitted_rates": [round(float(v), 8) for v in rates[:k]]},
    )


def random_slate_utilities(world: World, slate_size: int, samples: int, seed: int) -> torch.Tensor:
    """(samples, k) utilities of k distinct random catalogue items for random shoppers."""
    generator = torch.Generator().manual_seed(seed)
    users = torch.randint(world.num_shoppers, (samples,), generator=generator)
    items = uniform_subsets(samples, world.num_items, slate_size, generator, torch.device("cpu"))
    return world.utilities(users.to(world.device), items.to(world.device))


def simulate_position_ctr(
    world: World, slate_size: int, slates: int = 200_000, seed: int = 0
) -> pd.DataFrame:
    """Per-position click-through of uniformly random slates in the simulator itself.

    Each slate goes to a fresh shopper drawn from the whole population (sessions of
    one step), as a random-policy log samples its visitors.

    Returns:
        One row per position: ``impressions, clicks, ctr, low, high`` (95% Wilson).
    """
    batch = min(slates, 8192)
    config = ShopperConfig(slate_size=slate_size, num_candidates=slate_size, max_steps=1)
    simulator = ShopperSimulator(world, config, batch, shoppers="all", device=world.device, seed=seed)
    simulator.reset()
    # With N = k candidates, any ordering of them is a uniformly random slate of k items.
    slate = torch.arange(slate_size, device=world.device).expand(batch, -1)
    clicks = torch.zeros(slate_size, dtype=torch.long, device=world.device)
    for start in range(0, slates, batch):
        # Every shopper steps (the batch is fixed); the last round counts only what is left.
        clicks += simulator.step(slate, check=False).clicks[: slates - start].sum(0)
    clicks, impressions = clicks.cpu().numpy(), np.full(slate_size, slates)
    low, high = wilson_interval(clicks, impressions)
    ctr = clicks / impressions
    return pd.DataFrame({"impressions": impressions, "clicks": clicks, "ctr": ctr, "low": low, "high": high})


def calibrate_in_simulator(
    world: World,
    config: ShopperConfig,
    target: ClickTarget | None = None,
    shoppers: int = 4096,
    steps: int = 40,
    rounds: int = 30,
    seed: int = 0,
    tolerance: float = 1e-4,
    accept: float = 1e-2,
) -> ShopperConfig:
    """``config`` with the no-click utility and position logits that make uniformly
    random slates, shown through the simulator itself with every dynamic of
    ``config`` on, click at ``target``'s per-position rates (default: the World's
    calibration target).

    Each round runs ``shoppers`` random-policy sessions (autoreset, ``steps`` slates
    each row, one fixed seed so every round sees the same draws) and averages the
    click model's exact per-position click probabilities over every slate shown;
    then it moves ``b_p`` by the log ratio of target to rate relative to position 1,
    and ``beta * s0`` by minus the first position's log ratio. Raking of this kind
    converges in a few rounds when the no-click option holds most of the mass (as
    it does at realistic click rates); it stops when every log ratio is below
    ``tolerance`` or after ``rounds``, and raises ConfigError if one is still above
    ``accept`` then.
    """
    if target is None:
        ctr = world.calibration.target.get("ctr")
        if not ctr:
            raise ConfigError("the World records no click target; pass one")
        target = ClickTarget(ctr=tuple(ctr), source=world.calibration.target.get("source", "World"))
    k = config.slate_size
    wanted = torch.tensor(
        target.ctr[:k] + (target.ctr[-1],) * max(0, k - target.slate_size), dtype=torch.float64
    )
    beta = world.calibration.beta
    logits = torch.tensor(world.calibration.position_bias(k).tolist(), dtype=torch.float64)
    scaled_no_click = beta * world.calibration.no_click_utility
    for _ in range(rounds):
        candidate = replace(
            config, no_click_utility=scaled_no_click / beta, position_logits=tuple(logits.tolist())
        )
        rates = random_policy_click_rates(world, candidate, shoppers, steps, seed).double()
        error = wanted.log() - rates.log()
        if float(error.abs().max()) < tolerance:
            break
        logits = logits + error - error[0]
        scaled_no_click = scaled_no_click - float(error[0])
    else:
        # The simulated paths move with the constants (another click, another state), so
        # with dynamics on the raking settles within that jitter (~1e-3) rather than
        # converging exactly; only a real miss is an error.
        if float(error.abs().max()) >= accept:
            raise ConfigError(
                f"calibration through the simulator did not converge in {rounds} rounds (largest log error "
                f"{float(error.abs().max()):.2g}); the target {target.ctr} may be out of reach of "
                f"choice_model={config.choice_model!r} (cascade and PBM examine position p with probability "
                "exp(min(b_p, 0)), so no position can draw more clicks than the first)"
            )
    return replace(config, no_click_utility=scaled_no_click / beta, position_logits=tuple(logits.tolist()))


def random_policy_click_rates(
    world: World, config: ShopperConfig, shoppers: int = 4096, steps: int = 40, seed: int = 0
) -> torch.Tensor:
    """(k,) mean exact click probability of each position over ``steps`` random slates
    shown to each of ``shoppers`` rows of the simulator (episodes restart as they end),
    after a burn-in of ``max_steps`` slates, so that sessions of every age are
    represented as in a log of a random policy's impressions."""
    simulator, slates_for = _random_policy_run(world, config, shoppers, seed)
    k = config.slate_size
    total = torch.zeros(k, dtype=torch.float64, device=simulator.device)
    for _ in range(steps):
        slates = slates_for()
        utility = simulator.utilities(simulator.candidates.gather(1, slates))
        total += simulator.choice.marginals(utility).sum(0).double()
        simulator.step(slates, check=False)
    return (total / (shoppers * steps)).cpu()


def simulate_session_ctr(
    world: World, config: ShopperConfig, shoppers: int = 4096, steps: int = 100, seed: int = 1
) -> pd.DataFrame:
    """Per-position click-through of uniformly random slates in random-policy sessions
    of the simulator (sampled clicks, not probabilities), with 95% Wilson intervals.

    Returns:
        One row per position: ``impressions, clicks, ctr, low, high``.
    """
    simulator, slates_for = _random_policy_run(world, config, shoppers, seed)
    k = config.slate_size
    clicks = torch.zeros(k, dtype=torch.long, device=simulator.device)
    for _ in range(steps):
        clicks += simulator.step(slates_for(), check=False).clicks.sum(0)
    clicks, impressions = clicks.cpu().numpy(), np.full(k, shoppers * steps)
    low, high = wilson_interval(clicks, impressions)
    return pd.DataFrame(
        {"impressions": impressions, "clicks": clicks, "ctr": clicks / impressions, "low": low, "high": high}
    )


def _random_policy_run(world: World, config: ShopperConfig, shoppers: int, seed: int):
    """A simulator of ``shoppers`` rows after ``max_steps`` random slates (the burn-in),
    and the function that draws its next (B, k) uniformly random slates."""
    simulator = ShopperSimulator(world, config, shoppers, shoppers="all", device=world.device, seed=seed)
    simulator.reset()
    generator = torch.Generator(device=simulator.device).manual_seed(seed)
    n, k = config.num_candidates, config.slate_size

    def slates_for() -> torch.Tensor:
        return torch.rand((shoppers, n), generator=generator, device=simulator.device).argsort(1)[:, :k]

    for _ in range(config.max_steps):
        simulator.step(slates_for(), check=False)
    return simulator, slates_for
