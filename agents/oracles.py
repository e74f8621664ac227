"""Upper bounds that read the simulator's true state: the myopic and the planning oracle.

No real system sees what these agents see; they exist to say how much there is to
learn. Both take the simulator of the environment they act in (:meth:`Agent.attach`).

- ``myopic-oracle`` (alias ``oracle``) shows, at every step, the slate with the
  largest expected immediate reward, from the true utilities of the current state
  (drift, boredom and all), purchase probabilities, prices and money left.
- ``planning-oracle`` looks ahead: it scores a few candidate slates by simulated
  rollouts from a copy of the true state and shows the best. It is the reference
  that learning agents are measured against.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from shopgym.agents.base import Agent, Observation
from shopgym.simulator.choice import attraction, cascade_probabilities
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.shoppers import ShopperSimulator


def myopic_slates(simulator: ShopperSimulator, iterations: int = 20) -> torch.Tensor:
    """(B, k) candidate indices of the slates of largest expected immediate reward.

    With r_j the expected reward of a click on candidate j (click reward plus the
    purchase probability times the purchase's reward), exact for two click models:

    - MNL: the expected reward of a slate is the ratio
      ``sum_p v_p w_j r_j / (w_0 + sum_p v_p w_j)`` with ``w_j = exp(beta s_j)``,
      ``v_p = exp(b_p)``, ``w_0 = exp(beta s_0)``. Dinkelbach's method finds its
      maximum: for the current value lam, the slate maximising
      ``sum_p v_p w_j (r_j - lam)`` pairs the k largest ``w_j (r_j - lam)`` with the
      positions in decreasing v (rearrangement inequality); its value is the next lam.
      The values increase and stop changing after a few rounds.
    - PBM: ``sum_p e_p a_j r_j`` is linear, so the k largest ``a_j r_j`` go to the
      positions in decreasing examination e_p.

    For the cascade model (the value of a position depends on the items above it)
    it returns the best, by exact expected value, of three orderings: by a_j r_j,
    by r_j and by a_j; that is a heuristic, not the maximum.
    """
    k = simulator.config.slate_size
    utility, value = simulator.click_values(simulator.candidates)  # (B, N) each
    bias = simulator.position_bias
    model = simulator.config.choice_model
    positions = torch.argsort(bias, descending=True)  # best position first
    if model == "mnl":
        log_weight = simulator.beta * utility
        # Scale the weights per row for stability; the ratio does not change.
        shift = log_weight.amax(1, keepdim=True)
        weight = torch.exp(log_weight - shift)
        no_click = torch.exp(simulator.beta * simulator.no_click_utility - shift)  # (B, 1)
        v = bias.exp()
        lam = torch.zeros_like(no_click)
        for _ in range(iterations):
            best = torch.topk(weight * (value - lam), k, dim=1).indices  # (B, k) best first
            w, r = weight.gather(1, best), value.gather(1, best)
            lam_next = (v[positions] * w * r).sum(1, keepdim=True) / (
                no_click + (v[positions] * w).sum(1, keepdim=True)
            )
            if bool((lam_next <= lam + 1e-7).all()):
                break
            lam = torch.maximum(lam, lam_next)
        return _place(best, positions)
    score = attraction(utility, simulator.beta, simulator.no_click_utility) * value
    if model == "pbm":
        return _place(torch.topk(score, k, dim=1).indices, positions)
    orderings = [
        torch.topk(key, k, dim=1).indices
        for key in (score, value, attraction(utility, simulator.beta, simulator.no_click_utility))
    ]
    values = torch.stack(
        [_cascade_value(simulator, utility.gather(1, o), value.gather(1, o)) for o in orderings], dim=1
    )
    pick = values.argmax(1)
    return torch.stack(orderings, dim=1)[torch.arange(len(pick), device=pick.device), pick]


def expected_reward(simulator: ShopperSimulator, slates: torch.Tensor) -> torch.Tensor:
    """(B,) expected immediate reward of (B, k) slates in the simulator's current state."""
    utility, value = simulator.click_values(simulator.candidates.gather(1, slates))
    return (simulator.choice.marginals(utility) * value).sum(1)


def _place(ranked: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Put (B, k) items ranked best first into the positions ordered best first."""
    slate = torch.empty_like(ranked)
    slate[:, positions] = ranked
    return slate


def _cascade_value(simulator: ShopperSimulator, utility: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    first_click = cascade_probabilities(
        utility, simulator.beta, simulator.no_click_utility, simulator.position_bias
    )
    return (first_click[:, :-1] * value).sum(1)


def _simulator_of(env: Any) -> ShopperSimulator:
    simulator = getattr(getattr(env, "unwrapped", env), "simulator", None)
    if not isinstance(simulator, ShopperSimulator):
        raise ConfigError(
            "oracle agents read the true state: they need a shopgym shopper environment "
            f"(its native vector env), got {type(env).__name__}"
        )
    return simulator


class MyopicOracleAgent(Agent):
    """Upper bound of one-step recommenders: the exact best slate for the immediate
    expected reward, from the true current state (see :func:`myopic_slates`)."""

    name = "myopic-oracle"
    needs_oracle = True

    def attach(self, env: Any) -> None:
        self.simulator = _simulator_of(env)

    def act(self, observation: Observation, info: dict[str, Any]) -> np.ndarray:
        return myopic_slates(self._attached()).cpu().numpy()

    def _attached(self) -> ShopperSimulator:
        if getattr(self, "simulator", None) is None:
            raise ConfigError(f"{self.name} must be attached to its environment first (agent.attach(env))")
        return self.simulator


class OracleAgent(MyopicOracleAgent):
    """``oracle``: the name of :class:`MyopicOracleAgent` kept for earlier runs."""

    name = "oracle"


class PlanningOracleAgent(MyopicOracleAgent):
    """Upper bound that plans: a rollout policy over the myopic oracle.

    At every step, for each shopper, it takes ``num_slates`` candidate slates (the
    myopic best, and others drawn by Gumbel-perturbing the myopic slate scores),
    simulates each ``rollouts`` times for ``horizon`` steps from a copy of the true
    state (first the candidate, then the myopic oracle), summing the expected reward
    of each simulated slate, and shows the candidate of the highest mean return if
    its gain over the myopic slate is clear (``margin`` standard errors). Rolling out
    a base policy improves on it in expectation (policy improvement); the margin
    keeps the noise of a few rollouts from undoing that.

    Its rollouts use their own random streams, seeded from the agent's seed, so the
    environment's streams are untouched. Cost per step: about
    ``num_slates * rollouts * horizon`` simulator steps per shopper.

    Args:
        num_slates: candidate slates per decision (>= 1; 1 is the myopic oracle).
        rollouts: simulated futures per candidate.
        horizon: steps per rollout, the candidate's included.
        temperature: Gumbel noise scale on the log myopic scores for the alternatives.
        margin: standard errors by which an alternative's simulated gain over the
            myopic slate must exceed 0 for the planner to show it.
    """

    name = "planning-oracle"

    def __init__(
        self,
        observation_space,
        action_space,
        seed: int = 0,
        device: str | torch.device = "auto",
        num_slates: int = 6,
        rollouts: int = 8,
        horizon: int = 8,
        temperature: float = 1.0,
        margin: float = 1.0,
    ):
        super().__init__(observation_space, action_space, seed=seed, device=device)
        if min(num_slates, rollouts, horizon) < 1 or not temperature >= 0:
            raise ConfigError(
                "planning-oracle: num_slates, rollouts and horizon must be >= 1, temperature >= 0"
            )
        self.num_slates, self.rollouts, self.horizon, self.temperature = (
            num_slates,
            rollouts,
            horizon,
            temperature,
        )
        self.margin = margin
        self._planner: ShopperSimulator | None = None
        self._decisions = 0

    def attach(self, env: Any) -> None:
        super().attach(env)
        simulator = self.simulator
        rows = simulator.num_shoppers * self.rollouts
        self._planner = ShopperSimulator(
            simulator.world, simulator.config, rows, simulator.shoppers, simulator.device, seed=self.seed
        )
        self._generator = torch.Generator(device=simulator.device).manual_seed(self.seed)

    def act(self, observation: Observation, info: dict[str, Any]) -> np.ndarray:
        simulator = self._attached()
        return self.plan(simulator).cpu().numpy()

    def candidate_slates(self, simulator: ShopperSimulator) -> torch.Tensor:
        """(B, C, k) candidate slates, the myopic best first."""
        best = myopic_slates(simulator)
        if self.num_slates == 1:
            return best[:, None]
        k = simulator.config.slate_size
        utility, value = simulator.click_values(simulator.candidates)
        log_score = simulator.beta * utility + torch.log(value.clamp(min=1e-6))
        b, n = log_score.shape
        uniform = torch.rand((b, self.num_slates - 1, n), generator=self._generator, device=simulator.device)
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1 - 1e-7)))
        noisy = log_score[:, None] + self.temperature * gumbel
        ranked = torch.topk(noisy, k, dim=2).indices  # (B, C-1, k) best first
        positions = torch.argsort(simulator.position_bias, descending=True)
        others = torch.empty_like(ranked)
        others[:, :, positions] = ranked
        return torch.cat([best[:, None], others], dim=1)

    def plan(self, simulator: ShopperSimulator) -> torch.Tensor:
        """(B, k) the candidate slate of the highest simulated return for each shopper.

        Every candidate is rolled out from the same snapshot with the same seed, so
        rollout r of every candidate sees the same random draws (common random
        numbers): the comparison between candidates is not drowned in the noise of
        the clicks, only their difference is left."""
        planner = self._planner
        if planner is None or planner.num_shoppers != simulator.num_shoppers * self.rollouts:
            raise ConfigError("planning-oracle: attach it to the environment it acts in")
        candidates = self.candidate_slates(simulator)  # (B, C, k)
        b, c, _ = candidates.shape
        if c == 1:
            return candidates[:, 0]
        snapshot = simulator.snapshot()
        self._decisions += 1
        returns = torch.empty((b, c, self.rollouts), device=simulator.device)
        for index in range(c):
            planner.load_rows(snapshot, self.rollouts)
            planner.seed(self.seed * 1_000_003 + self._decisions)
            slates = candidates[:, index].repeat_interleave(self.rollouts, dim=0)
            total = torch.zeros(planner.num_shoppers, device=simulator.device)
            alive = torch.ones(planner.num_shoppers, dtype=torch.bool, device=simulator.device)
            for t in range(self.horizon):
                if t > 0:
                    slates = myopic_slates(planner)
                # The expected reward of the slate in the sampled state, not the sampled
                # reward: the same mean with much less noise.
                total = total + expected_reward(planner, slates) * alive
                alive = alive & ~planner.step(slates, check=False).done
            returns[:, index] = total.reshape(b, self.rollouts)
        # Leave the myopic slate only for a clear gain: the paired difference of the
        # rollouts must exceed `margin` standard errors, so that the noise of a few
        # rollouts cannot make the planner worse than the policy it improves on.
        difference = returns - returns[:, :1]
        mean = difference.mean(2)
        error = difference.std(2) / self.rollouts**0.5 if self.rollouts > 1 else torch.zeros_like(mean)
        gain = torch.where(mean - self.margin * error > 0, mean, 0.0)
        choice = gain.argmax(1)
        return candidates[torch.arange(b, device=choice.device), choice]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_slates": self.num_slates,
            "rollouts": self.rollouts,
            "horizon": self.horizon,
            "temperature": self.temperature,
            "margin": self.margin,
        }
