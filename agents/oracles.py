"""Upper bounds that read the simulator's true state: the myopic and the planning oracle.

No real system sees what these agents see; they exist to say how much there is to
learn. Both take the simulator of the environment they act in (:meth:`Agent.attach`).

- ``myopic-oracle`` (alias ``oracle``) shows, at every step, the slate with the
  largest expected immediate reward, from the true utilities of the current state
  (drift, boredom and all), purchase probabilities, prices and money left.
- ``planning-oracle`` looks ahead: it simulates a family of policies (the myopic one,
  and ones that also value what a click leaves behind) over whole episodes and
  follows the best, optionally refining each step by rollouts from a copy of the
  true state. It is the reference
  that learning agents are measured against.
"""

from __future__ import annotations

from typing import Any

import torch

from shopgym.agents.base import Agent, Observation
from shopgym.simulator.choice import attraction, cascade_probabilities
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.shoppers import ShopperSimulator


def myopic_slates(
    simulator: ShopperSimulator, experience_weight: float = 0.0, iterations: int = 20
) -> torch.Tensor:
    """(B, k) candidate indices of the slates of largest expected immediate reward.

    With r_j the expected reward of a click on candidate j (click reward plus the
    purchase probability times the purchase's reward, plus ``experience_weight``
    times the click's experience x_j: a value the planner puts on what the click
    leaves behind), exact for two click models:

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
    if experience_weight:
        value = value + experience_weight * simulator.experience(simulator.candidates, utility)
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
        lam = None  # Dinkelbach needs a start at or below the maximum: a slate's value
        for _ in range(iterations):
            start = torch.zeros_like(no_click) if lam is None else lam
            best = torch.topk(weight * (value - start), k, dim=1).indices  # (B, k) best first
            w, r = weight.gather(1, best), value.gather(1, best)
            lam_next = (v[positions] * w * r).sum(1, keepdim=True) / (
                no_click + (v[positions] * w).sum(1, keepdim=True)
            )
            if lam is not None and bool((lam_next <= lam + 1e-7).all()):
                break
            lam = lam_next if lam is None else torch.maximum(lam, lam_next)
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


# Base-policy choices of the planning oracle, per (World hash, config, device, family,
# rows, seed): the same environment is tuned once per process, not once per seed.
_TUNED: dict[tuple, dict[float, float]] = {}


def _simulator_of(env: Any) -> ShopperSimulator:
    simulator = getattr(env, "simulator", None) or getattr(getattr(env, "unwrapped", env), "simulator", None)
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

    def act(self, observation: Observation) -> torch.Tensor:
        return myopic_slates(self._attached())

    def _attached(self) -> ShopperSimulator:
        if getattr(self, "simulator", None) is None:
            raise ConfigError(f"{self.name} must be attached to its environment first (agent.attach(env))")
        return self.simulator


class OracleAgent(MyopicOracleAgent):
    """``oracle``: the name of :class:`MyopicOracleAgent` kept for earlier runs."""

    name = "oracle"


class PlanningOracleAgent(MyopicOracleAgent):
    """Upper bound that plans: a rollout policy over the best of a family of policies.

    The family: for each weight lam in ``experience_weights``, the policy pi_lam that
    shows the exact best slate for the expected immediate reward plus lam times the
    expected experience of the click (:func:`myopic_slates`; lam = 0 is the myopic
    oracle). The experience is what refills the time budget and makes a session
    satisfying, so a positive lam gives up clicks now for longer, better sessions.

    Planning happens twice:

    1. When attached, it simulates every pi_lam over whole episodes of
       ``tuning_rows`` train shoppers (the same random draws for each, from
       ``tuning_seed``) and keeps the best as its base policy. The choice depends
       on the environment only, so it is made once per World, dynamics and device
       in a process, and every evaluation seed follows the same base policy.
    2. With ``rollouts`` > 0, at every step and for each shopper, it also rolls out
       each policy's slate from a copy of the true state, ``rollouts`` times for
       ``horizon`` steps (the candidate slate, then the base policy), summing the
       expected reward of each simulated slate, and shows the candidate of the
       highest mean return if its gain over the base policy's slate is clear
       (``margin`` standard errors). Rolling out a base policy improves on it in
       expectation (policy improvement). Off by default: on Shopper-v1 a few
       rollouts per step were too noisy to add to the base policy (docs/dynamics.md),
       at ``len(experience_weights) * rollouts * horizon`` simulator steps per
       shopper and step.

    The family includes the myopic oracle, so the planner does at least as well as
    it up to the noise of the choice of the base. Its simulations use their own
    random streams, seeded from the agent's seed, so the environment's are untouched.

    Args:
        experience_weights: lam of each policy in the family (>= 0); 0 is always added.
        rollouts: simulated futures per candidate slate at every step (0: none, follow
            the base policy).
        horizon: steps per rollout, the candidate's included.
        margin: standard errors by which a candidate's simulated gain over the base
            policy's slate must exceed 0 for the planner to show it.
        tuning_rows: train shoppers simulated per policy to choose the base policy.
        tuning_seed: seed of those simulations.
    """

    name = "planning-oracle"

    def __init__(
        self,
        observation_space,
        action_space,
        seed: int = 0,
        device: str | torch.device = "auto",
        experience_weights: tuple[float, ...] = (0.25, 0.5, 1.0),
        rollouts: int = 0,
        horizon: int = 10,
        margin: float = 1.0,
        tuning_rows: int = 1024,
        tuning_seed: int = 0,
    ):
        super().__init__(observation_space, action_space, seed=seed, device=device)
        weights = tuple(float(w) for w in experience_weights)
        if (
            min(horizon, tuning_rows) < 1
            or rollouts < 0
            or not margin >= 0
            or not all(0 <= w < float("inf") for w in weights)
        ):
            raise ConfigError(
                "planning-oracle: horizon and tuning_rows must be >= 1, rollouts and margin >= 0, "
                f"experience_weights finite and >= 0; got {weights}"
            )
        self.experience_weights = (0.0, *sorted(set(weights) - {0.0}))  # the myopic policy first
        self.rollouts, self.horizon, self.margin = rollouts, horizon, margin
        self.tuning_rows, self.tuning_seed = tuning_rows, tuning_seed
        self.base_weight: float | None = None
        self.tuning_returns: dict[float, float] = {}
        self._planner: ShopperSimulator | None = None
        self._decisions = 0

    def attach(self, env: Any) -> None:
        super().attach(env)
        simulator = self.simulator
        key = (
            simulator.world.hash,
            simulator.config,
            str(simulator.device),
            self.experience_weights,
            self.tuning_rows,
            self.tuning_seed,
        )
        if len(self.experience_weights) == 1:
            _TUNED[key] = {}  # nothing to choose from
        elif key not in _TUNED:
            _TUNED[key] = self._simulate_policies(simulator)
        self.tuning_returns = dict(_TUNED[key])
        self.base_weight = max(self.tuning_returns, key=self.tuning_returns.__getitem__, default=0.0)
        self._decisions = 0  # the same seed plans the same rollouts in every evaluation
        if self.rollouts:
            rows = simulator.num_shoppers * self.rollouts
            self._planner = ShopperSimulator(
                simulator.world, simulator.config, rows, simulator.shoppers, simulator.device, seed=self.seed
            )

    def _simulate_policies(self, simulator: ShopperSimulator) -> dict[float, float]:
        """Mean episode return of each policy of the family on train shoppers."""
        # A salt, so that the tuning's streams are not those of an evaluation seed.
        seed = self.tuning_seed * 1_000_003 + 77_777
        tuner = ShopperSimulator(
            simulator.world, simulator.config, self.tuning_rows, "train", simulator.device, seed=seed
        )
        returns = {}
        for weight in self.experience_weights:
            tuner.reset(seed=seed)
            total = torch.zeros(self.tuning_rows, device=simulator.device)
            finished = torch.zeros(self.tuning_rows, dtype=torch.bool, device=simulator.device)
            while not bool(finished.all()):
                outcome = tuner.step(myopic_slates(tuner, weight), check=False)
                total = total + outcome.reward * ~finished
                finished = finished | outcome.done
            returns[weight] = float(total.mean())
        return returns

    def act(self, observation: Observation) -> torch.Tensor:
        return self.plan(self._attached())

    def plan(self, simulator: ShopperSimulator) -> torch.Tensor:
        """(B, k) for each shopper the candidate slate of the highest simulated return.

        Every candidate is rolled out from the same snapshot with the same seed, so
        rollout r of every candidate sees the same random draws (common random
        numbers): the comparison between candidates is not drowned in the noise of
        the clicks, only their difference is left."""
        if self.base_weight is None:
            raise ConfigError("planning-oracle: attach it to the environment it acts in")
        if not self.rollouts:
            return myopic_slates(simulator, self.base_weight)
        planner = self._planner
        if planner is None or planner.num_shoppers != simulator.num_shoppers * self.rollouts:
            raise ConfigError("planning-oracle: attach it to the environment it acts in")
        weights = self.experience_weights
        base = weights.index(self.base_weight)
        candidates = torch.stack([myopic_slates(simulator, weight) for weight in weights], 1)  # (B, C, k)
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
                    slates = myopic_slates(planner, self.base_weight)
                # The expected reward of the slate in the sampled state, not the sampled
                # reward: the same mean with much less noise.
                total = total + expected_reward(planner, slates) * alive
                alive = alive & ~planner.step(slates, check=False).done
                if not bool(alive.any()):
                    break
            returns[:, index] = total.reshape(b, self.rollouts)
        # Leave the base policy only for a clear gain: the paired difference of the
        # rollouts must exceed `margin` standard errors, so that the noise of a few
        # rollouts cannot make the planner worse than the policy it improves on.
        difference = returns - returns[:, base : base + 1]
        mean = difference.mean(2)
        error = difference.std(2) / self.rollouts**0.5 if self.rollouts > 1 else torch.zeros_like(mean)
        gain = torch.where(mean - self.margin * error > 0, mean, 0.0)
        gain[:, base] = 1e-9  # the base slate wins ties
        choice = gain.argmax(1)
        return candidates[torch.arange(b, device=choice.device), choice]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "experience_weights": list(self.experience_weights),
            "rollouts": self.rollouts,
            "horizon": self.horizon,
            "margin": self.margin,
            "tuning_rows": self.tuning_rows,
            "tuning_seed": self.tuning_seed,
            "base_experience_weight": self.base_weight,
            "tuning_returns": {str(w): r for w, r in self.tuning_returns.items()},
        }
