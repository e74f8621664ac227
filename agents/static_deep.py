"""Static deep recommenders trained only on logs collected in the simulator.

Three models, each fitted on a :class:`~shopgym.agents.logged_data.SlateLog` that a
stated logging policy collected on *train* shoppers, then frozen and served
greedily (the k candidates of highest predicted score, best first):

- ``bpr-mf`` (:class:`BPRMFAgent`): matrix factorisation between the session's
  clicked history and the item, trained with BPR on (clicked, shown-not-clicked)
  pairs of the same slate;
- ``neumf`` (:class:`NeuMFAgent`): a NeuMF-style click model (GMF and MLP branches)
  over (history context, item), trained with binary cross-entropy on every
  impression;
- ``gru4rec`` (:class:`GRU4RecAgent`): a GRU over the history of clicked items,
  trained on next-click prediction (a softmax over the items shown in the slate).

They learn item representations from catalogue IDs alone and never read the
World (DESIGN.md, "No circularity"). ``describe()`` names the log and the model's
family; :func:`same_family_as_world` says whether that family is the one of a
World's preference model (the runner knows the World, the agent does not).
"""

from __future__ import annotations

import itertools
import math
from abc import abstractmethod
from typing import Any, ClassVar

import torch
from gymnasium import spaces
from torch import nn

from shopgym.agents.base import Agent, Checkpoint, Observation, top_k
from shopgym.agents.logged_data import LOGGING_POLICIES, SlateLog, collect_log, make_logging_policy
from shopgym.agents.static_mf import SessionMF
from shopgym.envs.spaces import SlateSpace
from shopgym.simulator.determinism import deterministic_algorithms
from shopgym.simulator.errors import ConfigError

# The family of each World preference model (``World.model_name``), in the terms of
# the recommenders' ``model_family``: MF fitted with squared or BPR loss is one
# family; GMF, MLP and NeuMF are neural collaborative filtering.
WORLD_MODEL_FAMILIES: dict[str, str] = {"mf": "mf", "bpr": "mf", "gmf": "ncf", "mlp": "ncf", "neumf": "ncf"}


def same_family_as_world(model_family: str, world_model_name: str) -> bool:
    """Whether a recommender of ``model_family`` (its ``describe()["model_family"]``)
    shares the model family of a World whose preference model is ``world_model_name``
    (``World.model_name``, also the card's ``preference_model.model``): then it could
    recover the ground truth's form, and a result must say so."""
    return WORLD_MODEL_FAMILIES.get(world_model_name) == model_family


def _uniform_(module: nn.Module, bound: float, generator: torch.Generator) -> nn.Module:
    """Fill every parameter of ``module`` with U(-bound, bound) drawn from ``generator``
    (PyTorch's default for Linear and GRU layers, without its global random stream)."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_((2 * torch.rand(parameter.shape, generator=generator) - 1) * bound)
    return module


def _linear(inputs: int, outputs: int, generator: torch.Generator) -> nn.Linear:
    """A Linear layer initialised like PyTorch's (bound 1/sqrt(fan_in)) from ``generator``."""
    return _uniform_(nn.utils.skip_init(nn.Linear, inputs, outputs), 1 / math.sqrt(inputs), generator)


def _embedding(rows: int, dim: int, generator: torch.Generator, empty_row: bool = False) -> nn.Parameter:
    """(rows, dim) N(0, 0.1²) vectors; with ``empty_row`` one more, zero row for the
    empty history slot (ID ``M``), which masked pooling never reads."""
    table = 0.1 * torch.randn(rows + int(empty_row), dim, generator=generator)
    if empty_row:
        table[-1] = 0.0
    return nn.Parameter(table)


def _mean_context(table: torch.Tensor, history: torch.Tensor, num_items: int) -> torch.Tensor:
    """(B, H) history IDs -> (B, d) mean of ``table``'s rows over the filled slots
    (zeros for an empty history)."""
    filled = (history < num_items).float()
    context = (table[history] * filled[..., None]).sum(1)
    return context / filled.sum(1, keepdim=True).clamp(min=1.0)


class SessionNeuMF(nn.Module):
    """NeuMF (He et al. 2017) with the shopper replaced by the session's clicks.

    The context of a history h is the mean of its items' context vectors, one table
    for each branch; the logit of item i is
    ``b_i + w · [c_gmf(h) ⊙ p_gmf(i), MLP([c_mlp(h), p_mlp(i)])]``.

    Attributes:
        gmf_context, mlp_context: (M + 1, d), the last row (empty slot) zero.
        gmf_item, mlp_item: (M, d). item_bias: (M,).
        mlp: ReLU layers 2d -> layers[0] -> ... -> layers[-1]; output: Linear(d + layers[-1], 1).
    """

    def __init__(self, num_items: int, dim: int, layers: tuple[int, ...], generator: torch.Generator):
        super().__init__()
        self.num_items = num_items
        self.gmf_context = _embedding(num_items, dim, generator, empty_row=True)
        self.mlp_context = _embedding(num_items, dim, generator, empty_row=True)
        self.gmf_item = _embedding(num_items, dim, generator)
        self.mlp_item = _embedding(num_items, dim, generator)
        self.item_bias = nn.Parameter(torch.zeros(num_items))
        widths = (2 * dim, *layers)
        self.mlp = nn.Sequential(
            *(
                module
                for inputs, outputs in itertools.pairwise(widths)
                for module in (_linear(inputs, outputs, generator), nn.ReLU())
            )
        )
        self.output = _linear(dim + widths[-1], 1, generator)

    def forward(self, history: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, H) history IDs and (B, n) item IDs -> (B, n) click logits."""
        n = items.shape[1]
        gmf = _mean_context(self.gmf_context, history, self.num_items)[:, None, :] * self.gmf_item[items]
        context = _mean_context(self.mlp_context, history, self.num_items)[:, None, :].expand(-1, n, -1)
        mlp = self.mlp(torch.cat([context, self.mlp_item[items]], dim=-1))
        return self.output(torch.cat([gmf, mlp], dim=-1)).squeeze(-1) + self.item_bias[items]


class GRU4Rec(nn.Module):
    """GRU4Rec (Hidasi et al. 2016): a GRU reads the clicked items oldest first; the
    score of item i is ``b_i + h · q_i`` with h its last hidden state.

    Empty history slots (ID ``M``, at the front) leave the state unchanged, so an
    empty history has h = 0 and scores the item biases alone.

    Attributes:
        input_vector: (M + 1, d), the last row (empty slot) zero; cell: GRUCell(d, hidden).
        output_vector: (M, hidden). item_bias: (M,).
    """

    def __init__(self, num_items: int, dim: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.num_items = num_items
        self.input_vector = _embedding(num_items, dim, generator, empty_row=True)
        self.cell = _uniform_(nn.utils.skip_init(nn.GRUCell, dim, hidden), 1 / math.sqrt(hidden), generator)
        self.output_vector = _embedding(num_items, hidden, generator)
        self.item_bias = nn.Parameter(torch.zeros(num_items))

    def encode(self, history: torch.Tensor) -> torch.Tensor:
        """(B, H) history IDs, oldest first -> (B, hidden) state after the last click."""
        state = history.new_zeros((len(history), self.cell.hidden_size), dtype=torch.float32)
        for slot in history.T:  # H is small (10): a step per slot, masked where empty
            updated = self.cell(self.input_vector[slot], state)
            state = torch.where((slot < self.num_items)[:, None], updated, state)
        return state

    def forward(self, history: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, H) history IDs and (B, n) item IDs -> (B, n) next-click logits."""
        state = self.encode(history)
        return self.item_bias[items] + torch.einsum("bh,bnh->bn", state, self.output_vector[items])


class LoggedDataRecommender(Agent):
    """Common part of the static recommenders: collect a log on the train shoppers with
    the logging policy, fit the model on its slates, serve the top-k predicted scores.

    Every model maps (B, H) history IDs and (B, n) item IDs to (B, n) scores; a
    subclass builds it (:meth:`build_model`), says which logged slates teach it
    (:meth:`keeps`) and what it minimises on them (:meth:`loss`).

    Args:
        observation_space, action_space: the single shopper's (as every :class:`Agent`).
        seed: seeds the initial weights and the training shuffles (a CPU generator of
            their own, so that neither depends on the device) and the tie-breaks of
            ``act`` (``self.generator``, on the device). ``fit``'s ``seed`` seeds the
            logging policy and the log's environment.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``: where the model trains and scores.
        logging_policy: ``"random"``, ``"popularity"`` or ``"epsilon-greedy"``
            (:data:`~shopgym.agents.logged_data.LOGGING_POLICIES`), the policy that
            serves the train shoppers while the log is collected.
        logging_epsilon: exploration probability of the ε-greedy logging bandit.
        epochs: passes over the log's slates.
        batch_size: logged slates per gradient step.
        lr, weight_decay: Adam's learning rate and L2 penalty (the subclasses set their
            own default penalty, tuned on a Shopper-v1 log; see docs/static_recommenders.md).
    """

    trains_before_evaluation = True
    model_family: ClassVar[str]
    model_name: ClassVar[str]
    objective: ClassVar[str]

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        logging_policy: str = "random",
        logging_epsilon: float = 0.1,
        epochs: int = 20,
        batch_size: int = 256,
        lr: float = 0.01,
        weight_decay: float = 0.0,
    ):
        super().__init__(observation_space, action_space, seed, device)
        if logging_policy not in LOGGING_POLICIES:
            raise ConfigError(
                f"logging_policy must be one of {', '.join(LOGGING_POLICIES)}, got {logging_policy!r}"
            )
        if epochs < 1 or batch_size < 1 or not lr > 0 or not weight_decay >= 0:
            raise ConfigError(
                f"{self.name}: need epochs >= 1, batch_size >= 1, lr > 0, weight_decay >= 0; "
                f"got {epochs}, {batch_size}, {lr}, {weight_decay}"
            )
        self.logging_policy, self.logging_epsilon = logging_policy, logging_epsilon
        self.epochs, self.batch_size, self.lr, self.weight_decay = epochs, batch_size, lr, weight_decay
        # On the CPU, so that the initial weights and the shuffles do not depend on the device;
        # act() draws its tie-breaks from self.generator, never from this one.
        self.training_generator = torch.Generator().manual_seed(seed)
        self.model = self.build_model(self.training_generator).to(self.device)
        self.training_data: dict[str, Any] = self._training_data(slates=0, clicks=0)

    @abstractmethod
    def build_model(self, generator: torch.Generator) -> nn.Module:
        """The model, its weights drawn from ``generator`` (on the CPU)."""

    @abstractmethod
    def keeps(self, clicks: torch.Tensor) -> torch.Tensor:
        """(n, k) bool clicks of the logged slates -> (n,) bool, the slates trained on."""

    @abstractmethod
    def loss(self, scores: torch.Tensor, clicks: torch.Tensor) -> torch.Tensor:
        """(b, k) scores of the shown items and (b, k) bool clicks -> the scalar loss."""

    def hyperparameters(self) -> dict[str, Any]:
        """Every setting of the model and its training (for ``describe()``)."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
        }

    def _training_data(self, slates: int, clicks: int) -> dict[str, Any]:
        policy = LOGGING_POLICIES[self.logging_policy]
        if self.logging_policy == "epsilon-greedy":
            policy = f"{policy} (epsilon={self.logging_epsilon})"
        return {
            "source": "log collected in the simulator",
            "logging_policy": self.logging_policy,
            "logging_policy_detail": policy,
            "shoppers": "train",
            "slates": slates,
            "clicks": clicks,
        }

    def fit(self, env: Any, budget: int, seed: int, checkpoint: Checkpoint | None = None) -> None:
        """Log ``budget`` slates (at least) of the logging policy on ``env`` (train
        shoppers), reset with ``seed``, and train on them."""
        logger = make_logging_policy(
            self.logging_policy,
            self.observation_space,
            self.action_space,
            seed=seed,
            device=self.device,
            epsilon=self.logging_epsilon,
        )
        log = collect_log(env, logger, budget, seed=seed)
        losses = self.train_on(log)
        self.training_log = [{"epoch": float(epoch), "loss": loss} for epoch, loss in enumerate(losses, 1)]
        self.training_data = self._training_data(slates=len(log), clicks=int(log.clicks.sum()))
        if checkpoint is not None:  # trained offline: one point, after training
            checkpoint(len(log))

    @deterministic_algorithms()
    def train_on(self, log: SlateLog) -> list[float]:
        """Fit the model on the slates of ``log`` that :meth:`keeps`; returns the mean
        loss of each epoch (empty when no slate teaches anything)."""
        kept = self.keeps(log.clicks).to(log.clicks.device)
        history = log.history_ids[kept].to(self.device)
        shown = log.shown_ids[kept].to(self.device)
        clicks = log.clicks[kept].to(self.device)
        if len(shown) == 0:
            return []
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        losses = []
        for _ in range(self.epochs):
            order = torch.randperm(len(shown), generator=self.training_generator).to(self.device)
            total = 0.0
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                loss = self.loss(self.model(history[rows], shown[rows]), clicks[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(rows)
            losses.append(total / len(order))
        return losses

    def scores(self, observation: Observation) -> torch.Tensor:
        """(B, N) predicted scores of the candidates, on the agent's device."""
        with torch.no_grad():
            return self.model(
                observation["history_ids"].to(self.device), observation["candidate_ids"].to(self.device)
            )

    def act(self, observation: Observation) -> torch.Tensor:
        slates = top_k(self.scores(observation), self.slate_size, self.generator)
        return slates.to(observation["candidate_ids"].device)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model_name,
            "model_family": self.model_family,
            "objective": self.objective,
            "item_representation": "learned from catalogue IDs (embedding tables of size M)",
            "hyperparameters": self.hyperparameters(),
            "training_data": self.training_data,
        }

    def state_dict(self) -> dict[str, Any]:
        weights = {key: value.cpu() for key, value in self.model.state_dict().items()}
        return {"model": weights, "training_data": dict(self.training_data)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.training_data = dict(state["training_data"])


class BPRMFAgent(LoggedDataRecommender):
    """BPR-MF (Rendle et al. 2009) on a simulator log, with the session as the user.

    The "user" of the factorisation is the session's clicked history (the last H
    clicks, as static-mf reads it): the score of item i after history h is
    ``b_i + mean_{j in h} q_j · p_i`` (:class:`~shopgym.agents.static_mf.SessionMF`),
    so that test shoppers, never seen in training, get a representation from what
    they click. It is trained with BPR, ``-log σ(s_i - s_j)``, over every pair of a
    clicked item i and a shown-not-clicked item j of the same logged slate: the
    negatives are what the shopper saw and passed over, not unseen items.

    Args:
        dim: factor dimension d.
        weight_decay: Adam's L2 penalty; strong by default (1e-3), because a log has
            few clicks per item and the item vectors overfit them otherwise.
        (the others: :class:`LoggedDataRecommender`, with ``epochs`` 20)
    """

    name = "bpr-mf"
    model_family = "mf"
    model_name = "session BPR-MF (history-mean context · item vector + item bias)"
    objective = "BPR over (clicked, shown-not-clicked) pairs of each logged slate"

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        dim: int = 16,
        weight_decay: float = 1e-3,
        **training: Any,
    ):
        self.dim = dim
        super().__init__(observation_space, action_space, seed, device, weight_decay=weight_decay, **training)

    def build_model(self, generator: torch.Generator) -> nn.Module:
        return SessionMF(self.num_items, self.dim, generator)

    def keeps(self, clicks: torch.Tensor) -> torch.Tensor:
        # Only slates with a click and a non-click hold a pair.
        return clicks.any(1) & ~clicks.all(1)

    def loss(self, scores: torch.Tensor, clicks: torch.Tensor) -> torch.Tensor:
        pairs = clicks[:, :, None] & ~clicks[:, None, :]  # (b, k, k): i clicked, j not
        margin = scores[:, :, None] - scores[:, None, :]
        return nn.functional.softplus(-margin)[pairs].mean()

    def hyperparameters(self) -> dict[str, Any]:
        return {"dim": self.dim, **super().hyperparameters()}


class NeuMFAgent(LoggedDataRecommender):
    """A NeuMF-style click model on a simulator log, with the session as the user.

    :class:`SessionNeuMF`: GMF and MLP branches over (the mean of the history's
    context vectors, the item's vectors), fused by a linear layer, plus an item bias.
    Trained with binary cross-entropy on every impression of the log (clicked or
    not), it predicts the click probability of an item shown after a history.

    The shipped World is NeuMF: on it this recommender shares the ground truth's
    model family (``describe()["model_family"]`` is ``"ncf"``; see
    :func:`same_family_as_world`). It still never reads the World: it only fits
    the log's clicks.

    Args:
        dim: embedding dimension d of each branch.
        layers: widths of the MLP branch's hidden layers.
        epochs, weight_decay: 10 and 1e-4 by default: every impression is an example
            (k times BPR's), and longer or unpenalised training overfits the item vectors.
        (the others: :class:`LoggedDataRecommender`)
    """

    name = "neumf"
    model_family = "ncf"
    model_name = "session NeuMF (GMF + MLP over history-mean context and item)"
    objective = "binary cross-entropy on every logged impression (click or not)"

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        dim: int = 16,
        layers: tuple[int, ...] = (32, 16),
        epochs: int = 10,
        weight_decay: float = 1e-4,
        **training: Any,
    ):
        self.dim, self.layers = dim, tuple(layers)
        super().__init__(
            observation_space,
            action_space,
            seed,
            device,
            epochs=epochs,
            weight_decay=weight_decay,
            **training,
        )

    def build_model(self, generator: torch.Generator) -> nn.Module:
        return SessionNeuMF(self.num_items, self.dim, self.layers, generator)

    def keeps(self, clicks: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(clicks), dtype=torch.bool, device=clicks.device)

    def loss(self, scores: torch.Tensor, clicks: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(scores, clicks.float())

    def hyperparameters(self) -> dict[str, Any]:
        return {"dim": self.dim, "layers": list(self.layers), **super().hyperparameters()}


class GRU4RecAgent(LoggedDataRecommender):
    """GRU4Rec on a simulator log: a sequential model of the shopper's clicks.

    :class:`GRU4Rec` reads ``history_ids`` (the last H clicks, oldest first) and
    scores every item as the next click. It is trained on next-click prediction:
    for each logged slate with a click, the cross-entropy of the clicked item under
    a softmax over the k items shown (several clicks: the mean over them). The
    shown-not-clicked items are the negatives; a softmax over the whole catalogue
    would also learn how often the logging policy showed each item, not only what
    shoppers choose among what they see.

    Args:
        dim: item input embedding dimension.
        hidden: GRU state size (and output item vector dimension).
        weight_decay: Adam's L2 penalty (1e-4 by default).
        (the others: :class:`LoggedDataRecommender`, with ``epochs`` 20)
    """

    name = "gru4rec"
    model_family = "sequential"
    model_name = "GRU4Rec (GRU over the clicked history, dot product with item vectors + item bias)"
    objective = "next-click cross-entropy, softmax over the items shown in each logged slate"

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        dim: int = 16,
        hidden: int = 32,
        weight_decay: float = 1e-4,
        **training: Any,
    ):
        self.dim, self.hidden = dim, hidden
        super().__init__(observation_space, action_space, seed, device, weight_decay=weight_decay, **training)

    def build_model(self, generator: torch.Generator) -> nn.Module:
        return GRU4Rec(self.num_items, self.dim, self.hidden, generator)

    def keeps(self, clicks: torch.Tensor) -> torch.Tensor:
        return clicks.any(1)

    def loss(self, scores: torch.Tensor, clicks: torch.Tensor) -> torch.Tensor:
        log_probability = torch.log_softmax(scores, dim=1)
        clicked = clicks.float()
        return -((log_probability * clicked).sum(1) / clicked.sum(1)).mean()

    def hyperparameters(self) -> dict[str, Any]:
        return {"dim": self.dim, "hidden": self.hidden, **super().hyperparameters()}
