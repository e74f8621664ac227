"""Bandits that learn online from the shoppers' clicks, batched over shoppers in torch.

Every agent here sets ``learns_online``: the evaluation calls ``observe`` after every
step with the whole batch of B transitions, and the update is one batched tensor
operation (no Python loop over shoppers, slate positions or items). Each learns
from the test shoppers it is evaluated on; none trains before evaluation.

Two families:

- per-item bandits (:class:`ItemBandit`: :class:`EpsilonGreedyAgent`,
  :class:`UCB1Agent`, :class:`ThompsonSamplingAgent`, :class:`CascadingUCBAgent`)
  keep two (M,) counts over the catalogue, a signal summed per item and the number
  of times the item counted as shown, and score each candidate by its item's counts;
- linear bandits (:class:`LinearBandit`: :class:`LinUCBAgent`,
  :class:`LinearThompsonAgent`) fit one ridge regression, shared by all items and
  shoppers, of the per-impression reward on the candidate's item features, so that
  what they learn of one item carries over to items with similar features.

All show the k candidates with the highest score, best first (:func:`top_k`, ties
broken at random), and treat the B shoppers of a batch as B independent draws of
the same bandit: a batch's feedback is applied at once, after the batch acted.

Credit. The step reward (``engagement``: a click plus a purchase) belongs to the
slate; :func:`credited_reward` gives it to the clicked positions, split evenly
when several were clicked (the MNL and cascade click models click at most once per
slate, so the clicked item gets the whole reward; the position-based model may
click several). A reward without a click (none in shopgym's rewards) credits
nothing. Each agent's docstring says which signal it learns from.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, ClassVar

import torch
from gymnasium import spaces

from shopgym.agents.base import Agent, Observation, Transition, batch_of, check_at_least, random_slates, top_k
from shopgym.envs.spaces import SlateSpace
from shopgym.simulator.errors import ConfigError

_ONLINE = "online, during evaluation, from the test shoppers' clicks"


def credited_reward(transition: Transition) -> torch.Tensor:
    """(B, k) float64: each row's step reward split evenly over its clicked positions
    (zero elsewhere, and everywhere in a row without a click)."""
    clicks = transition.clicks.double()
    per_click = transition.reward.double() / clicks.sum(1).clamp(min=1.0)
    return per_click[:, None] * clicks


def first_click_examined(clicks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The cascade model's reading of a slate's (B, k) bool clicks: the shopper examined
    every position up to and including the first click (all k when nothing was
    clicked), and clicked only there. Returns (B, k) bool ``examined`` and (B, k) bool
    ``first_click``."""
    # Positions strictly after the first click have a click somewhere before them.
    clicked_before = (clicks.long().cumsum(1) - clicks.long()) > 0
    examined = ~clicked_before
    return examined, clicks & examined


def sample_beta(alpha: torch.Tensor, beta: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One Beta(alpha, beta) draw per entry of ``alpha`` and ``beta`` (positive float
    tensors of one shape, on ``generator``'s device), as X / (X + Y) of independent
    Gamma(alpha) and Gamma(beta) draws; the result has their shape.

    ``torch.distributions`` cannot take a generator, so its Beta would draw from the
    global stream; ``torch._standard_gamma`` (the kernel behind it) can."""
    x = torch._standard_gamma(alpha, generator=generator)
    y = torch._standard_gamma(beta, generator=generator)
    # Both draws underflow to 0 for tiny shapes; their mean is the sensible answer there.
    total = x + y
    return torch.where(total > 0, x / total.clamp(min=torch.finfo(total.dtype).tiny), alpha / (alpha + beta))


class ItemBandit(Agent):
    """Base of the non-contextual bandits over catalogue items.

    It keeps, per catalogue item, ``reward_sum`` (the signal credited to it: what
    the subclass's :meth:`credit` says) and ``impressions`` (how often it counted as
    shown), and ``slates`` (how many slates it has observed). A subclass scores the
    candidates from these counts (:meth:`scores`); :meth:`act` shows the k best.

    Args:
        observation_space: one shopper's observation space; it must have
            ``candidate_ids`` (catalogue IDs, as shopgym's shopper environments do).
        action_space: one shopper's :class:`SlateSpace`.
        seed: seeds the agent's generator (tie breaks, exploration, samples).
        device: where the counts live and the scores are computed.

    Attributes:
        reward_sum: (M,) float64, the signal summed per item.
        impressions: (M,) float64, the times each item counted as shown.
        slates: () float64, the slates observed (B per batch).
    """

    learns_online = True
    # What ``reward_sum`` sums, in words (describe() reports it).
    signal: ClassVar[str] = "the step reward, split over the clicked positions"

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
    ):
        super().__init__(observation_space, action_space, seed, device)
        if self.num_items is None:
            raise ConfigError(f"{type(self).__name__} needs candidate_ids that are catalogue IDs")
        self.reward_sum = torch.zeros(self.num_items, dtype=torch.float64, device=self.device)
        self.impressions = torch.zeros(self.num_items, dtype=torch.float64, device=self.device)
        self.slates = torch.zeros((), dtype=torch.float64, device=self.device)

    @abstractmethod
    def scores(self, candidate_ids: torch.Tensor) -> torch.Tensor:
        """(B, N) catalogue IDs on ``self.device`` -> (B, N) scores, higher is better."""

    def credit(self, transition: Transition) -> tuple[torch.Tensor, torch.Tensor]:
        """What one batch teaches about the (B, k) items shown: (B, k) float64 signal
        and (B, k) float64 impression weight. By default the credited step reward
        (:func:`credited_reward`) and one impression per position."""
        reward = credited_reward(transition)
        return reward, torch.ones_like(reward)

    def act(self, observation: Observation) -> torch.Tensor:
        candidates = observation["candidate_ids"]
        slates = top_k(self.scores(candidates.to(self.device)), self.slate_size, self.generator)
        return slates.to(candidates.device)

    def observe(self, transition: Transition) -> None:
        shown = transition.observation["candidate_ids"].gather(1, transition.action).to(self.device)
        signal, weight = (part.to(self.device, torch.float64) for part in self.credit(transition))
        # index_add sums repeated items (one item shown to several shoppers in a batch).
        self.reward_sum.index_add_(0, shown.reshape(-1), signal.reshape(-1))
        self.impressions.index_add_(0, shown.reshape(-1), weight.reshape(-1))
        self.slates += len(shown)

    def mean_reward(self) -> torch.Tensor:
        """(M,) ``reward_sum / impressions``, 0 for items never shown."""
        return self.reward_sum / self.impressions.clamp(min=1e-12) * (self.impressions > 0)

    def settings(self) -> dict[str, Any]:
        """The hyperparameters, for :meth:`describe`."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.settings(),
            "signal": self.signal,
            "training": _ONLINE,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "reward_sum": self.reward_sum.cpu(),
            "impressions": self.impressions.cpu(),
            "slates": self.slates.cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("reward_sum", "impressions"):
            if state[key].shape != (self.num_items,):
                raise ConfigError(
                    f"{self.name}: {key} has shape {tuple(state[key].shape)}, not ({self.num_items},)"
                )
        self.reward_sum = state["reward_sum"].to(self.device, torch.float64).clone()
        self.impressions = state["impressions"].to(self.device, torch.float64).clone()
        self.slates = state["slates"].to(self.device, torch.float64).clone()


class EpsilonGreedyAgent(ItemBandit):
    """Non-contextual ε-greedy bandit over catalogue items, learning online.

    It estimates each item's mean reward per impression (the step reward, credited
    to the clicked position: :func:`credited_reward`), shows the k candidates with
    the highest estimates (best first), and with probability ``epsilon`` per shopper
    and step a uniformly random slate instead. Estimates are shrunk towards the
    global mean reward per impression with the weight of ``prior_impressions``
    impressions, so items never shown start at the average.

    Args:
        observation_space, action_space, seed, device: as :class:`ItemBandit`.
        epsilon: exploration probability, in [0, 1].
        prior_impressions: strength of the shrinkage (> 0), in impressions.
    """

    name = "epsilon-greedy"

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        epsilon: float = 0.1,
        prior_impressions: float = 1.0,
    ):
        super().__init__(observation_space, action_space, seed, device)
        if not 0 <= epsilon <= 1:
            raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
        if not prior_impressions > 0:
            raise ConfigError(f"prior_impressions must be > 0, got {prior_impressions}")
        self.epsilon = epsilon
        self.prior_impressions = prior_impressions

    def estimates(self) -> torch.Tensor:
        """(M,) shrunk mean reward per impression of every catalogue item."""
        global_mean = self.reward_sum.sum() / self.impressions.sum().clamp(min=1.0)
        return (self.reward_sum + self.prior_impressions * global_mean) / (
            self.impressions + self.prior_impressions
        )

    def scores(self, candidate_ids: torch.Tensor) -> torch.Tensor:
        return self.estimates()[candidate_ids]

    def act(self, observation: Observation) -> torch.Tensor:
        rows, device = batch_of(observation)
        greedy = super().act(observation).to(self.device)
        explore = torch.rand(rows, generator=self.generator, device=self.device) < self.epsilon
        exploring = random_slates(rows, self.num_candidates, self.slate_size, self.generator)
        return torch.where(explore[:, None], exploring, greedy).to(device)

    def settings(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "prior_impressions": self.prior_impressions}


class UCB1Agent(ItemBandit):
    """UCB1 (Auer et al. 2002) over catalogue items, learning online.

    Each item's index is its mean reward per impression (the step reward credited
    to the clicked position, :func:`credited_reward`) plus an exploration bonus::

        index_i = reward_sum_i / n_i + exploration * sqrt(2 ln t / n_i)

    with n_i the item's impressions and t all impressions so far (every slate
    position is one pull of its item's arm). Items never shown have an infinite
    index, so each candidate is tried once before any is exploited; the k candidates
    with the highest index are shown, best first. UCB1's bound assumes rewards in
    [0, 1]; the engagement reward of an impression is in [0, 2], and its mean is a
    fraction of a click, which is why ``exploration`` scales the bonus.

    Args:
        observation_space, action_space, seed, device: as :class:`ItemBandit`.
        exploration: the bonus's scale (>= 0; 1 is UCB1's).
    """

    name = "ucb1"

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        exploration: float = 0.2,
    ):
        super().__init__(observation_space, action_space, seed, device)
        check_at_least(0, exploration=exploration)
        self.exploration = exploration

    def index(self) -> torch.Tensor:
        """(M,) the upper confidence index of every catalogue item (inf if never shown)."""
        # On the device: a host read of t would wait on the accelerator every step.
        log_t = self.impressions.sum().clamp(min=1.0).log()
        bonus = self.exploration * torch.sqrt(2 * log_t / self.impressions)  # inf where n_i = 0
        return torch.where(self.impressions > 0, self.mean_reward() + bonus, math.inf)

    def scores(self, candidate_ids: torch.Tensor) -> torch.Tensor:
        return self.index()[candidate_ids]

    def settings(self) -> dict[str, Any]:
        return {"exploration": self.exploration}


class ThompsonSamplingAgent(ItemBandit):
    """Beta–Bernoulli Thompson sampling over catalogue items, learning online.

    The signal is the click: each impression of item i is a Bernoulli trial with
    click probability p_i, whose posterior is ``Beta(prior_clicks + clicks_i,
    prior_skips + impressions_i - clicks_i)`` (``reward_sum`` counts the clicks). At
    each step every shopper draws its own p_i for each of its candidates, and is
    shown the k candidates with the highest draws, best first. Purchases and the
    slate's position bias are not modelled (the click probability is the item's
    average over the positions it was shown in).

    Args:
        observation_space, action_space, seed, device: as :class:`ItemBandit`.
        prior_clicks: the prior's pseudo-clicks (> 0).
        prior_skips: the prior's pseudo-impressions without a click (> 0).
    """

    name = "thompson"
    signal = "clicks (a Bernoulli trial per impression)"

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        prior_clicks: float = 1.0,
        prior_skips: float = 1.0,
    ):
        super().__init__(observation_space, action_space, seed, device)
        if not (prior_clicks > 0 and prior_skips > 0):
            raise ConfigError(f"the Beta prior must be positive, got ({prior_clicks}, {prior_skips})")
        self.prior_clicks = prior_clicks
        self.prior_skips = prior_skips

    def posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(M,) and (M,): the Beta posterior's two parameters for every catalogue item."""
        return self.prior_clicks + self.reward_sum, self.prior_skips + self.impressions - self.reward_sum

    def credit(self, transition: Transition) -> tuple[torch.Tensor, torch.Tensor]:
        clicks = transition.clicks.double()
        return clicks, torch.ones_like(clicks)

    def scores(self, candidate_ids: torch.Tensor) -> torch.Tensor:
        alpha, beta = self.posterior()
        return sample_beta(alpha[candidate_ids], beta[candidate_ids], self.generator)

    def settings(self) -> dict[str, Any]:
        return {"prior_clicks": self.prior_clicks, "prior_skips": self.prior_skips}


class CascadingUCBAgent(ItemBandit):
    """CascadeUCB1 (Kveton et al. 2015, "Cascading bandits"), learning online.

    It assumes the cascade click model: the shopper scans the slate from the top,
    clicks the first item that attracts them (item i with probability w_i,
    independently of the others and of the position) and stops. So a slate's
    positions up to and including the first click were examined (all k when nothing
    was clicked), the clicked one with a click and the others without, and the
    positions after the first click tell nothing: ``impressions`` counts examined
    positions only, ``reward_sum`` the clicks. Each item's index is::

        index_i = w_i + exploration * sqrt(1.5 ln t / n_i)

    with w_i = clicks / examinations, n_i its examinations and t the slates observed;
    items never examined have an infinite index. The k candidates with the highest
    index are shown, best first (the order that maximises the probability of a
    click under the cascade model). The signal is the click, not the purchase.
    shopgym's default click model is the multinomial logit with position bias
    (``choice_model="cascade"`` gives the one assumed here).

    Args:
        observation_space, action_space, seed, device: as :class:`ItemBandit`.
        exploration: the bonus's scale (>= 0; 1 is CascadeUCB1's).
    """

    name = "cascade-ucb"
    signal = "clicks, over the positions examined (up to the first click)"

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        exploration: float = 0.2,
    ):
        super().__init__(observation_space, action_space, seed, device)
        check_at_least(0, exploration=exploration)
        self.exploration = exploration

    def credit(self, transition: Transition) -> tuple[torch.Tensor, torch.Tensor]:
        examined, first_click = first_click_examined(transition.clicks)
        return first_click.double(), examined.double()

    def index(self) -> torch.Tensor:
        """(M,) the upper confidence index of every item's attraction (inf if never examined)."""
        log_t = self.slates.clamp(min=1.0).log()
        bonus = self.exploration * torch.sqrt(1.5 * log_t / self.impressions)
        return torch.where(self.impressions > 0, self.mean_reward() + bonus, math.inf)

    def scores(self, candidate_ids: torch.Tensor) -> torch.Tensor:
        return self.index()[candidate_ids]

    def settings(self) -> dict[str, Any]:
        return {"exploration": self.exploration, "click_model": "cascade"}


class LinearBandit(Agent):
    """Base of the linear bandits: one ridge regression, shared by every item and
    shopper, of an impression's reward on its item's features.

    Each impression (a slate position) is one example: the context x is the shown
    candidate's ``features_key`` row with a constant 1 appended (d = F + 1), the
    target y its credited step reward (:func:`credited_reward`). The model keeps::

        A = ridge * I + sum x x^T      (d, d)
        b = sum y x                    (d,)

    and, after each batch, theta = A^-1 b and A^-1 from one Cholesky factorisation
    of A (a solve per batch, not B·k Sherman–Morrison updates). A subclass scores
    every candidate from theta and A^-1 (:meth:`scores`); :meth:`act` shows the k best.

    Args:
        observation_space: one shopper's observation space, with ``features_key``.
        action_space: one shopper's :class:`SlateSpace`.
        seed: seeds the agent's generator (tie breaks, samples).
        device: where the model lives and the scores are computed.
        ridge: the ridge penalty lambda (> 0), also the prior precision of theta.
        features_key: the (N, F) observation entry of the candidates' features
            (``"doc_features"`` for InterestEvolution).

    Attributes:
        gram: (d, d) float64, A.
        target: (d,) float64, b.
        theta: (d,) float64, the ridge estimate A^-1 b.
        covariance: (d, d) float64, A^-1.
        cholesky: (d, d) float64, the lower Cholesky factor L of A = L L^T.
    """

    learns_online = True

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        ridge: float = 1.0,
        features_key: str = "candidate_features",
    ):
        super().__init__(observation_space, action_space, seed, device)
        features = observation_space.spaces.get(features_key)
        if features is None or len(features.shape) != 2:
            raise ConfigError(
                f"{type(self).__name__}: features_key {features_key!r} is no (N, F) observation entry"
            )
        if not ridge > 0:
            raise ConfigError(f"ridge must be > 0, got {ridge}")
        self.ridge = ridge
        self.features_key = features_key
        self.dim = features.shape[1] + 1
        self.gram = ridge * torch.eye(self.dim, dtype=torch.float64, device=self.device)
        self.target = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        self._refit()

    def contexts(self, observation: Observation) -> torch.Tensor:
        """(B, N, d) float64 on ``self.device``: the candidates' features and a constant 1."""
        features = observation[self.features_key].to(self.device, torch.float64)
        return torch.cat([features, torch.ones_like(features[..., :1])], dim=-1)

    def _refit(self) -> None:
        """theta and A^-1 from the current A and b."""
        # A is positive definite by construction (ridge > 0), so the unchecked variant is
        # safe, and it does not read an error flag back from an accelerator every step.
        factor, _ = torch.linalg.cholesky_ex(self.gram)
        self.cholesky = factor
        self.covariance = torch.cholesky_inverse(factor)
        self.theta = torch.cholesky_solve(self.target[:, None], factor)[:, 0]

    @abstractmethod
    def scores(self, contexts: torch.Tensor) -> torch.Tensor:
        """(B, N, d) contexts -> (B, N) scores, higher is better."""

    def act(self, observation: Observation) -> torch.Tensor:
        candidates = observation[self.features_key]
        slates = top_k(self.scores(self.contexts(observation)), self.slate_size, self.generator)
        return slates.to(candidates.device)

    def observe(self, transition: Transition) -> None:
        contexts = self.contexts(transition.observation)  # (B, N, d)
        action = transition.action.to(self.device)
        shown = contexts.gather(1, action[..., None].expand(-1, -1, self.dim)).reshape(-1, self.dim)
        reward = credited_reward(transition).to(self.device).reshape(-1)
        self.gram += shown.T @ shown
        self.target += shown.T @ reward
        self._refit()

    def predictions(self, contexts: torch.Tensor) -> torch.Tensor:
        """(B, N, d) -> (B, N) the ridge estimate of each candidate's reward per impression."""
        return contexts @ self.theta

    def settings(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ridge": self.ridge,
            **self.settings(),
            "model": f"shared ridge regression on {self.features_key} and an intercept (d={self.dim})",
            "signal": "the step reward, split over the clicked positions, per impression",
            "training": _ONLINE,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"gram": self.gram.cpu(), "target": self.target.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["gram"].shape != (self.dim, self.dim) or state["target"].shape != (self.dim,):
            raise ConfigError(f"{self.name}: saved model has d={state['target'].shape[0]}, not {self.dim}")
        self.gram = state["gram"].to(self.device, torch.float64).clone()
        self.target = state["target"].to(self.device, torch.float64).clone()
        self._refit()


class LinUCBAgent(LinearBandit):
    """LinUCB (Li et al. 2010) with one model shared by all items (the paper's
    "disjoint" model has one per arm; shopgym's catalogue is too large for that),
    learning online. Each candidate's score is the upper confidence bound::

        x^T theta + exploration * sqrt(x^T A^-1 x)

    on the ridge regression of :class:`LinearBandit` (reward per impression on item
    features); the k candidates with the highest bound are shown, best first.

    Args:
        observation_space, action_space, seed, device, ridge, features_key: as
            :class:`LinearBandit`.
        exploration: alpha, the bound's width in standard errors (>= 0).
    """

    name = "linucb"

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        ridge: float = 1.0,
        features_key: str = "candidate_features",
        exploration: float = 0.5,
    ):
        super().__init__(observation_space, action_space, seed, device, ridge, features_key)
        check_at_least(0, exploration=exploration)
        self.exploration = exploration

    def widths(self, contexts: torch.Tensor) -> torch.Tensor:
        """(B, N, d) -> (B, N) ``sqrt(x^T A^-1 x)``, the standard error of each prediction
        in units of the noise's."""
        quadratic = ((contexts @ self.covariance) * contexts).sum(-1)
        return quadratic.clamp(min=0).sqrt()

    def scores(self, contexts: torch.Tensor) -> torch.Tensor:
        return self.predictions(contexts) + self.exploration * self.widths(contexts)

    def settings(self) -> dict[str, Any]:
        return {"exploration": self.exploration}


class LinearThompsonAgent(LinearBandit):
    """Linear Thompson sampling (Agrawal & Goyal 2013) on the shared ridge regression
    of :class:`LinearBandit`, learning online. Every shopper draws its own weights at
    every step::

        theta_b ~ N(theta, scale^2 A^-1)

    and is shown the k candidates with the highest ``x^T theta_b``, best first.

    Args:
        observation_space, action_space, seed, device, ridge, features_key: as
            :class:`LinearBandit`.
        scale: v, the posterior's standard deviation scale (>= 0; 0 is greedy).
    """

    name = "linear-thompson"

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        ridge: float = 1.0,
        features_key: str = "candidate_features",
        scale: float = 0.3,
    ):
        super().__init__(observation_space, action_space, seed, device, ridge, features_key)
        check_at_least(0, scale=scale)
        self.scale = scale

    def sample_weights(self, rows: int) -> torch.Tensor:
        """(rows, d) draws of theta from N(theta, scale^2 A^-1)."""
        noise = torch.randn(self.dim, rows, generator=self.generator, device=self.device, dtype=torch.float64)
        # With A = L L^T, L^-T z has covariance (L L^T)^-1 = A^-1.
        correlated = torch.linalg.solve_triangular(self.cholesky.T, noise, upper=True)
        return self.theta + self.scale * correlated.T

    def scores(self, contexts: torch.Tensor) -> torch.Tensor:
        weights = self.sample_weights(len(contexts))
        return torch.einsum("bnd,bd->bn", contexts, weights)

    def settings(self) -> dict[str, Any]:
        return {"scale": self.scale}
