"""Stable-Baselines3 wrappers through which SB3's algorithms build valid slates.

A slate is k *distinct* candidates, but SB3's policies over the ``MultiDiscrete``
:class:`~shopgym.envs.spaces.SlateSpace` draw each position independently, so their
slates repeat items (a ``SlateError``), and DQN needs a ``Discrete`` action. These
``VecEnvWrapper`` s turn a slate into actions SB3 can take, batched over the B
shoppers of the wrapped ``VecEnv`` (NumPy over the batch, no loop over shoppers):

- :class:`ScoreVectorVecEnv`: a ``Box(N)`` of candidate scores; the k highest are
  shown, best first (PPO, A2C, SAC, TD3).
- :class:`SlotFillingVecEnv`: the slate is filled one position per sub-step with a
  ``Discrete(N)`` action under :meth:`~SlotFillingVecEnv.action_masks` (sb3-contrib's
  MaskablePPO); a repeated item is a ``SlateError``.
- :class:`RepairingSlotFillingVecEnv`: slot filling for algorithms that cannot mask
  (DQN, PPO, A2C): a repeated item is *replaced* by a rule, and its info says so.
  An invalid slate is never silently repaired unless a wrapper says so in its name.

All three observe the ``"features"`` observation (the ``Box`` entries; catalogue ID
entries, which SB3's ``MultiInputPolicy`` would one-hot encode, are dropped): wrap
``ShopperSB3VecEnv(..., observation="features")``, or any SB3 ``VecEnv`` of shopgym
shoppers (a ``DummyVecEnv`` of ``ShopperEnv`` s works too, only slower).

:class:`CandidateScorer` is a features extractor that scores every candidate row
with shared weights, and :func:`use_scores_as_head` makes those scores the policy's
logits, Gaussian means or Q-values, so a policy is not a flat MLP over N x F inputs.
docs/sb3.md says which algorithm goes with which wrapper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn
from torch import nn

from shopgym.envs.spaces import SlateSpace, feature_space
from shopgym.simulator.errors import ConfigError, SlateError

NumpyObservation = dict[str, np.ndarray]
# The keys slot filling adds to the observation.
CHOSEN_KEY, SLOT_KEY = "chosen", "slot"


def top_k_distinct(scores: np.ndarray, k: int) -> np.ndarray:
    """(B, k) int64 indices of the k highest of (B, N) scores per row, best first; equal
    scores go to the lower index first (a stable sort), so the result is deterministic.

    Raises:
        SlateError: a score is NaN or infinite (there is no order to show).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] < k:
        raise SlateError(f"expected (B, N >= {k}) scores, got shape {scores.shape}")
    if not np.isfinite(scores).all():
        rows = np.flatnonzero(~np.isfinite(scores).all(1)).tolist()
        raise SlateError(f"scores of rows {rows} are not finite: no slate can be ranked from them")
    # A stable ascending sort of the negated scores keeps equal scores in index order.
    return np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64)


def _slate_space(venv: VecEnv, wrapper: str) -> SlateSpace:
    """The single-shopper :class:`SlateSpace` of ``venv``, which must observe a ``Dict``."""
    slates = venv.action_space
    if not isinstance(slates, SlateSpace) or slates.num_shoppers is not None:
        raise ConfigError(
            f"{wrapper} wraps an SB3 VecEnv of shopgym shoppers, whose action space is a single-shopper "
            f"SlateSpace; got {slates}"
        )
    if not isinstance(venv.observation_space, spaces.Dict):
        raise ConfigError(f"{wrapper} needs a Dict observation, got {venv.observation_space}")
    return slates


class _SlateWrapper(VecEnvWrapper):
    """What the slate wrappers share: the wrapped env's slate size and candidates, and
    its ``"features"`` observation (the ``Box`` entries of its ``Dict`` observation)."""

    def __init__(
        self, venv: VecEnv, action_space: spaces.Space, observation_space: spaces.Dict | None = None
    ):
        slates = _slate_space(venv, type(self).__name__)
        self.slate_size = slates.slate_size
        self.num_candidates = slates.num_candidates
        self.features_space = feature_space(venv.observation_space)
        super().__init__(venv, observation_space or self.features_space, action_space)

    def features(self, observation: NumpyObservation) -> NumpyObservation:
        """The entries of a (batched or single) observation that the features space keeps."""
        return {key: observation[key] for key in self.features_space.spaces}


class ScoreVectorVecEnv(_SlateWrapper):
    """Slates from a ``Box(N)`` action of candidate scores: the k distinct candidates of
    highest score are shown, best first, equal scores by lower index
    (:func:`top_k_distinct`). Any finite score vector is a valid slate.

    For PPO, A2C, SAC, TD3 (SB3's algorithms for ``Box`` actions). The box is
    ``[-bound, bound]`` (SB3 recommends ``[-1, 1]``); PPO and A2C clip their samples to
    it before stepping, so scores beyond it tie, and ties go by index: a policy whose
    scores stay inside (:class:`CandidateScorer` with ``score_bound``) avoids that.

    Observation: the wrapped env's features (``candidate_features`` (N, F),
    ``history_features`` (H, F), ``step`` (1,), and ``session``, ``days_away`` with
    lifetimes). Rewards, dones and infos are the wrapped env's, every info with the
    ``slate`` (k,) int64 shown; ``terminal_observation`` holds the features too.
    """

    def __init__(self, venv: VecEnv, bound: float = 1.0):
        if not bound > 0:
            raise ConfigError(f"bound must be positive, got {bound}")
        num_candidates = _slate_space(venv, type(self).__name__).num_candidates
        super().__init__(venv, spaces.Box(-bound, bound, (num_candidates,), dtype=np.float32))
        self._slates: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        return self.features(self.venv.reset())

    def step_async(self, actions: np.ndarray) -> None:
        scores = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, self.num_candidates)
        self._slates = top_k_distinct(scores, self.slate_size)
        self.venv.step_async(self._slates)

    def step_wait(self) -> VecEnvStepReturn:
        observation, rewards, dones, infos = self.venv.step_wait()
        for index, info in enumerate(infos):
            info["slate"] = self._slates[index]
            if "terminal_observation" in info:
                info["terminal_observation"] = self.features(info["terminal_observation"])
        return self.features(observation), rewards, dones, infos


class SlotFillingVecEnv(_SlateWrapper):
    """The slate is built one position per sub-step: k ``Discrete(N)`` actions, the
    candidate for position 0, 1, ..., k - 1 (the first is shown first), make one slate.

    For sb3-contrib's MaskablePPO: :meth:`action_masks` (B, N) marks the candidates
    not yet in the slate, and ``env_method("action_masks")`` (what
    ``sb3_contrib.common.maskable.utils.get_action_masks`` calls) gives its rows. A
    candidate already in the slate is a :class:`SlateError` (never repaired; for
    algorithms that cannot mask, :class:`RepairingSlotFillingVecEnv`).

    Observation: the wrapped env's features, and the partial slate: ``chosen`` (N,)
    float32, 1 for the candidates already in it; ``slot`` (k,) float32, the one-hot
    index of the position the next action fills. Every shopper is at the same slot
    (the batch fills its slates in step), so one sub-step is one batched step.

    Sub-steps that do not complete the slate return reward 0, ``dones`` False and
    empty infos; the state they show has the same shopper features. The sub-step
    that completes it shows the slate to every shopper: the wrapped env's rewards,
    dones (and ``TimeLimit.truncated``) and infos, each with the ``slate`` (k,) shown;
    a ``terminal_observation`` is the features the session ended in, with an empty
    partial slate (``chosen`` zeros, slot 0). So an episode is k sub-steps per slate:
    a discount ``g`` per slate is ``g ** (1 / k)`` per sub-step, and ``VecMonitor``
    counts episode lengths in sub-steps.
    """

    def __init__(self, venv: VecEnv):
        slates = _slate_space(venv, type(self).__name__)
        observation_space = spaces.Dict(
            {
                **feature_space(venv.observation_space).spaces,
                CHOSEN_KEY: spaces.Box(0.0, 1.0, (slates.num_candidates,), dtype=np.float32),
                SLOT_KEY: spaces.Box(0.0, 1.0, (slates.slate_size,), dtype=np.float32),
            }
        )
        super().__init__(venv, spaces.Discrete(slates.num_candidates), observation_space)
        self._slates = np.zeros((self.num_envs, self.slate_size), dtype=np.int64)
        self._chosen = np.zeros((self.num_envs, self.num_candidates), dtype=bool)
        self._slot = 0
        self._features: NumpyObservation = {}
        self._actions: np.ndarray | None = None

    # ------------------------------------------------------------------ the partial slate

    def action_masks(self) -> np.ndarray:
        """(B, N) bool: the candidates that the current slot may take (not yet chosen)."""
        return ~self._chosen

    @staticmethod
    def partial_slate(
        features: NumpyObservation, chosen: np.ndarray, slot: int, slate_size: int
    ) -> NumpyObservation:
        """The (B, ...) observation of ``features`` with the partial slate: ``chosen``
        (B, N) bool and the index ``slot`` of the position to fill next."""
        one_hot = np.zeros((len(chosen), slate_size), dtype=np.float32)
        one_hot[:, slot] = 1.0
        return {**features, CHOSEN_KEY: chosen.astype(np.float32), SLOT_KEY: one_hot}

    def resolve(self, actions: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B,) actions for the current slot, given the (B, N) ``chosen`` so far -> the
        (B,) candidates placed and the (B,) bool rows whose action was replaced.

        Raises:
            SlateError: an action is out of range, or a candidate already chosen.
        """
        _check_range(actions, self.num_candidates)
        repeated = chosen[np.arange(len(actions)), actions]
        if repeated.any():
            rows = np.flatnonzero(repeated).tolist()
            raise SlateError(
                f"rows {rows} chose a candidate already in their slate ({type(self).__name__} masks those: "
                "use action_masks(), or RepairingSlotFillingVecEnv for algorithms that cannot mask)"
            )
        return actions, repeated

    def fill(
        self,
        features: NumpyObservation,
        choose: Callable[[NumpyObservation, np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """(B, k) slates for (B, ...) ``features``, built the way this wrapper builds
        them: ``choose(observation, masks)`` gives the (B,) actions of each slot, from
        the observation with the partial slate and the (B, N) action masks; the rule of
        :meth:`resolve` applies. What an agent trained on the wrapper acts with."""
        rows = len(next(iter(features.values())))
        chosen = np.zeros((rows, self.num_candidates), dtype=bool)
        slates = np.zeros((rows, self.slate_size), dtype=np.int64)
        for slot in range(self.slate_size):
            observation = self.partial_slate(features, chosen, slot, self.slate_size)
            actions = np.asarray(choose(observation, ~chosen), dtype=np.int64).reshape(rows)
            placed, _ = self.resolve(actions, chosen)
            slates[:, slot] = placed
            chosen[np.arange(rows), placed] = True
        return slates

    # ------------------------------------------------------------------ VecEnv

    def reset(self) -> VecEnvObs:
        self._features = self.features(self.venv.reset())
        self._start_slates()
        return self._observation()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs).astype(np.int64)

    def step_wait(self) -> VecEnvStepReturn:
        placed, replaced = self.resolve(self._actions, self._chosen)
        self._slates[:, self._slot] = placed
        self._chosen[np.arange(self.num_envs), placed] = True
        self._slot += 1
        if self._slot < self.slate_size:
            rewards = np.zeros(self.num_envs, dtype=np.float32)
            dones = np.zeros(self.num_envs, dtype=bool)
            infos = [self._sub_step_info(bool(replaced[index])) for index in range(self.num_envs)]
            return self._observation(), rewards, dones, infos
        slates = self._slates.copy()
        observation, rewards, dones, infos = self.venv.step(slates)
        empty = np.zeros(self.num_candidates, dtype=bool)
        for index, info in enumerate(infos):
            info.update(self._sub_step_info(bool(replaced[index])))
            info["slate"] = slates[index]
            if "terminal_observation" in info:
                terminal = self.features(info["terminal_observation"])
                # The state the session ended in, before any position of a next slate.
                single = {key: value[None] for key, value in terminal.items()}
                batch = self.partial_slate(single, empty[None], 0, self.slate_size)
                info["terminal_observation"] = {key: value[0] for key, value in batch.items()}
        self._features = self.features(observation)
        self._start_slates()
        return self._observation(), rewards, dones, infos

    def _sub_step_info(self, replaced: bool) -> dict[str, Any]:
        """A sub-step's own info (none here; the repairing wrapper reports its repairs)."""
        return {}

    def _start_slates(self) -> None:
        self._chosen[:] = False
        self._slates[:] = 0
        self._slot = 0

    def _observation(self) -> NumpyObservation:
        return self.partial_slate(self._features, self._chosen, self._slot, self.slate_size)

    # The masks are the wrapper's, not the sub-environments': answer for them here
    # rather than asking the wrapped env (which has no action_masks).
    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[index] for index in self._get_indices(indices)]
        return self.venv.env_method(method_name, *method_args, indices=indices, **method_kwargs)

    def has_attr(self, attr_name: str) -> bool:
        return attr_name == "action_masks" or self.venv.has_attr(attr_name)


class RepairingSlotFillingVecEnv(SlotFillingVecEnv):
    """Slot filling that *repairs* a repeated item, for algorithms that cannot mask
    (DQN; PPO and A2C without masks).

    The rule: a candidate ``a`` already in the slate is replaced by the first candidate
    not yet in it at or after ``a`` in index order, wrapping around (``a + 1``,
    ``a + 2``, ..., ``N - 1``, ``0``, ...). The replacement depends only on the
    action and the partial slate, so every action keeps a well-defined effect and a
    Q-value to learn. The sub-step's info has ``repaired`` (bool), True where it was
    replaced (on the completing sub-step too); add ``repeat_penalty`` to charge for it.

    Args:
        venv: the SB3 VecEnv of shoppers.
        repeat_penalty: subtracted from the reward of a sub-step whose action was
            repaired (0 by default: the repair is then free, and rewards of sub-steps
            that do not complete the slate are 0).

    Everything else is as :class:`SlotFillingVecEnv` (``action_masks`` still works).
    """

    def __init__(self, venv: VecEnv, repeat_penalty: float = 0.0):
        super().__init__(venv)
        if repeat_penalty < 0:
            raise ConfigError(f"repeat_penalty must be >= 0, got {repeat_penalty}")
        self.repeat_penalty = float(repeat_penalty)

    def resolve(self, actions: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B,) actions -> (B,) candidates placed (a repeat replaced by the rule above)
        and the (B,) bool rows that were replaced. Out-of-range actions stay errors."""
        _check_range(actions, self.num_candidates)
        rows = np.arange(len(actions))
        # Candidates in the order a, a + 1, ... (mod N); the first free one is placed.
        # A free action is its own first free candidate, so this leaves it unchanged;
        # fewer than k are chosen before the last slot, so a free one always exists.
        order = (actions[:, None] + np.arange(self.num_candidates)) % self.num_candidates
        first_free = (~chosen[rows[:, None], order]).argmax(1)
        placed = order[rows, first_free]
        return placed, placed != actions

    def step_wait(self) -> VecEnvStepReturn:
        observation, rewards, dones, infos = super().step_wait()
        if self.repeat_penalty:
            repaired = np.array([info["repaired"] for info in infos])
            rewards = (rewards - self.repeat_penalty * repaired).astype(np.float32)
        return observation, rewards, dones, infos

    def _sub_step_info(self, replaced: bool) -> dict[str, Any]:
        return {"repaired": replaced}


def _check_range(actions: np.ndarray, num_candidates: int) -> None:
    """Raise :class:`SlateError` unless every (B,) action is a candidate index."""
    outside = (actions < 0) | (actions >= num_candidates)
    if outside.any():
        rows = np.flatnonzero(outside).tolist()
        raise SlateError(f"actions of rows {rows} are not candidate indices in [0, {num_candidates})")


# ---------------------------------------------------------------------- policies


class CandidateScorer(BaseFeaturesExtractor):
    """Scores each candidate with one network shared by all N candidate rows.

    A context vector is built from the shopper's history (the mean features of the
    non-empty history rows, and the history's fill), the scalars (``step``,
    ``session``, ``days_away``, each divided by its observation bound) and, under slot
    filling, the slot one-hot and the mean features of the candidates already chosen.
    Each candidate's row of features, its ``chosen`` flag and the context then go
    through the same MLP to one score.

    Output (B, N + summary_dim): the N scores (B, N), candidate order; then a
    summary of the state (the context and the mean candidate embedding) for the
    value function and critics. :func:`use_scores_as_head` makes the scores the
    policy's output directly; without it SB3 puts its own layers on all of it.

    Args:
        observation_space: a features ``Dict`` (``candidate_features`` (N, F),
            ``history_features`` (H, F), (1,) scalars; ``chosen`` (N,), ``slot`` (k,)
            under slot filling).
        hidden: width of the shared MLP and the context.
        summary_dim: size of the state summary after the scores.
        score_bound: scores squashed into ``(-score_bound, score_bound)`` by tanh, so a
            Gaussian mean stays inside a ``Box`` action (score vectors); ``None``:
            unbounded (logits, Q-values).
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        hidden: int = 64,
        summary_dim: int = 16,
        score_bound: float | None = None,
    ):
        candidates = observation_space["candidate_features"]
        num_candidates, num_features = candidates.shape
        super().__init__(observation_space, features_dim=num_candidates + summary_dim)
        self.num_candidates = num_candidates
        self.score_bound = score_bound
        rows = ("candidate_features", "history_features", CHOSEN_KEY, SLOT_KEY)
        self.scalar_keys = [
            key for key, space in observation_space.spaces.items() if key not in rows and space.shape == (1,)
        ]
        # Dividing a scalar by its (finite) upper bound keeps it in [0, 1]; an unbounded one is log1p'd.
        scales = [float(observation_space[key].high[0]) for key in self.scalar_keys]
        self.register_buffer(
            "scalar_scale",
            torch.tensor([s if np.isfinite(s) and s > 0 else 0.0 for s in scales], dtype=torch.float32),
        )
        self.has_history = "history_features" in observation_space.spaces
        self.slot_fill = CHOSEN_KEY in observation_space.spaces
        slate_size = observation_space[SLOT_KEY].shape[0] if SLOT_KEY in observation_space.spaces else 0
        context_inputs = (
            (num_features + 1 if self.has_history else 0)
            + len(self.scalar_keys)
            + (slate_size + num_features if self.slot_fill else 0)
        )
        self.context = nn.Sequential(nn.Linear(max(context_inputs, 1), hidden), nn.ReLU())
        self.candidate = nn.Sequential(
            nn.Linear(num_features + 1 + hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.score = nn.Linear(hidden, 1)
        self.summary = nn.Sequential(nn.Linear(2 * hidden, summary_dim), nn.ReLU())

    def forward(self, observation: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, ...) observations -> (B, N + summary_dim): N candidate scores, the summary."""
        candidates = observation["candidate_features"]  # (B, N, F)
        rows = len(candidates)
        chosen = observation.get(CHOSEN_KEY, torch.zeros(candidates.shape[:2], device=candidates.device))
        parts = []
        if self.has_history:
            history = observation["history_features"]  # (B, H, F); empty rows are zeros
            filled = (history != 0).any(-1, keepdim=True).float()  # (B, H, 1)
            count = filled.sum(1)  # (B, 1)
            parts += [(history * filled).sum(1) / count.clamp(min=1.0), count / history.shape[1]]
        if self.scalar_keys:
            scalars = torch.cat([observation[key] for key in self.scalar_keys], dim=1)  # (B, S)
            bounded = self.scalar_scale > 0
            scale = torch.where(bounded, self.scalar_scale, torch.ones_like(self.scalar_scale))
            parts.append(torch.where(bounded, scalars / scale, torch.log1p(scalars.clamp(min=0.0))))
        if self.slot_fill:
            weights = chosen[..., None]  # (B, N, 1)
            picked = (candidates * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            parts += [observation[SLOT_KEY], picked]
        inputs = torch.cat(parts, dim=1) if parts else candidates.new_zeros(rows, 1)
        context = self.context(inputs)  # (B, hidden)
        per_candidate = torch.cat(
            [candidates, chosen[..., None], context[:, None, :].expand(-1, self.num_candidates, -1)], dim=2
        )
        embedding = self.candidate(per_candidate)  # (B, N, hidden), the same weights for every row
        scores = self.score(embedding).squeeze(-1)  # (B, N)
        if self.score_bound is not None:
            scores = self.score_bound * torch.tanh(scores)
        summary = self.summary(torch.cat([context, embedding.mean(1)], dim=1))
        return torch.cat([scores, summary], dim=1)


def use_scores_as_head(model: Any, num_candidates: int) -> None:
    """Make the first ``num_candidates`` features (:class:`CandidateScorer`'s scores) the
    policy's output: the layer from the latent to the action (PPO/A2C/MaskablePPO's
    ``action_net``: logits or Gaussian means; DQN's Q-value layer and its target;
    SAC/TD3's actor mean layer) is set to ``[I | 0]`` with no bias and frozen.

    The policy's ``net_arch`` for that output must be empty (``pi=[]``; DQN ``[]``;
    SAC/TD3 ``pi=[]``) so the latent *is* the features. The frozen weights are part
    of the policy's ``state_dict`` (and of SB3's zip); SB3's ``load`` does not
    restore the freezing, so call this again on a loaded model before training it on.

    Raises:
        ConfigError: the model has none of those heads, or its latent is not the features.
    """
    policy = model.policy
    # (head, the module whose features extractor feeds it)
    heads: list[tuple[nn.Module, nn.Module]] = []
    if hasattr(policy, "action_net"):  # on-policy actor-critic (PPO, A2C, MaskablePPO)
        heads.append((policy.action_net, policy))
    elif hasattr(policy, "q_net"):  # DQN: the online and the target network
        heads += [(_last_linear(network.q_net), network) for network in (policy.q_net, policy.q_net_target)]
    elif hasattr(policy, "actor"):  # SAC, TD3
        actors = [policy.actor] + ([policy.actor_target] if hasattr(policy, "actor_target") else [])
        heads += [(_last_linear(actor.mu), actor) for actor in actors]
    if not heads or not all(isinstance(head, nn.Linear) for head, _ in heads):
        raise ConfigError(f"no action head to tie to the candidate scores in {type(policy).__name__}")
    for head, owner in heads:
        extractor = getattr(owner, "pi_features_extractor", None) or owner.features_extractor
        if not isinstance(extractor, CandidateScorer):
            raise ConfigError(
                "use_scores_as_head needs the CandidateScorer features extractor, "
                f"got {type(extractor).__name__}"
            )
        if head.out_features != num_candidates or head.in_features != extractor.features_dim:
            raise ConfigError(
                f"{type(policy).__name__}'s head maps {head.in_features} -> {head.out_features}, not the "
                f"{extractor.features_dim} features to {num_candidates} scores: its net_arch must be empty "
                "so that the latent is the features"
            )
        with torch.no_grad():
            head.weight.zero_()
            head.weight[:, :num_candidates] = torch.eye(num_candidates)
            if head.bias is not None:
                head.bias.zero_()
        head.requires_grad_(False)


def _last_linear(module: nn.Module) -> nn.Module:
    """The last ``nn.Linear`` of a ``Sequential`` (the module itself if it is one)."""
    if isinstance(module, nn.Linear):
        return module
    linears = [layer for layer in module.modules() if isinstance(layer, nn.Linear)]
    return linears[-1] if linears else module
