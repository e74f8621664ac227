"""PPO with a Plackett–Luce slate policy, on shopgym's torch-native batched env (one file).

In the spirit of CleanRL's ``ppo.py``: everything the algorithm does is in this file,
top to bottom: the observation encoder, the policy, the Plackett–Luce slate
distribution, the rollout, GAE and the clipped update.

The policy
    A scorer with shared weights gives each of the N candidates a score ``s_i`` from
    its own features, the elementwise product of its features with the shopper's
    *profile* (the mean features of the clicked history; InterestEvolution's
    observable interest vector) and a *context* vector (everything else the
    observation shows: the pooled history, the step, the responses to the last
    slate...). The slate is a Plackett–Luce draw of k distinct candidates without
    replacement: position 1 takes candidate i with probability ``softmax(s)_i``,
    position 2 one of the rest with the softmax over the rest, and so on. The
    k largest ``s_i + G_i`` with G_i i.i.d. Gumbel(0, 1), in decreasing order, are an
    exact draw of it (the Gumbel-top-k trick: Yellott 1977; Kool, van Hoof and
    Welling 2019), and the log-probability of the ordered slate ``a`` is exact::

        log p(a) = sum_j [ s_{a_j} - logsumexp_{i not in a_1..a_{j-1}} s_i ].

    Greedy evaluation (``act``) shows the k highest scores, best first: the most
    likely ordered slate. A separate value network reads the context and the
    candidates pooled over N (what is on offer changes the outlook of a session).

PPO
    Schulman et al. 2017 (clipped surrogate) with GAE(λ) (Schulman et al. 2016) and
    the usual details (Huang et al. 2022, "The 37 implementation details of PPO"):
    orthogonal initialisation, Adam with eps 1e-5, linear learning-rate annealing,
    per-minibatch advantage normalisation, global gradient clipping, optional
    value clipping and KL early stopping, rewards scaled by a running standard
    deviation of the discounted return (as Gymnasium's ``NormalizeReward``).

Episode ends (same-step autoreset)
    A row whose session ends in a step already shows the next session. A
    ``terminated`` session (the shopper left) has no future: no bootstrap. A
    ``truncated`` one (a time limit) would have gone on: its reward gets
    ``γ V(final_observation)`` added, and the advantage recursion stops at the
    boundary in both cases.

Randomness
    Initial weights come from a CPU generator (the same weights on every device);
    Gumbel noise and minibatch shuffles from the agent's *training* generator; ``act``
    only draws from the base :class:`Agent` generator (random tie-breaking in
    :func:`top_k`), so evaluating at checkpoints does not change training. No global
    RNG is used: the same seed gives the same numbers on the CPU.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from shopgym.agents.base import Agent, Checkpoint, CurvePoints, Observation, check_at_least, top_k
from shopgym.envs.spaces import SlateSpace
from shopgym.envs.torch_env import as_torch_env
from shopgym.simulator.determinism import derived_seeds
from shopgym.simulator.errors import ConfigError

# Candidate features: the shopper presets' name, then InterestEvolution's.
CANDIDATE_KEYS = ("candidate_features", "doc_features")
HISTORY_KEY, HISTORY_IDS_KEY = "history_features", "history_ids"
# Integer entries with more values than this are identities, not features (never read).
MAX_ONE_HOT = 64
# Score of a candidate already placed in the slate: exp() of it is exactly 0 in float32,
# and unlike -inf it keeps 0 * log p (and its gradient) finite.
PLACED = -1e9


# --------------------------------------------------------------------------- observations
class Encoded(NamedTuple):
    """A batch of observations as the networks read them (M rows).

    Attributes:
        candidates: (M, N, F) candidate features.
        profile: (M, F) the shopper's profile (mean clicked features, or interests),
            or (M, 0) when the observation has none.
        context: (M, C) every other feature of the observation.
    """

    candidates: torch.Tensor
    profile: torch.Tensor
    context: torch.Tensor

    def select(self, rows: torch.Tensor) -> Encoded:
        """The rows ``rows`` (an index tensor) of every field."""
        return Encoded(self.candidates[rows], self.profile[rows], self.context[rows])

    @staticmethod
    def stack(batches: list[Encoded]) -> Encoded:
        """T batches of B rows -> one of T·B rows (time-major)."""
        return Encoded(*(torch.cat([getattr(b, name) for b in batches]) for name in Encoded._fields))


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) log(1 + |x|): entries of unknown range (steps, watch times, qualities)
    squashed without running statistics (Hafner et al. 2023)."""
    return torch.sign(x) * torch.log1p(x.abs())


class ObservationEncoder:
    """Reads a shopgym observation dict into :class:`Encoded` tensors, from its space.

    - ``candidate_features`` / ``doc_features`` (N, F): the candidates, as they are
      (already standardised or one-hot).
    - ``history_features`` (H, F): averaged over the filled rows (``history_ids`` <
      M) into the profile; the mean and the fill fraction also go into the context.
    - Without a history, a 1-D float entry of length F (InterestEvolution's
      ``user``) is the profile (and also goes into the context).
    - Other float entries: flattened, through :func:`symlog`. Integer entries
      (``MultiDiscrete``) of at most 2 values as floats, of at most ``MAX_ONE_HOT``
      one-hot; ``*_ids`` entries and larger ones are identities and are not read
      (the policy generalises across items through their features).

    Raises:
        ConfigError: the observation has no candidate features.
    """

    def __init__(self, observation_space: spaces.Dict):
        entries = observation_space.spaces
        self.candidate_key = next((key for key in CANDIDATE_KEYS if key in entries), None)
        if self.candidate_key is None:
            raise ConfigError(f"ppo needs candidate features ({' or '.join(CANDIDATE_KEYS)}) to score")
        self.num_features = int(entries[self.candidate_key].shape[-1])
        f = self.num_features
        self.history = HISTORY_KEY in entries
        ids = entries.get(HISTORY_IDS_KEY)
        self.empty_id = int(ids.nvec.flat[0]) - 1 if isinstance(ids, spaces.MultiDiscrete) else None
        self.profile_key = None
        if not self.history:
            vectors = [key for key, space in entries.items() if isinstance(space, spaces.Box)]
            self.profile_key = next((key for key in vectors if entries[key].shape == (f,)), None)
        self.profile_size = f if self.history or self.profile_key is not None else 0
        self.float_keys: list[str] = []
        self.integer_keys: list[tuple[str, int]] = []  # (key, classes); 2 classes: read as a float
        size = f + 1 if self.history else 0
        for key, space in entries.items():
            if key in (self.candidate_key, HISTORY_KEY) or key.endswith("_ids"):
                continue
            if isinstance(space, spaces.Box):
                self.float_keys.append(key)
                size += int(np.prod(space.shape))
            elif isinstance(space, spaces.MultiDiscrete) and int(space.nvec.max()) <= MAX_ONE_HOT:
                classes = int(space.nvec.max())
                self.integer_keys.append((key, classes))
                size += int(np.prod(space.shape)) * (1 if classes <= 2 else classes)
        self.context_size = size

    def __call__(self, observation: Observation, device: torch.device) -> Encoded:
        """(B, ...) observation tensors -> :class:`Encoded` of B rows on ``device``."""
        candidates = observation[self.candidate_key].to(device, torch.float32)
        rows = len(candidates)
        parts: list[torch.Tensor] = []
        profile = candidates.new_zeros((rows, 0))
        if self.history:
            history = observation[HISTORY_KEY].to(device, torch.float32)  # (B, H, F)
            if self.empty_id is not None:
                filled = (observation[HISTORY_IDS_KEY].to(device) != self.empty_id).float()
            else:  # empty rows are zeros
                filled = (history != 0).any(-1).float()
            count = filled.sum(1, keepdim=True)
            profile = (history * filled[..., None]).sum(1) / count.clamp(min=1.0)
            parts += [profile, count / history.shape[1]]
        elif self.profile_key is not None:
            profile = observation[self.profile_key].to(device, torch.float32)
        for key in self.float_keys:
            parts.append(symlog(observation[key].to(device, torch.float32).reshape(rows, -1)))
        for key, classes in self.integer_keys:
            values = observation[key].to(device).reshape(rows, -1)
            if classes <= 2:
                parts.append(values.float())
            else:
                parts.append(nn.functional.one_hot(values.long(), classes).float().reshape(rows, -1))
        context = torch.cat(parts, 1) if parts else candidates.new_zeros((rows, 0))
        return Encoded(candidates, profile, context)


# --------------------------------------------------------------------------- networks
def mlp(sizes: list[int], final_gain: float, generator: torch.Generator) -> nn.Sequential:
    """Linear-tanh layers of ``sizes``, orthogonally initialised (hidden gain √2, the
    last layer ``final_gain``: 0.01 keeps the first policy near uniform), biases zero."""
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layer = nn.Linear(fan_in, fan_out)
        last = index == len(sizes) - 2
        nn.init.orthogonal_(layer.weight, gain=final_gain if last else math.sqrt(2), generator=generator)
        nn.init.zeros_(layer.bias)
        layers += [layer] if last else [layer, nn.Tanh()]
    return nn.Sequential(*layers)


class SlatePolicy(nn.Module):
    """The candidate scorer (actor) and the value network (critic).

    Args:
        num_features: F, the candidates' feature size.
        profile_size: F or 0 (no profile).
        context_size: C.
        hidden_sizes: the hidden layers of both networks.
        generator: a CPU generator for the initial weights.
    """

    def __init__(
        self,
        num_features: int,
        profile_size: int,
        context_size: int,
        hidden_sizes: tuple[int, ...],
        generator: torch.Generator,
    ):
        super().__init__()
        self.use_profile = profile_size > 0
        self.item_size = num_features + profile_size
        self.scorer = mlp([self.item_size + context_size, *hidden_sizes, 1], 0.01, generator)
        # The critic sees the context and the mean candidate (with its profile product).
        self.critic = mlp([context_size + num_features + profile_size, *hidden_sizes, 1], 1.0, generator)

    def _items(self, x: Encoded) -> torch.Tensor:
        """(M, N, F + P) each candidate's features and their product with the profile."""
        if not self.use_profile:
            return x.candidates
        return torch.cat([x.candidates, x.candidates * x.profile[:, None, :]], -1)

    def scores(self, x: Encoded) -> torch.Tensor:
        """(M, N) the candidates' scores (Plackett–Luce log-weights)."""
        # The scorer's first layer on [item, context], split: the context's part is the
        # same for the N candidates of a row, so it is computed once per row, not N times.
        first = self.scorer[0]
        weight_items, weight_context = first.weight.split([self.item_size, x.context.shape[1]], 1)
        hidden = nn.functional.linear(self._items(x), weight_items, first.bias)
        hidden = hidden + nn.functional.linear(x.context, weight_context)[:, None, :]
        return self.scorer[1:](hidden).squeeze(-1)

    def value(self, x: Encoded) -> torch.Tensor:
        """(M,) the value of the state (in the scaled reward's units)."""
        return self.critic(torch.cat([x.context, self._items(x).mean(1)], -1)).squeeze(-1)


# --------------------------------------------------------------------------- Plackett–Luce
def plackett_luce_sample(scores: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """(B, N) scores -> (B, k) an exact Plackett–Luce draw of ordered slates of distinct
    candidates (Gumbel-top-k), drawn from ``generator`` (on the scores' device)."""
    # -log(E), E ~ Exp(1), is Gumbel(0, 1); topk returns the largest first.
    gumbel = -torch.empty_like(scores).exponential_(generator=generator).log()
    return (scores + gumbel).topk(k, dim=1).indices


def plackett_luce_terms(scores: torch.Tensor, slates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability and entropy estimate of ordered slates under Plackett–Luce.

    Args:
        scores: (B, N) log-weights.
        slates: (B, k) distinct candidate indices, first position first.

    Returns:
        log_prob: (B,) the exact ``log p(slate)``, the sum over positions j of the
            log-softmax of ``slates[:, j]`` over the candidates not placed before j.
        entropy: (B,) the sum over positions of the entropy of position j's softmax
            given the slate's own first j-1 items. For slates drawn from the policy it
            is an unbiased estimate of the slate entropy (the chain rule of entropy);
            its gradient, used as the bonus, raises every position's spread.
    """
    chosen = nn.functional.one_hot(slates, scores.shape[1]).to(scores.dtype)  # (B, k, N)
    placed = (chosen.cumsum(1) - chosen).bool()  # items shown above position j
    log_p = scores[:, None, :].masked_fill(placed, PLACED).log_softmax(-1)  # (B, k, N)
    # One-hot products, not gather: their backward is deterministic on every device.
    log_prob = (log_p * chosen).sum((1, 2))
    entropy = -(log_p.exp() * log_p).sum((1, 2))
    return log_prob, entropy


def generalized_advantages(
    rewards: torch.Tensor,
    values: torch.Tensor,
    last_value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    final_values: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> torch.Tensor:
    """GAE(λ) advantages of T steps of B rows under same-step autoreset.

    Args:
        rewards: (T, B) the steps' rewards.
        values: (T, B) V of the observations acted on.
        last_value: (B,) V of the observation after the last step.
        terminated: (T, B) bool, the shopper left: the session's future is worth 0.
        truncated: (T, B) bool, a time limit cut the session: its future is worth
            ``final_values`` (the cut is the environment's, not the shopper's).
        final_values: (T, B) V of the observation each session ended in (read only
            where truncated and not terminated).

    Returns:
        (T, B) advantages; ``advantages + values`` are the value targets. Where a
        session ended, ``values[t + 1]`` (or ``last_value``) is the *next* session's
        and is never used: the recursion stops at the boundary.
    """
    cut = truncated & ~terminated
    rewards = rewards + gamma * torch.where(cut, final_values, 0.0)
    alive = (~(terminated | truncated)).to(values.dtype)
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(last_value)
    for t in reversed(range(len(values))):
        next_value = last_value if t == len(values) - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_value * alive[t] - values[t]
        running = delta + gamma * gae_lambda * alive[t] * running
        advantages[t] = running
    return advantages


class RunningMeanStd:
    """Running mean and variance of a stream of values (parallel Welford, float64)."""

    def __init__(self, device: torch.device):
        self.mean = torch.zeros((), dtype=torch.float64, device=device)
        self.var = torch.ones((), dtype=torch.float64, device=device)
        self.count = torch.full((), 1e-4, dtype=torch.float64, device=device)

    def update(self, values: torch.Tensor) -> None:
        values = values.double()
        count = values.numel()
        mean, var = values.mean(), values.var(unbiased=False)
        delta, total = mean - self.mean, self.count + count
        self.mean = self.mean + delta * count / total
        self.var = (self.var * self.count + var * count + delta**2 * self.count * count / total) / total
        self.count = total


# --------------------------------------------------------------------------- the agent
class Rollout(NamedTuple):
    """``n_steps`` = T steps of B rows, flattened time-major to T·B rows (on the agent's device).

    Attributes:
        observations: :class:`Encoded` of the observations acted on.
        slates: (T·B, k) the slates drawn.
        log_probs: (T·B,) their log-probabilities under the policy that drew them.
        values: (T·B,) the value estimates then.
        advantages: (T·B,) GAE(λ) advantages.
        returns: (T·B,) the value targets (advantages + values).
    """

    observations: Encoded
    slates: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class PPOAgent(Agent):
    """Proximal Policy Optimisation of a Plackett–Luce slate policy, trained on train shoppers.

    ``fit`` runs rollouts of ``n_steps`` on every row of the torch vector env, then
    ``n_epochs`` epochs of ``n_minibatches`` minibatches of the clipped objective;
    evaluation (``act``) shows the k highest-scoring candidates. See the module
    docstring for the policy, the handling of episode ends and the random streams.

    Args:
        learning_rate: Adam's step size (linearly annealed to 0 over a fit when
            ``anneal_lr``).
        n_steps: steps per rollout in each of the env's B rows (a rollout is
            ``n_steps * B`` slates; the last rollout of a fit is shortened to the budget).
        n_epochs: passes over each rollout.
        n_minibatches: minibatches per epoch (each ``n_steps * B / n_minibatches`` rows).
        gamma: discount factor.
        gae_lambda: GAE's λ (1: Monte-Carlo returns, 0: one-step TD).
        clip_range: PPO's ε, the clip of the probability ratio.
        clip_range_vf: clip of the value change per update around the rollout's
            values (``None``: no value clipping).
        ent_coef: weight of the entropy bonus (the Plackett–Luce per-position estimate
            of :func:`plackett_luce_terms`).
        vf_coef: weight of the value loss.
        max_grad_norm: global gradient-norm clip.
        target_kl: stop a rollout's epochs early once the approximate KL to the
            rollout's policy exceeds it (``None``: never; checking costs a host sync per epoch).
        normalize_advantage: standardise advantages within each minibatch.
        normalize_rewards: divide rewards by a running standard deviation of the
            discounted return, so the value network sees targets of order 1 whatever the
            reward's scale (InterestEvolution's returns are in the hundreds).
        anneal_lr: anneal the learning rate linearly to 0 over each fit.
        hidden_sizes: hidden layers of the scorer and of the value network.
    """

    name = "ppo"
    trains_before_evaluation = True

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        learning_rate: float = 3e-4,
        n_steps: int = 32,
        n_epochs: int = 4,
        n_minibatches: int = 4,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float = 0.2,
        clip_range_vf: float | None = None,
        ent_coef: float = 0.01,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        target_kl: float | None = None,
        normalize_advantage: bool = True,
        normalize_rewards: bool = True,
        anneal_lr: bool = True,
        hidden_sizes: tuple[int, ...] = (64, 64),
    ):
        super().__init__(observation_space, action_space, seed, device)
        check_at_least(1, n_steps=n_steps, n_epochs=n_epochs, n_minibatches=n_minibatches)
        if not (0 <= gamma <= 1 and 0 <= gae_lambda <= 1):
            raise ConfigError(f"gamma and gae_lambda must be in [0, 1], got {gamma}, {gae_lambda}")
        if not clip_range > 0:
            raise ConfigError(f"clip_range must be > 0, got {clip_range}")
        self.hyperparameters: dict[str, Any] = {
            "learning_rate": learning_rate,
            "n_steps": n_steps,
            "n_epochs": n_epochs,
            "n_minibatches": n_minibatches,
            "gamma": gamma,
            "gae_lambda": gae_lambda,
            "clip_range": clip_range,
            "clip_range_vf": clip_range_vf,
            "ent_coef": ent_coef,
            "vf_coef": vf_coef,
            "max_grad_norm": max_grad_norm,
            "target_kl": target_kl,
            "normalize_advantage": normalize_advantage,
            "normalize_rewards": normalize_rewards,
            "anneal_lr": anneal_lr,
            "hidden_sizes": list(hidden_sizes),
        }
        self.learning_rate, self.n_steps, self.n_epochs = learning_rate, n_steps, n_epochs
        self.n_minibatches, self.gamma, self.gae_lambda = n_minibatches, gamma, gae_lambda
        self.clip_range, self.clip_range_vf, self.ent_coef = clip_range, clip_range_vf, ent_coef
        self.vf_coef, self.max_grad_norm, self.target_kl = vf_coef, max_grad_norm, target_kl
        self.normalize_advantage, self.normalize_rewards = normalize_advantage, normalize_rewards
        self.anneal_lr = anneal_lr

        init_seed, training_seed = derived_seeds(seed, 2)
        self.encoder = ObservationEncoder(observation_space)
        # Built on the CPU, so that the initial weights do not depend on the device.
        self.policy = SlatePolicy(
            self.encoder.num_features,
            self.encoder.profile_size,
            self.encoder.context_size,
            tuple(hidden_sizes),
            torch.Generator().manual_seed(init_seed),
        ).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=learning_rate, eps=1e-5)
        self.training_generator = torch.Generator(device=self.device).manual_seed(training_seed)
        self.return_stats = RunningMeanStd(self.device)
        self.steps_trained = 0
        self.updates = 0

    # ------------------------------------------------------------------ acting
    def act(self, observation: Observation) -> torch.Tensor:
        """Greedy: the k highest-scoring candidates, best first (ties at random, from
        the base generator: never the training streams)."""
        with torch.no_grad():
            scores = self.policy.scores(self.encoder(observation, self.device))
        device = observation[self.encoder.candidate_key].device
        return top_k(scores, self.slate_size, self.generator).to(device)

    # ------------------------------------------------------------------ training
    def fit(self, env: Any, budget: int, seed: int, checkpoint: Checkpoint | None = None) -> None:
        """Train for ``budget`` slates (shopper-steps summed over the env's B rows; the
        last rollout is shortened so that at most B - 1 more are shown), from
        ``env.reset(seed)``; ``checkpoint`` is called as :class:`CurvePoints` says."""
        env = as_torch_env(env)
        rows = env.num_envs
        curve = CurvePoints(budget, checkpoint)
        observation, _ = env.reset(seed=seed)
        state = self.encoder(observation, self.device)
        # Per-row accumulators across rollouts: the discounted return (reward scaling)
        # and the undiscounted return of the running session (training curve).
        discounted = torch.zeros(rows, dtype=torch.float64, device=self.device)
        session_return = torch.zeros(rows, device=self.device)
        steps = 0
        while steps < budget:
            horizon = min(self.n_steps, -(-(budget - steps) // rows))
            if self.anneal_lr:
                for group in self.optimizer.param_groups:
                    group["lr"] = self.learning_rate * (1.0 - steps / budget)
            rollout, state, discounted, session_return, episodes = self._collect(
                env, state, horizon, discounted, session_return
            )
            stats = self._update(rollout)
            steps += horizon * rows
            self.steps_trained += horizon * rows
            self.updates += 1
            # One host sync per update, for the log.
            ended, total = episodes.tolist()
            stats.update(
                steps=float(self.steps_trained),
                episodes=ended,
                training_return=total / ended if ended else float("nan"),
            )
            self.training_log.append(stats)
            curve.update(steps)
        curve.finish(steps)

    @torch.no_grad()
    def _collect(
        self,
        env: Any,
        state: Encoded,
        horizon: int,
        discounted: torch.Tensor,
        session_return: torch.Tensor,
    ) -> tuple[Rollout, Encoded, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run ``horizon`` steps on every row with the sampling policy; returns the
        rollout with its advantages, the state to continue from, the updated
        accumulators and (2,) [sessions ended, their summed return]."""
        observations, slates, log_probs, values, rewards = [], [], [], [], []
        terminations, truncations, final_values = [], [], []
        episodes = torch.zeros(2, dtype=torch.float64, device=self.device)
        # Reading whether any session was truncated syncs with the device: free on the
        # CPU; elsewhere the final observation's value is computed every step instead.
        host_check = env.device.type == "cpu"
        for _ in range(horizon):
            scores, value = self.policy.scores(state), self.policy.value(state)
            slate = plackett_luce_sample(scores, self.slate_size, self.training_generator)
            log_prob, _ = plackett_luce_terms(scores, slate)
            step = env.step(slate.to(env.device))
            reward = step.reward.to(self.device, torch.float32)
            terminated, truncated = step.terminated.to(self.device), step.truncated.to(self.device)
            final_value = torch.zeros_like(reward)  # read only where truncated
            if not host_check or bool(step.truncated.any()):
                final_value = self.policy.value(self.encoder(step.final_observation, self.device))
            done = terminated | truncated
            session_return += reward
            episodes += torch.stack([done.sum(), (session_return * done).sum()]).double()
            session_return = torch.where(done, 0.0, session_return)
            observations.append(state)
            slates.append(slate)
            log_probs.append(log_prob)
            values.append(value)
            rewards.append(reward)
            terminations.append(terminated)
            truncations.append(truncated)
            final_values.append(final_value)
            state = self.encoder(step.observation, self.device)
        last_value = self.policy.value(state)

        reward_t, done_t = torch.stack(rewards), torch.stack(terminations) | torch.stack(truncations)
        if self.normalize_rewards:
            returns = []
            for t in range(horizon):
                discounted = discounted * self.gamma + reward_t[t]
                returns.append(discounted)
                discounted = torch.where(done_t[t], 0.0, discounted)
            self.return_stats.update(torch.stack(returns))
            reward_t = reward_t / (self.return_stats.var.sqrt() + 1e-8).float()
        value_t = torch.stack(values)
        advantages = generalized_advantages(
            reward_t,
            value_t,
            last_value,
            torch.stack(terminations),
            torch.stack(truncations),
            torch.stack(final_values),
            self.gamma,
            self.gae_lambda,
        )
        rollout = Rollout(
            observations=Encoded.stack(observations),
            slates=torch.cat(slates),
            log_probs=torch.cat(log_probs),
            values=value_t.reshape(-1),
            advantages=advantages.reshape(-1),
            returns=(advantages + value_t).reshape(-1),
        )
        return rollout, state, discounted, session_return, episodes

    def _update(self, rollout: Rollout) -> dict[str, float]:
        """``n_epochs`` epochs of minibatch steps of the PPO loss on one rollout;
        returns the mean losses, approximate KL and clip fraction (floats)."""
        size = len(rollout.slates)
        batch = -(-size // self.n_minibatches)
        totals = torch.zeros(5, device=self.device)  # policy, value, entropy, kl, clipped
        count = 0
        for _ in range(self.n_epochs):
            order = torch.randperm(size, generator=self.training_generator, device=self.device)
            for start in range(0, size, batch):
                rows = order[start : start + batch]
                x = rollout.observations.select(rows)
                log_prob, entropy = plackett_luce_terms(self.policy.scores(x), rollout.slates[rows])
                log_ratio = log_prob - rollout.log_probs[rows]
                ratio = log_ratio.exp()
                advantage = rollout.advantages[rows]
                if self.normalize_advantage and len(rows) > 1:
                    advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
                clipped_ratio = ratio.clamp(1 - self.clip_range, 1 + self.clip_range)
                policy_loss = torch.maximum(-advantage * ratio, -advantage * clipped_ratio).mean()
                value = self.policy.value(x)
                target = rollout.returns[rows]
                value_loss = (value - target) ** 2
                if self.clip_range_vf is not None:
                    old = rollout.values[rows]
                    clipped = old + (value - old).clamp(-self.clip_range_vf, self.clip_range_vf)
                    value_loss = torch.maximum(value_loss, (clipped - target) ** 2)
                value_loss = 0.5 * value_loss.mean()
                loss = policy_loss - self.ent_coef * entropy.mean() + self.vf_coef * value_loss
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    # Schulman's low-variance estimator of KL(old || new).
                    kl = ((ratio - 1) - log_ratio).mean()
                    clip_fraction = ((ratio - 1).abs() > self.clip_range).float().mean()
                    totals += torch.stack([policy_loss, value_loss, entropy.mean(), kl, clip_fraction])
                count += 1
            if self.target_kl is not None and float(kl) > self.target_kl:
                break
        means = (totals / count).tolist()
        names = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
        return dict(zip(names, means, strict=True))

    # ------------------------------------------------------------------ bookkeeping
    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "policy": "Plackett–Luce over a shared MLP scorer of candidate features, profile and context",
            "hyperparameters": dict(self.hyperparameters),
            "training_data": {"slates": self.steps_trained, "updates": self.updates, "shoppers": "train"},
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": {key: value.detach().cpu().clone() for key, value in self.policy.state_dict().items()},
            "return_stats": torch.stack(
                [self.return_stats.mean, self.return_stats.var, self.return_stats.count]
            ).cpu(),
            "progress": torch.tensor([self.steps_trained, self.updates], dtype=torch.int64),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        mean, var, count = state["return_stats"].to(self.device, torch.float64)
        self.return_stats.mean, self.return_stats.var, self.return_stats.count = mean, var, count
        self.steps_trained, self.updates = (int(value) for value in state["progress"])
