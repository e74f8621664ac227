"""SlateQ (Ie et al., IJCAI 2019): slate Q-learning through an item-wise decomposition.

The value of a slate A in state s is split over the items the user may choose::

    Q(s, A) = sum_{i in A ∪ {⊥}} P(i | s, A) Q̄(s, i)

where ⊥ is "no click", P is a click model and Q̄(s, i) is the long-term value of the
user choosing item i (the item-wise Q-value). Both are learned from the agent's own
data: P is a conditional logit (MNL) over the slate's positions and ⊥,
``P(i at position p) ∝ exp(v(s, i) + b_p)``, ``P(⊥) ∝ exp(v_⊥(s))``, fitted by
cross-entropy on the observed clicks; Q̄ by temporal differences on the chosen
item only: ``Q̄(s, i) <- r + γ Q(s', A')`` with A' the best slate at s' (Q-learning)
or the slate shown there (SARSA). The slate with the largest Q(s, A) is found by
top-k on ``exp(v) Q̄``, greedy insertion, or exactly (Dinkelbach's method on the
ratio of linear terms that Q(s, A) is under the MNL).

Several clicks per slate (the shopper presets' position-based model): the click
model is fitted on the *first* click (top-most clicked position) and Q̄(s, i) is the
value of the steps whose first click is i (with the step's whole reward). The
decomposition is then exact in expectation over the first click, except that Q̄
ignores which items below i were also clicked (the item-wise assumption).

The agent never reads the simulator: its inputs are the observation's candidate
features and a user/context vector built from the other float entries
(:class:`ObservationFeatures`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from gymnasium import spaces
from torch import nn

from shopgym.agents.base import Agent, Checkpoint, CurvePoints, Observation, check_at_least, random_slates
from shopgym.envs.spaces import SlateSpace
from shopgym.envs.torch_env import as_torch_env
from shopgym.simulator.determinism import deterministic_algorithms
from shopgym.simulator.errors import ConfigError

# The observation entry that holds the candidates' rows (InterestEvolution, shopper presets).
ITEM_KEYS = ("doc_features", "candidate_features")
SLATE_OPTIMIZERS = ("topk", "greedy", "exact")
TARGETS = ("q-learning", "sarsa")
CLICK_MODELS = ("bilinear", "mlp")
LOG_ROWS = 100  # training_log rows over a training run
# Dinkelbach rounds of the exact optimiser (it converges in 2-4 on every slate we tried;
# a fixed count keeps the loop free of host synchronisations).
DINKELBACH_ROUNDS = 6


class ObservationFeatures:
    """How an observation becomes SlateQ's two inputs: the candidates' rows and one user vector.

    - items (B, N, F): ``doc_features`` (InterestEvolution) or ``candidate_features``
      (shopper presets), as they are.
    - user (B, D): every other float (``Box``) entry, flattened, in the space's key
      order; an entry whose bound exceeds 1 in absolute value (``step`` up to
      ``max_steps``, ``response_watch_time`` up to 100, ...) is divided by that bound so
      that every input is of order 1. ``history_features`` (H, F) becomes the mean of
      its filled rows (``history_ids`` < M, the catalogue size; else the non-zero rows)
      and the filled fraction, so the user vector does not depend on the history's
      order or length. Integer entries (IDs, ``response_click``, cluster IDs) are left
      out: they are either catalogue IDs, which would need embeddings, or repeat what
      the float entries say.

    Args:
        space: the single shopper's observation space.
        num_items: M, the catalogue size (``None`` where candidates are not catalogue items).
    """

    def __init__(self, space: spaces.Dict, num_items: int | None):
        item_keys = [key for key in ITEM_KEYS if key in space.spaces]
        if not item_keys:
            raise ConfigError(f"SlateQ needs one of {ITEM_KEYS} in the observation, got {sorted(space)}")
        self.item_key = item_keys[0]
        self.num_candidates, self.item_dim = space[self.item_key].shape
        self.num_items = num_items
        self.user_keys: list[tuple[str, float]] = []  # (key, scale) of the flattened entries
        self.history = "history_features" in space.spaces
        user_dim = self.item_dim + 1 if self.history else 0
        for key, entry in space.spaces.items():
            if key in (self.item_key, "history_features") or not isinstance(entry, spaces.Box):
                continue
            if entry.dtype.kind != "f":
                continue
            bound = float(max(abs(entry.low).max(), abs(entry.high).max()))
            scale = 1.0 / bound if math.isfinite(bound) and bound > 1.0 else 1.0
            self.user_keys.append((key, scale))
            user_dim += math.prod(entry.shape)
        self.user_dim = user_dim

    def __call__(self, observation: Observation, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, ...) observation tensors -> user (B, D) and items (B, N, F), float32 on ``device``."""
        items = observation[self.item_key].to(device, torch.float32)
        parts = []
        if self.history:
            history = observation["history_features"].to(device, torch.float32)  # (B, H, F)
            if "history_ids" in observation and self.num_items is not None:
                filled = observation["history_ids"].to(device) < self.num_items
            else:
                filled = history.abs().sum(-1) > 0
            filled = filled.float()  # (B, H)
            count = filled.sum(1, keepdim=True)
            parts.append((history * filled[..., None]).sum(1) / count.clamp(min=1.0))
            parts.append(count / history.shape[1])
        for key, scale in self.user_keys:
            parts.append(observation[key].to(device, torch.float32).reshape(len(items), -1) * scale)
        user = torch.cat(parts, 1) if parts else items.new_zeros((len(items), 0))
        return user, items


class ItemScorer(nn.Module):
    """A scalar per (user, item) pair: an MLP of [u, x_i, (P u) ⊙ (R x_i)].

    The product of the two projections gives the MLP the user-item interactions
    (interest · topic in InterestEvolution) that ReLU layers fit only slowly. The first
    layer is split by input (a linear layer of the concatenation, computed as a sum) so
    that the user's part is computed once per user, not once per candidate.
    """

    def __init__(self, user_dim: int, item_dim: int, hidden: int, interaction_dim: int):
        super().__init__()
        self.user_projection = nn.Linear(user_dim, interaction_dim) if user_dim else None
        self.item_projection = nn.Linear(item_dim, interaction_dim)
        self.user_input = nn.Linear(max(user_dim, 1), hidden)
        self.item_input = nn.Linear(item_dim, hidden, bias=False)
        self.pair_input = nn.Linear(interaction_dim, hidden, bias=False)
        self.mlp = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """user (B, D) and items (B, n, F) -> (B, n)."""
        first = self.user_input(_nonempty(user))[:, None, :] + self.item_input(items)  # (B, n, hidden)
        if self.user_projection is not None:
            pair = self.user_projection(user)[:, None, :] * self.item_projection(items)
            first = first + self.pair_input(pair)
        return self.mlp(first).squeeze(-1)


def user_head(user_dim: int, hidden: int) -> nn.Module:
    """A scalar per user: (B, D) -> (B, 1)."""
    return nn.Sequential(nn.Linear(user_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))


class ItemQNetwork(nn.Module):
    """The item-wise values: Q̄(s, i) for candidates, Q̄(s, ⊥) for no click."""

    def __init__(self, user_dim: int, item_dim: int, hidden: int, interaction_dim: int):
        super().__init__()
        self.item = ItemScorer(user_dim, item_dim, hidden, interaction_dim)
        self.null = user_head(max(user_dim, 1), hidden)

    def forward(self, user: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """user (B, D), items (B, n, F) -> Q̄ of the items (B, n) and of no click (B,)."""
        return self.item(user, items), self.null(_nonempty(user)).squeeze(-1)


class BilinearScorer(nn.Module):
    """A scalar per (user, item) pair: ``(P u) · (R x_i) + a · x_i``, few parameters, so that
    the click model fits from a few thousand slates without chasing the noise of the clicks."""

    def __init__(self, user_dim: int, item_dim: int, interaction_dim: int):
        super().__init__()
        self.user_projection = nn.Linear(max(user_dim, 1), interaction_dim)
        self.item_projection = nn.Linear(item_dim, interaction_dim)
        self.item_linear = nn.Linear(item_dim, 1, bias=False)

    def forward(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """user (B, D) and items (B, n, F) -> (B, n)."""
        pair = (self.user_projection(_nonempty(user))[:, None, :] * self.item_projection(items)).sum(-1)
        return pair + self.item_linear(items).squeeze(-1)


class ClickModel(nn.Module):
    """A conditional logit over the slate and no click.

    ``log P(position p | s, A) = v(s, A_p) + b_p - Z``, ``log P(⊥ | s, A) = v_⊥(s) - Z``,
    with v a :class:`BilinearScorer` (``"bilinear"``) or an :class:`ItemScorer` MLP
    (``"mlp"``) and v_⊥ linear in the user vector. ``b`` (k,) are position logits
    (position effects of the shopper presets; ≈ 0 in InterestEvolution, whose choice
    ignores position)."""

    def __init__(
        self, user_dim: int, item_dim: int, slate_size: int, hidden: int, interaction_dim: int, kind: str
    ):
        super().__init__()
        if kind == "bilinear":
            self.item: nn.Module = BilinearScorer(user_dim, item_dim, interaction_dim)
        elif kind == "mlp":
            self.item = ItemScorer(user_dim, item_dim, hidden, interaction_dim)
        else:
            raise ConfigError(f"click_model must be one of {CLICK_MODELS}, got {kind!r}")
        self.null = nn.Linear(max(user_dim, 1), 1)
        self.position = nn.Parameter(torch.zeros(slate_size))

    def forward(self, user: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """user (B, D), items (B, n, F) -> item logits v (B, n) (without positions) and v_⊥ (B,)."""
        return self.item(user, items), self.null(_nonempty(user)).squeeze(-1)

    def slate_log_probs(self, user: torch.Tensor, slate_items: torch.Tensor) -> torch.Tensor:
        """user (B, D), the slate's items (B, k, F) in position order -> (B, k + 1) log-probabilities
        of the first click at each position, the last column no click."""
        logits, null = self(user, slate_items)
        return torch.log_softmax(torch.cat([logits + self.position, null[:, None]], 1), 1)


def _nonempty(user: torch.Tensor) -> torch.Tensor:
    """A (B, 0) user vector becomes (B, 1) zeros, so the per-user heads still have an input."""
    return user if user.shape[1] else user.new_zeros((len(user), 1))


def slate_values(
    logits: torch.Tensor, values: torch.Tensor, null_logit: torch.Tensor, null_value: torch.Tensor
) -> torch.Tensor:
    """Q(s, A) = Σ P(i | s, A) Q̄(s, i) over the slate and ⊥.

    Args:
        logits: (B, k) click logits of the slate's items, position logits included.
        values: (B, k) their Q̄.
        null_logit, null_value: (B,) the no-click logit and Q̄(s, ⊥).

    Returns:
        (B,) slate values.
    """
    probabilities = torch.softmax(torch.cat([logits, null_logit[:, None]], 1), 1)
    return (probabilities * torch.cat([values, null_value[:, None]], 1)).sum(1)


def best_slates(
    logits: torch.Tensor,
    values: torch.Tensor,
    null_logit: torch.Tensor,
    null_value: torch.Tensor,
    position_logits: torch.Tensor,
    method: str,
) -> torch.Tensor:
    """The slates of largest Q(s, A) (``exact``) or a heuristic's (``topk``, ``greedy``).

    Under the MNL, Q(s, A) = (w_⊥ Q̄_⊥ + Σ_p u_p w_{A_p} Q̄_{A_p}) / (w_⊥ + Σ_p u_p w_{A_p})
    with ``w = exp(v)`` and ``u_p = exp(b_p)``.

    - ``topk``: the k candidates of largest w Q̄ (the paper's top-k).
    - ``greedy``: fill the positions one at a time, each with the candidate that
      maximises Q of the partial slate (the paper's greedy).
    - ``exact``: Dinkelbach's method: for the current value λ the slate maximising
      Σ_p u_p w_{A_p} (Q̄_{A_p} - λ) takes the k largest w (Q̄ - λ) (rearrangement
      inequality); its value is the next λ. λ never decreases and stops at the maximum.

    Chosen items go to the positions in decreasing order of their position logit (for
    equal logits, position 0 first).

    Args:
        logits: (B, N) candidate click logits v (without positions).
        values: (B, N) candidate Q̄.
        null_logit, null_value: (B,).
        position_logits: (k,) b.
        method: one of ``SLATE_OPTIMIZERS``.

    Returns:
        (B, k) int64 candidate indices, in position order.
    """
    k = len(position_logits)
    positions = torch.argsort(position_logits, descending=True, stable=True)  # best position first
    u = position_logits[positions]  # (k,) their logits, decreasing
    # Shift every row by its largest logit so that the weights stay in (0, 1].
    shift = torch.maximum(logits.amax(1) + u[0], null_logit)[:, None]
    w = torch.exp(logits - shift)  # (B, N)
    w_null = torch.exp(null_logit[:, None] - shift)  # (B, 1)
    v_null = null_value[:, None]
    if method == "greedy":
        numerator, denominator = w_null * v_null, w_null
        taken = torch.zeros_like(w, dtype=torch.bool)
        chosen = []
        for p in range(k):
            weight = torch.exp(u[p]) * w
            score = (numerator + weight * values) / (denominator + weight)
            best = score.masked_fill(taken, -torch.inf).argmax(1, keepdim=True)  # (B, 1)
            taken.scatter_(1, best, True)
            numerator = numerator + weight.gather(1, best) * values.gather(1, best)
            denominator = denominator + weight.gather(1, best)
            chosen.append(best)
        order = torch.cat(chosen, 1)
    else:
        order = torch.topk(w * values, k, dim=1).indices
        if method == "exact":
            position_weight = torch.exp(u)  # (k,)

            def value_of(slate: torch.Tensor) -> torch.Tensor:  # (B, k) best first -> (B, 1)
                weight = position_weight * w.gather(1, slate)
                total = w_null * v_null + (weight * values.gather(1, slate)).sum(1, keepdim=True)
                return total / (w_null + weight.sum(1, keepdim=True))

            lam = value_of(order)
            for _ in range(DINKELBACH_ROUNDS):
                candidate = torch.topk(w * (values - lam), k, dim=1).indices
                candidate_value = value_of(candidate)
                better = candidate_value > lam
                order = torch.where(better, candidate, order)
                lam = torch.where(better, candidate_value, lam)
        elif method != "topk":
            raise ConfigError(f"slate_optimizer must be one of {SLATE_OPTIMIZERS}, got {method!r}")
    slates = torch.empty_like(order)
    slates[:, positions] = order
    return slates


def initialised(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """``module`` (built on the meta device) on the CPU with torch's default initialisation of
    linear layers, U(±1/sqrt(fan_in)) for weights and biases, drawn from ``generator``;
    other parameters (the position logits) start at zero."""
    module = module.to_empty(device="cpu")
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.zero_()
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=generator)
                if layer.bias is not None:
                    layer.bias.uniform_(-bound, bound, generator=generator)
    return module


class ReplayBuffer:
    """Transitions in preallocated tensors on one device, the oldest overwritten first.

    Per transition: ``user`` (D,), ``slate_items`` (k, F) the features shown, in
    position order, ``choice`` () the first clicked position (k: no click), ``reward``
    (), ``bootstrap`` () 0 where the session terminated, ``next_user`` (D,),
    ``next_items`` (N, F) and ``next_slate`` (k,) the slate shown next (SARSA). Memory
    is about ``capacity × (N + k) × F × 4`` bytes.
    """

    def __init__(self, capacity: int, features: ObservationFeatures, slate_size: int, device: torch.device):
        n, f, d, k = features.num_candidates, features.item_dim, features.user_dim, slate_size
        self.capacity, self.size, self.position = capacity, 0, 0
        self.data = {
            "user": torch.zeros((capacity, d), device=device),
            "slate_items": torch.zeros((capacity, k, f), device=device),
            "choice": torch.zeros(capacity, dtype=torch.long, device=device),
            "reward": torch.zeros(capacity, device=device),
            "bootstrap": torch.zeros(capacity, device=device),
            "next_user": torch.zeros((capacity, d), device=device),
            "next_items": torch.zeros((capacity, n, f), device=device),
            "next_slate": torch.zeros((capacity, k), dtype=torch.long, device=device),
        }

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        """Append B transitions (every entry (B, ...))."""
        rows = len(batch["reward"])
        index = (self.position + torch.arange(rows, device=batch["reward"].device)) % self.capacity
        for key, tensor in self.data.items():
            tensor[index] = batch[key]
        self.position = (self.position + rows) % self.capacity
        self.size = min(self.size + rows, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``batch_size`` transitions drawn uniformly with replacement."""
        index = torch.randint(self.size, (batch_size,), generator=generator, device=generator.device)
        return {key: tensor[index] for key, tensor in self.data.items()}


class SlateQAgent(Agent):
    """SlateQ: item-wise Q-learning with a learned click model, trained before evaluation.

    ``fit`` interacts with the train shoppers for ``budget`` shopper-steps, ε-greedy
    (a uniformly random slate with probability ε per shopper and step, ε decaying
    linearly), storing transitions in a replay buffer on the agent's device; every
    ``train_freq`` batched steps it takes ``gradient_steps`` Adam steps on minibatches,
    each fitting the click model (cross-entropy on the first click) and Q̄ (squared TD
    error of the chosen item, or of ⊥ without a click). ``act`` shows the best slate
    by the current networks, with no exploration and no random draw.

    Terminal handling: ``terminated`` (the shopper left) → no bootstrap; ``truncated``
    (a time limit) → bootstrap from ``TorchStep.final_observation``, the state the
    session was cut in.

    Args:
        observation_space: the single shopper's observation space.
        action_space: the single shopper's :class:`SlateSpace`.
        seed: seeds the initial weights (on the CPU, so the same on every device), the
            exploration and the replay sampling (a training generator of its own).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        gamma: discount factor γ of the TD target, per slate.
        target: ``"q-learning"`` (bootstrap on the best slate at s') or ``"sarsa"``
            (on the slate the training policy showed at s'; at a truncation, the best
            slate at the final observation).
        slate_optimizer: ``"greedy"`` (default; the paper's greedy, which it found as
            good as the exact optimum), ``"topk"`` or ``"exact"``; used by ``act`` and
            by the Q-learning target.
        double_q: choose the Q-learning target's slate with the online Q̄, value it
            with the target network's (double Q-learning), else with the target's alone.
        click_model: ``"bilinear"`` (default: ``(P u) · (R x) + a · x``, few parameters) or
            ``"mlp"`` (an :class:`ItemScorer` like Q̄'s: more flexible, noisier on little data).
        hidden: width of the two hidden layers of Q̄ (and of the MLP click model).
        interaction_dim: size of the user and item projections whose product feeds the
            networks; at least the number of topics (20) for InterestEvolution's
            interest · topic to be representable by the bilinear click model.
        lr: Adam learning rate of Q̄.
        click_lr: Adam learning rate of the click model (its own optimiser and gradient
            clipping, so that Q̄'s much larger squared TD errors never scale its steps).
            Higher than ``lr``: its position and no-click logits must move by ~0.5 within a
            few hundred steps, and Adam moves a parameter by at most about lr per step.
        batch_size: transitions per gradient step.
        buffer_size: replay capacity, in transitions.
        learning_starts: shopper-steps collected before the first gradient step.
        train_freq: batched env steps between two rounds of gradient steps.
        gradient_steps: gradient steps per round.
        target_update_interval: gradient steps between target-network updates.
        tau: Polyak coefficient of the target update (1.0: a hard copy).
        epsilon_start, epsilon_end: exploration probability at the start and end of its decay.
        exploration_fraction: fraction of the budget over which ε decays linearly.
        max_grad_norm: gradient clipping (global norm, per network).
        reward_scale: rewards are multiplied by this in the TD targets (slate choice
            is unchanged; it keeps Q̄ of order 1-100 for large rewards).
    """

    name = "slateq"
    trains_before_evaluation = True

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        gamma: float = 0.99,
        target: str = "q-learning",
        slate_optimizer: str = "greedy",
        double_q: bool = True,
        click_model: str = "bilinear",
        hidden: int = 128,
        interaction_dim: int = 32,
        lr: float = 1e-3,
        click_lr: float = 1e-2,
        batch_size: int = 256,
        buffer_size: int = 100_000,
        learning_starts: int = 2_000,
        train_freq: int = 1,
        gradient_steps: int = 1,
        target_update_interval: int = 1,
        tau: float = 0.01,
        epsilon_start: float = 1.0,
        epsilon_end: float = 0.05,
        exploration_fraction: float = 0.25,
        max_grad_norm: float = 10.0,
        reward_scale: float = 1.0,
    ):
        super().__init__(observation_space, action_space, seed, device)
        if not 0 <= gamma <= 1:
            raise ConfigError(f"gamma must be in [0, 1], got {gamma}")
        if target not in TARGETS:
            raise ConfigError(f"target must be one of {TARGETS}, got {target!r}")
        if slate_optimizer not in SLATE_OPTIMIZERS:
            raise ConfigError(f"slate_optimizer must be one of {SLATE_OPTIMIZERS}, got {slate_optimizer!r}")
        if not 0 < tau <= 1:
            raise ConfigError(f"tau must be in (0, 1], got {tau}")
        if not 0 <= epsilon_end <= 1 or not 0 <= epsilon_start <= 1:
            raise ConfigError(f"epsilons must be in [0, 1], got {epsilon_start} and {epsilon_end}")
        check_at_least(
            1,
            batch_size=batch_size,
            buffer_size=buffer_size,
            train_freq=train_freq,
            target_update_interval=target_update_interval,
            hidden=hidden,
            interaction_dim=interaction_dim,
        )
        self.settings: dict[str, Any] = {
            "gamma": gamma,
            "target": target,
            "slate_optimizer": slate_optimizer,
            "double_q": double_q,
            "click_model": click_model,
            "hidden": hidden,
            "interaction_dim": interaction_dim,
            "lr": lr,
            "click_lr": click_lr,
            "batch_size": batch_size,
            "buffer_size": buffer_size,
            "learning_starts": learning_starts,
            "train_freq": train_freq,
            "gradient_steps": gradient_steps,
            "target_update_interval": target_update_interval,
            "tau": tau,
            "epsilon_start": epsilon_start,
            "epsilon_end": epsilon_end,
            "exploration_fraction": exploration_fraction,
            "max_grad_norm": max_grad_norm,
            "reward_scale": reward_scale,
        }
        self.features = ObservationFeatures(observation_space, self.num_items)
        d, f, k = self.features.user_dim, self.features.item_dim, self.slate_size
        # Initial weights from a CPU generator of the agent's own (not torch's global one), so
        # that they do not depend on the device; the modules are built without weights first.
        init = torch.Generator().manual_seed(seed)
        with torch.device("meta"):
            q_network = ItemQNetwork(d, f, hidden, interaction_dim)
            q_target = ItemQNetwork(d, f, hidden, interaction_dim)
            click_model = ClickModel(d, f, k, hidden, interaction_dim, click_model)
        self.q_network = initialised(q_network, init).to(self.device)
        self.click_model = initialised(click_model, init).to(self.device)
        self.q_target = q_target.to_empty(device=self.device)
        self.q_target.load_state_dict(self.q_network.state_dict())
        # Exploration and replay sampling; act never draws from it.
        self.training_generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.training_data: dict[str, Any] = {"slates": 0}

    # ------------------------------------------------------------------ acting
    def _slates(self, user: torch.Tensor, items: torch.Tensor, network: ItemQNetwork) -> torch.Tensor:
        """(B, D), (B, N, F) -> (B, k) best slates by ``network``'s Q̄ and the click model."""
        logits, null_logit = self.click_model(user, items)
        values, null_value = network(user, items)
        method = self.settings["slate_optimizer"]
        return best_slates(logits, values, null_logit, null_value, self.click_model.position, method)

    def act(self, observation: Observation) -> torch.Tensor:
        """The best slate by the current networks (no exploration, no random draw)."""
        device = observation[self.features.item_key].device
        with torch.no_grad():
            user, items = self.features(observation, self.device)
            return self._slates(user, items, self.q_network).to(device)

    # ---------------------------------------------------------------- training
    def fit(self, env: Any, budget: int, seed: int, checkpoint: Checkpoint | None = None) -> None:
        """Train for ``budget`` shopper-steps (``env.num_envs`` per batched step) on ``env``,
        reset with ``seed``; ``checkpoint(steps)`` at evenly spaced points (the runner
        evaluates ``act`` there)."""
        env = as_torch_env(env, "SlateQAgent.fit")
        settings, k, generator = self.settings, self.slate_size, self.training_generator
        # No larger than what the budget can fill.
        capacity = min(settings["buffer_size"], budget + env.num_envs)
        buffer = ReplayBuffer(capacity, self.features, k, self.device)
        optimizers = (
            torch.optim.Adam(self.q_network.parameters(), lr=settings["lr"]),
            torch.optim.Adam(self.click_model.parameters(), lr=settings["click_lr"]),
        )
        curve = CurvePoints(budget, checkpoint)
        rows = env.num_envs
        decay_steps = max(1.0, settings["exploration_fraction"] * budget)
        observation, _ = env.reset(seed=seed)
        user, items = self.features(observation, self.device)
        pending: dict[str, torch.Tensor] | None = None  # last step's transitions, awaiting next_slate
        steps = updates = vector_steps = 0
        clicks = torch.zeros((), dtype=torch.long, device=self.device)
        ended = torch.zeros((), dtype=torch.long, device=self.device)
        # Summed since the last training_log row: Q loss, click loss (over gradient steps),
        # reward, clicks (over slates); read once per row, not once per step.
        window = torch.zeros(4, dtype=torch.float64, device=self.device)
        window_updates = window_slates = 0
        log_every, next_log = max(1, budget // LOG_ROWS), max(1, budget // LOG_ROWS)
        while steps < budget:
            fraction = min(1.0, steps / decay_steps)
            start, end = settings["epsilon_start"], settings["epsilon_end"]
            epsilon = start + fraction * (end - start)
            with torch.no_grad():
                greedy = self._slates(user, items, self.q_network)
            explore = torch.rand(rows, generator=generator, device=self.device) < epsilon
            exploring = random_slates(rows, self.num_candidates, k, generator)
            action = torch.where(explore[:, None], exploring, greedy)
            if pending is not None:
                # The slate shown next (SARSA's A'); where the session ended, the fallback.
                fallback, ended_before = pending.pop("fallback"), pending.pop("ended")
                pending["next_slate"] = torch.where(ended_before[:, None], fallback, action)
                buffer.add(pending)
            step = env.step(action.to(env.device))
            next_user, next_items = self.features(step.observation, self.device)
            terminated = step.terminated.to(self.device)
            truncated = step.truncated.to(self.device)
            done = terminated | truncated
            # Bootstrap from the state a truncated session was cut in, not the next shopper's.
            boot_user, boot_items = next_user, next_items
            fallback = action
            if bool(truncated.any()):
                final_user, final_items = self.features(step.final_observation, self.device)
                boot_user = torch.where(truncated[:, None], final_user, next_user)
                boot_items = torch.where(truncated[:, None, None], final_items, next_items)
                with torch.no_grad():
                    fallback = self._slates(boot_user, boot_items, self.q_network)
            step_clicks = step.clicks.to(self.device)
            any_click = step_clicks.any(1)
            pending = {
                "user": user,
                "slate_items": items.gather(1, action[..., None].expand(-1, -1, items.shape[2])),
                "choice": torch.where(any_click, step_clicks.float().argmax(1), k),
                "reward": step.reward.to(self.device, torch.float32) * settings["reward_scale"],
                "bootstrap": (~terminated).float(),
                "next_user": boot_user,
                "next_items": boot_items,
                "fallback": fallback,
                "ended": done,
            }
            clicks += step_clicks.sum()
            ended += done.sum()
            window[2:] += torch.stack([step.reward.to(self.device).sum(), step_clicks.sum()]).double()
            window_slates += rows
            user, items = next_user, next_items
            steps += rows
            vector_steps += 1
            learning = steps >= settings["learning_starts"] and buffer.size > 0
            if learning and vector_steps % settings["train_freq"] == 0:
                for _ in range(settings["gradient_steps"]):
                    window[:2] += self._update(buffer.sample(settings["batch_size"], generator), optimizers)
                    updates += 1
                    window_updates += 1
                    if updates % settings["target_update_interval"] == 0:
                        self._update_target()
            if steps >= next_log or steps >= budget:
                q_loss, click_loss, reward, slate_clicks = window.tolist()
                self.training_log.append(
                    {
                        "steps": float(steps),
                        "epsilon": epsilon,
                        "q_loss": q_loss / window_updates if window_updates else float("nan"),
                        "click_loss": click_loss / window_updates if window_updates else float("nan"),
                        "reward_per_slate": reward / window_slates,
                        "clicks_per_slate": slate_clicks / window_slates,
                        "gradient_steps": float(updates),
                    }
                )
                window.zero_()
                window_updates = window_slates = 0
                next_log = (steps // log_every + 1) * log_every
            curve.update(steps)
        curve.finish(steps)
        self.training_data = {
            "slates": steps,
            "sessions_ended": int(ended),
            "clicks": int(clicks),
            "gradient_steps": updates,
            "policy": (
                f"ε-greedy on its own slates, ε from {settings['epsilon_start']} to {settings['epsilon_end']}"
                f" over the first {settings['exploration_fraction']:.0%} of the budget"
            ),
        }

    @deterministic_algorithms()
    def _update(
        self, batch: dict[str, torch.Tensor], optimizers: tuple[torch.optim.Optimizer, ...]
    ) -> torch.Tensor:
        """One Adam step on Q̄'s item-wise TD error and one on the click model's
        cross-entropy; returns (2,) float64 [TD loss, click loss] before the steps."""
        settings = self.settings
        with torch.no_grad():
            next_user, next_items = batch["next_user"], batch["next_items"]
            logits, null_logit = self.click_model(next_user, next_items)  # (n, N), (n,)
            values, null_value = self.q_target(next_user, next_items)
            if settings["target"] == "sarsa":
                next_slate = batch["next_slate"]
            else:
                # Double Q-learning: the online Q̄ picks the slate, the target network values it.
                chooser = (
                    self.q_network(next_user, next_items) if settings["double_q"] else (values, null_value)
                )
                position, method = self.click_model.position, settings["slate_optimizer"]
                next_slate = best_slates(logits, chooser[0], null_logit, chooser[1], position, method)
            next_value = slate_values(
                logits.gather(1, next_slate) + self.click_model.position,
                values.gather(1, next_slate),
                null_logit,
                null_value,
            )
            target = batch["reward"] + settings["gamma"] * batch["bootstrap"] * next_value
        user, slate_items, choice = batch["user"], batch["slate_items"], batch["choice"]
        choice_loss = nn.functional.nll_loss(self.click_model.slate_log_probs(user, slate_items), choice)
        values, null_value = self.q_network(user, slate_items)
        # Q̄ of what was chosen: the clicked item, or ⊥ (column k) without a click.
        chosen = torch.cat([values, null_value[:, None]], 1).gather(1, choice[:, None]).squeeze(1)
        q_loss = nn.functional.mse_loss(chosen, target)
        for loss, network, optimizer in zip(
            (q_loss, choice_loss), (self.q_network, self.click_model), optimizers, strict=True
        ):
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), settings["max_grad_norm"])
            optimizer.step()
        return torch.stack([q_loss, choice_loss]).detach().double()

    def _update_target(self) -> None:
        tau = self.settings["tau"]
        with torch.no_grad():
            for target, online in zip(self.q_target.parameters(), self.q_network.parameters(), strict=True):
                target.lerp_(online, tau)

    # ------------------------------------------------------------ bookkeeping
    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": "SlateQ: item-wise Q̄ (MLP) + learned conditional-logit click model",
            "inputs": {
                "items": self.features.item_key,
                "user": [key for key, _ in self.features.user_keys]
                + (["mean of filled history_features", "history fill"] if self.features.history else []),
            },
            **self.settings,
            "training_data": self.training_data,
        }

    def state_dict(self) -> dict[str, Any]:
        def cpu(module: nn.Module) -> dict[str, torch.Tensor]:
            return {key: value.detach().cpu() for key, value in module.state_dict().items()}

        return {
            "q_network": cpu(self.q_network),
            "q_target": cpu(self.q_target),
            "click_model": cpu(self.click_model),
            "training_data": dict(self.training_data),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q_network.load_state_dict(state["q_network"])
        self.q_target.load_state_dict(state["q_target"])
        self.click_model.load_state_dict(state["click_model"])
        self.training_data = dict(state["training_data"])
