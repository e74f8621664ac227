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

:class:`ScoreVector`, :class:`SlotFilling` and :class:`RepairingSlotFilling` are their
single-env twins: ``gymnasium.Wrapper`` s over one shopgym shopper env
(:class:`~shopgym.envs.shopper.ShopperEnv`), for what takes a single ``gymnasium.Env``
(Gymnasium's and SB3's env checkers, SB3's ``DummyVecEnv``/``SubprocVecEnv``, other
libraries). Both kinds apply the same module-level rules, written once on arrays with a
leading batch axis (the single wrappers use B = 1): :func:`top_k_distinct`,
:func:`refuse_repeats`, :func:`repair_repeats`, :func:`charge_repairs`,
:func:`partial_slate` and :class:`PartialSlates`. A ``DummyVecEnv`` of single wrappers
gives what the Vec wrapper gives over the same shoppers; the batched Vec wrappers are
faster.

All of them observe the ``"features"`` observation (the ``Box`` entries; catalogue ID
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
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn
from torch import nn

from shopgym.envs.spaces import SlateSpace, feature_space
from shopgym.simulator.errors import ConfigError, SlateError

NumpyObservation = dict[str, np.ndarray]
# The keys slot filling adds to the observation.
CHOSEN_KEY, SLOT_KEY = "chosen", "slot"
# (B,) actions and the (B, N) candidates chosen so far -> (B,) candidates placed, (B,) bool replaced.
Resolve = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


# ------------------------------------------------------------------ the rules, on (B, ...) arrays


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


def score_slates(actions: Any, rows: int, num_candidates: int, slate_size: int) -> np.ndarray:
    """(B, k) slates of the score-vector wrappers from (B, N) (or B * N) score actions."""
    scores = np.asarray(actions, dtype=np.float64).reshape(rows, num_candidates)
    return top_k_distinct(scores, slate_size)


def slot_filling_space(features: spaces.Dict, num_candidates: int, slate_size: int) -> spaces.Dict:
    """The observation space of slot filling: the features and the partial slate."""
    return spaces.Dict(
        {
            **features.spaces,
            CHOSEN_KEY: spaces.Box(0.0, 1.0, (num_candidates,), dtype=np.float32),
            SLOT_KEY: spaces.Box(0.0, 1.0, (slate_size,), dtype=np.float32),
        }
    )


def partial_slate(
    features: NumpyObservation, chosen: np.ndarray, slot: int, slate_size: int
) -> NumpyObservation:
    """The (B, ...) observation of (B, ...) ``features`` with the partial slate:
    ``chosen`` (B, N) bool and the index ``slot`` of the position to fill next. Every
    array is new (the features are copied), so no two observations share memory."""
    one_hot = np.zeros((len(chosen), slate_size), dtype=np.float32)
    one_hot[:, slot] = 1.0
    copies = {key: np.array(value) for key, value in features.items()}
    return {**copies, CHOSEN_KEY: chosen.astype(np.float32), SLOT_KEY: one_hot}


def slot_actions(actions: Any, rows: int) -> np.ndarray:
    """(B,) int64 slot actions from what an algorithm sends (B ints, or one for B = 1)."""
    return np.asarray(actions).reshape(rows).astype(np.int64)


def refuse_repeats(
    actions: np.ndarray, chosen: np.ndarray, wrapper: str, alternative: str
) -> tuple[np.ndarray, np.ndarray]:
    """Strict slot filling: (B,) actions, given the (B, N) ``chosen`` so far -> the (B,)
    candidates placed (the actions) and the (B,) bool rows replaced (none).

    Raises:
        SlateError: an action is out of range, or a candidate already chosen (the message
            names ``wrapper`` and its repairing ``alternative``).
    """
    _check_range(actions, chosen.shape[1])
    repeated = chosen[np.arange(len(actions)), actions]
    if repeated.any():
        rows = np.flatnonzero(repeated).tolist()
        raise SlateError(
            f"rows {rows} chose a candidate already in their slate ({wrapper} masks those: "
            f"use action_masks(), or {alternative} for algorithms that cannot mask)"
        )
    return actions, repeated


def repair_repeats(actions: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repairing slot filling: (B,) actions -> (B,) candidates placed, a candidate ``a``
    already in the (B, N) ``chosen`` replaced by the first free one at or after ``a`` in
    index order, wrapping around; and the (B,) bool rows that were replaced.

    Raises:
        SlateError: an action is out of range (that stays an error).
    """
    num_candidates = chosen.shape[1]
    _check_range(actions, num_candidates)
    rows = np.arange(len(actions))
    # Candidates in the order a, a + 1, ... (mod N); the first free one is placed.
    # A free action is its own first free candidate, so this leaves it unchanged;
    # fewer than k are chosen before the last slot, so a free one always exists.
    order = (actions[:, None] + np.arange(num_candidates)) % num_candidates
    first_free = (~chosen[rows[:, None], order]).argmax(1)
    placed = order[rows, first_free]
    return placed, placed != actions


def charge_repairs(rewards: Any, repaired: np.ndarray, repeat_penalty: float) -> np.ndarray:
    """(B,) float32 rewards less ``repeat_penalty`` for each (B,) repaired sub-step."""
    return (np.asarray(rewards) - repeat_penalty * repaired).astype(np.float32)


def _check_range(actions: np.ndarray, num_candidates: int) -> None:
    """Raise :class:`SlateError` unless every (B,) action is a candidate index."""
    outside = (actions < 0) | (actions >= num_candidates)
    if outside.any():
        rows = np.flatnonzero(outside).tolist()
        raise SlateError(f"actions of rows {rows} are not candidate indices in [0, {num_candidates})")


class PartialSlates:
    """B slates filled one position per sub-step, all at the same slot: what slot
    filling keeps between sub-steps (the Vec wrappers with B shoppers, the single ones
    with B = 1). The arrays are updated in place."""

    def __init__(self, rows: int, num_candidates: int, slate_size: int):
        self.slate_size = slate_size
        self.chosen = np.zeros((rows, num_candidates), dtype=bool)  # (B, N): in the slate so far
        self.slates = np.zeros((rows, slate_size), dtype=np.int64)  # (B, k): positions < slot are set
        self.slot = 0

    def start(self) -> None:
        """Empty slates, at slot 0."""
        self.chosen[:] = False
        self.slates[:] = 0
        self.slot = 0

    @property
    def complete(self) -> bool:
        """Every position is filled."""
        return self.slot == self.slate_size

    def masks(self) -> np.ndarray:
        """(B, N) bool: the candidates that the current slot may take (not yet chosen)."""
        return ~self.chosen

    def place(self, placed: np.ndarray) -> None:
        """Put the (B,) candidates ``placed`` at the current slot and move to the next."""
        self.slates[:, self.slot] = placed
        self.chosen[np.arange(len(placed)), placed] = True
        self.slot += 1

    def observation(self, features: NumpyObservation) -> NumpyObservation:
        """The (B, ...) ``features`` with these partial slates (:func:`partial_slate`)."""
        return partial_slate(features, self.chosen, self.slot, self.slate_size)


def fill_slates(
    features: NumpyObservation,
    choose: Callable[[NumpyObservation, np.ndarray], np.ndarray],
    resolve: Resolve,
    num_candidates: int,
    slate_size: int,
) -> np.ndarray:
    """(B, k) slates for (B, ...) ``features``, filled slot by slot: ``choose(observation,
    masks)`` gives the (B,) actions of each slot, from the observation with the partial
    slate and the (B, N) action masks, and ``resolve`` places them."""
    rows = len(next(iter(features.values())))
    partial = PartialSlates(rows, num_candidates, slate_size)
    while not partial.complete:
        actions = slot_actions(choose(partial.observation(features), partial.masks()), rows)
        placed, _ = resolve(actions, partial.chosen)
        partial.place(placed)
    return partial.slates


def _slate_space(env: Any, wrapper: str, wraps: str) -> SlateSpace:
    """The single-shopper :class:`SlateSpace` of ``env`` (a VecEnv, or a single env),
    which must observe a ``Dict``."""
    slates = env.action_space
    if not isinstance(slates, SlateSpace) or slates.num_shoppers is not None:
        raise ConfigError(
            f"{wrapper} wraps {wraps} of shopgym shoppers, whose action space is a single-shopper "
            f"SlateSpace; got {slates}"
        )
    if not isinstance(env.observation_space, spaces.Dict):
        raise ConfigError(f"{wrapper} needs a Dict observation, got {env.observation_space}")
    return slates


def _keep_features(observation: NumpyObservation, space: spaces.Dict) -> NumpyObservation:
    """The entries of a (batched or single) observation that the features ``space`` keeps."""
    return {key: observation[key] for key in space.spaces}


# ------------------------------------------------------------------ batched: SB3 VecEnvWrappers


class _SlateWrapper(VecEnvWrapper):
    """What the slate wrappers share: the wrapped env's slate size and candidates, and
    its ``"features"`` observation (the ``Box`` entries of its ``Dict`` observation)."""

    def __init__(
        self, venv: VecEnv, action_space: spaces.Space, observation_space: spaces.Dict | None = None
    ):
        slates = _slate_space(venv, type(self).__name__, "an SB3 VecEnv")
        self.slate_size = slates.slate_size
        self.num_candidates = slates.num_candidates
        self.features_space = feature_space(venv.observation_space)
        super().__init__(venv, observation_space or self.features_space, action_space)

    def features(self, observation: NumpyObservation) -> NumpyObservation:
        """The entries of a (batched or single) observation that the features space keeps."""
        return _keep_features(observation, self.features_space)


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
    :class:`ScoreVector` is the single-env twin.
    """

    def __init__(self, venv: VecEnv, bound: float = 1.0):
        _check_bound(bound)
        num_candidates = _slate_space(venv, type(self).__name__, "an SB3 VecEnv").num_candidates
        super().__init__(venv, spaces.Box(-bound, bound, (num_candidates,), dtype=np.float32))
        self._slates: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        return self.features(self.venv.reset())

    def step_async(self, actions: np.ndarray) -> None:
        self._slates = score_slates(actions, self.num_envs, self.num_candidates, self.slate_size)
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
    counts episode lengths in sub-steps. :class:`SlotFilling` is the single-env twin.
    """

    # The wrapper named in the SlateError of a repeat, for algorithms that cannot mask.
    repairing_twin: ClassVar[str] = "RepairingSlotFillingVecEnv"

    def __init__(self, venv: VecEnv):
        slates = _slate_space(venv, type(self).__name__, "an SB3 VecEnv")
        observation_space = slot_filling_space(
            feature_space(venv.observation_space), slates.num_candidates, slates.slate_size
        )
        super().__init__(venv, spaces.Discrete(slates.num_candidates), observation_space)
        self._partial = PartialSlates(self.num_envs, self.num_candidates, self.slate_size)
        self._features: NumpyObservation = {}
        self._actions: np.ndarray | None = None

    # ------------------------------------------------------------------ the partial slate

    def action_masks(self) -> np.ndarray:
        """(B, N) bool: the candidates that the current slot may take (not yet chosen)."""
        return self._partial.masks()

    # The observation with a partial slate (:func:`partial_slate`), as a static method.
    partial_slate = staticmethod(partial_slate)

    def resolve(self, actions: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B,) actions for the current slot, given the (B, N) ``chosen`` so far -> the
        (B,) candidates placed and the (B,) bool rows whose action was replaced.

        Raises:
            SlateError: an action is out of range, or a candidate already chosen.
        """
        return refuse_repeats(actions, chosen, type(self).__name__, self.repairing_twin)

    def fill(
        self,
        features: NumpyObservation,
        choose: Callable[[NumpyObservation, np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """(B, k) slates for (B, ...) ``features``, built the way this wrapper builds
        them: ``choose(observation, masks)`` gives the (B,) actions of each slot, from
        the observation with the partial slate and the (B, N) action masks; the rule of
        :meth:`resolve` applies. What an agent trained on the wrapper acts with."""
        return fill_slates(features, choose, self.resolve, self.num_candidates, self.slate_size)

    # ------------------------------------------------------------------ VecEnv

    def reset(self) -> VecEnvObs:
        self._features = self.features(self.venv.reset())
        self._partial.start()
        return self._observation()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = slot_actions(actions, self.num_envs)

    def step_wait(self) -> VecEnvStepReturn:
        placed, replaced = self.resolve(self._actions, self._partial.chosen)
        self._partial.place(placed)
        if not self._partial.complete:
            rewards = np.zeros(self.num_envs, dtype=np.float32)
            dones = np.zeros(self.num_envs, dtype=bool)
            infos = [self._sub_step_info(bool(replaced[index])) for index in range(self.num_envs)]
            return self._observation(), rewards, dones, infos
        slates = self._partial.slates.copy()
        observation, rewards, dones, infos = self.venv.step(slates)
        empty = np.zeros((1, self.num_candidates), dtype=bool)
        for index, info in enumerate(infos):
            info.update(self._sub_step_info(bool(replaced[index])))
            info["slate"] = slates[index]
            if "terminal_observation" in info:
                terminal = self.features(info["terminal_observation"])
                # The state the session ended in, before any position of a next slate.
                single = {key: value[None] for key, value in terminal.items()}
                batch = partial_slate(single, empty, 0, self.slate_size)
                info["terminal_observation"] = {key: value[0] for key, value in batch.items()}
        self._features = self.features(observation)
        self._partial.start()
        return self._observation(), rewards, dones, infos

    def _sub_step_info(self, replaced: bool) -> dict[str, Any]:
        """A sub-step's own info (none here; the repairing wrapper reports its repairs)."""
        return {}

    def _observation(self) -> NumpyObservation:
        return self._partial.observation(self._features)

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

    The rule (:func:`repair_repeats`): a candidate ``a`` already in the slate is
    replaced by the first candidate not yet in it at or after ``a`` in index order,
    wrapping around (``a + 1``, ``a + 2``, ..., ``N - 1``, ``0``, ...). The
    replacement depends only on the action and the partial slate, so every action
    keeps a well-defined effect and a Q-value to learn. The sub-step's info has
    ``repaired`` (bool), True where it was replaced (on the completing sub-step too);
    add ``repeat_penalty`` to charge for it.

    Args:
        venv: the SB3 VecEnv of shoppers.
        repeat_penalty: subtracted from the reward of a sub-step whose action was
            repaired (0 by default: the repair is then free, and rewards of sub-steps
            that do not complete the slate are 0).

    Everything else is as :class:`SlotFillingVecEnv` (``action_masks`` still works).
    :class:`RepairingSlotFilling` is the single-env twin.
    """

    def __init__(self, venv: VecEnv, repeat_penalty: float = 0.0):
        super().__init__(venv)
        self.repeat_penalty = _check_penalty(repeat_penalty)

    def resolve(self, actions: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B,) actions -> (B,) candidates placed (a repeat replaced by the rule above)
        and the (B,) bool rows that were replaced. Out-of-range actions stay errors."""
        return repair_repeats(actions, chosen)

    def step_wait(self) -> VecEnvStepReturn:
        observation, rewards, dones, infos = super().step_wait()
        if self.repeat_penalty:
            repaired = np.array([info["repaired"] for info in infos])
            rewards = charge_repairs(rewards, repaired, self.repeat_penalty)
        return observation, rewards, dones, infos

    def _sub_step_info(self, replaced: bool) -> dict[str, Any]:
        return {"repaired": replaced}


def _check_bound(bound: float) -> None:
    if not bound > 0:
        raise ConfigError(f"bound must be positive, got {bound}")


def _check_penalty(repeat_penalty: float) -> float:
    if not repeat_penalty >= 0:
        raise ConfigError(f"repeat_penalty must be >= 0, got {repeat_penalty}")
    return float(repeat_penalty)


# ------------------------------------------------------------------ single: gymnasium.Wrappers


class _SingleSlateWrapper(gym.Wrapper, RecordConstructorArgs):
    """What the single-env slate wrappers share: the wrapped env's slate size and
    candidates, and its ``"features"`` observation. They record their constructor
    arguments, so an env from ``gymnasium.make`` keeps a ``spec`` that rebuilds them."""

    def __init__(self, env: gym.Env, **constructor_args: Any):
        # Before gym.Wrapper.__init__, as Gymnasium asks (the first call's arguments are kept).
        RecordConstructorArgs.__init__(self, **constructor_args)
        gym.Wrapper.__init__(self, env)
        slates = _slate_space(env, type(self).__name__, "a single env (ShopperEnv)")
        self.slate_size = slates.slate_size
        self.num_candidates = slates.num_candidates
        self.features_space = feature_space(env.observation_space)
        self.observation_space = self.features_space

    def features(self, observation: NumpyObservation) -> NumpyObservation:
        """The entries of an observation that the features space keeps."""
        return _keep_features(observation, self.features_space)


class ScoreVector(_SingleSlateWrapper):
    """:class:`ScoreVectorVecEnv` for one env: a ``Box(-bound, bound, (N,))`` float32
    action of candidate scores, of which the k highest are shown, best first, equal
    scores by lower index (:func:`top_k_distinct`, as the Vec wrapper ranks them).

    Observation: the wrapped env's features. Reward, ``terminated``, ``truncated`` and
    info are the wrapped env's, the info with the ``slate`` (k,) int64 shown. For PPO,
    A2C, SAC, TD3 through a ``DummyVecEnv``/``SubprocVecEnv``, and for what takes a
    single ``gymnasium.Env`` (the env checkers).
    """

    def __init__(self, env: gym.Env, bound: float = 1.0):
        _check_bound(bound)
        super().__init__(env, bound=bound)
        self.action_space = spaces.Box(-bound, bound, (self.num_candidates,), dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NumpyObservation, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        return self.features(observation), info

    def step(self, action: Any) -> tuple[NumpyObservation, SupportsFloat, bool, bool, dict[str, Any]]:
        slate = score_slates(action, 1, self.num_candidates, self.slate_size)[0]
        observation, reward, terminated, truncated, info = self.env.step(slate)
        return self.features(observation), reward, terminated, truncated, {**info, "slate": slate}


class FreeCandidates(spaces.Discrete):
    """The action space of :class:`SlotFilling`: ``Discrete(N)`` whose ``sample()``
    (without a mask) draws among the candidates not yet in the slate, the wrapper's
    current :meth:`~SlotFilling.action_masks`. Checkers that step with
    ``action_space.sample()`` (Gymnasium's and SB3's) then send valid actions, as
    :class:`~shopgym.envs.spaces.SlateSpace` samples valid slates; ``contains`` is
    ``Discrete``'s, and an action already in the slate stays a ``SlateError`` in ``step``.

    Args:
        chosen: the (N,) bool candidates chosen so far, an array the wrapper updates in
            place (a copy of it goes with a pickled or copied space).
    """

    def __init__(self, chosen: np.ndarray, seed: Any = None):
        super().__init__(len(chosen), seed=seed)
        self.chosen = chosen

    def sample(self, mask: Any = None, probability: Any = None) -> np.int64:
        if mask is None and probability is None:
            mask = (~self.chosen).astype(np.int8)
        return super().sample(mask=mask, probability=probability)


class SlotFilling(_SingleSlateWrapper):
    """:class:`SlotFillingVecEnv` for one env: the slate is built one position per
    sub-step, k ``Discrete(N)`` actions (a :class:`FreeCandidates` space) per slate.

    For sb3-contrib's MaskablePPO through a ``DummyVecEnv``/``SubprocVecEnv``:
    :meth:`action_masks` (N,) marks the candidates not yet in the slate (the protocol
    MaskablePPO reads through ``env_method("action_masks")``). A candidate already in
    the slate is a :class:`SlateError` (never repaired; :class:`RepairingSlotFilling`
    repairs it).

    Observation: the wrapped env's features, ``chosen`` (N,) float32 (1 for the
    candidates already in the slate) and ``slot`` (k,) float32 (the one-hot position
    the next action fills). The rules are the Vec wrapper's: sub-steps that do not
    complete the slate return reward 0, ``terminated`` and ``truncated`` False and an
    empty info, with the same shopper features; the completing sub-step shows the slate
    and returns the wrapped env's reward, ``terminated``, ``truncated`` and info, with
    the ``slate`` (k,) shown, and the observation of the next state (the state the
    session ended in, when it ended) with an empty partial slate. ``reset`` starts an
    empty slate. An episode is k sub-steps per slate.
    """

    repairing_twin: ClassVar[str] = "RepairingSlotFilling"

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = slot_filling_space(self.features_space, self.num_candidates, self.slate_size)
        self._partial = PartialSlates(1, self.num_candidates, self.slate_size)
        # The space samples from the partial slate's own (N,) row, which start() empties in place.
        self.action_space = FreeCandidates(self._partial.chosen[0])
        self._features: NumpyObservation = {}  # (1, ...) features of the current state

    def action_masks(self) -> np.ndarray:
        """(N,) bool: the candidates that the current slot may take (not yet chosen)."""
        return self._partial.masks()[0]

    def resolve(self, actions: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B,) actions, (B, N) chosen -> (B,) placed, (B,) replaced: as the Vec wrapper's."""
        return refuse_repeats(actions, chosen, type(self).__name__, self.repairing_twin)

    def fill(
        self,
        features: NumpyObservation,
        choose: Callable[[NumpyObservation, np.ndarray], np.ndarray],
    ) -> np.ndarray:
        """(B, k) slates for (B, ...) ``features`` by this wrapper's rule, as
        :meth:`SlotFillingVecEnv.fill` (to act with a model trained on this wrapper)."""
        return fill_slates(features, choose, self.resolve, self.num_candidates, self.slate_size)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NumpyObservation, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        self._start(observation)
        return self._observation(), info

    def step(self, action: Any) -> tuple[NumpyObservation, SupportsFloat, bool, bool, dict[str, Any]]:
        placed, replaced = self.resolve(slot_actions(action, 1), self._partial.chosen)
        self._partial.place(placed)
        own_info = self._sub_step_info(bool(replaced[0]))
        if not self._partial.complete:
            return self._observation(), self._sub_step_reward(0.0, own_info), False, False, own_info
        slate = self._partial.slates[0].copy()
        observation, reward, terminated, truncated, info = self.env.step(slate)
        self._start(observation)
        info = {**info, **own_info, "slate": slate}
        return self._observation(), self._sub_step_reward(reward, own_info), terminated, truncated, info

    def _start(self, observation: NumpyObservation) -> None:
        """An empty slate for the state of ``observation``."""
        self._features = {key: value[None] for key, value in self.features(observation).items()}
        self._partial.start()

    def _observation(self) -> NumpyObservation:
        return {key: value[0] for key, value in self._partial.observation(self._features).items()}

    def _sub_step_info(self, replaced: bool) -> dict[str, Any]:
        """A sub-step's own info (none here; the repairing wrapper reports its repairs)."""
        return {}

    def _sub_step_reward(self, reward: SupportsFloat, own_info: dict[str, Any]) -> SupportsFloat:
        """The sub-step's reward (the repairing wrapper charges for a repair)."""
        return reward


class RepairingSlotFilling(SlotFilling):
    """:class:`RepairingSlotFillingVecEnv` for one env: slot filling that *repairs* a
    repeated item (:func:`repair_repeats`: the first free candidate at or after it in
    index order, wrapping around), for algorithms that cannot mask (DQN; PPO and A2C).

    The info of every sub-step has ``repaired`` (bool); ``repeat_penalty`` is subtracted
    from the reward of a repaired sub-step. The action space is a plain
    ``Discrete(N)`` (every action is valid; its samples repeat items, as the Vec
    wrapper's do, and are repaired). Everything else is as :class:`SlotFilling`.
    """

    def __init__(self, env: gym.Env, repeat_penalty: float = 0.0):
        penalty = _check_penalty(repeat_penalty)
        # Recorded first: SlotFilling's own (argument-free) record is then ignored.
        RecordConstructorArgs.__init__(self, repeat_penalty=repeat_penalty)
        super().__init__(env)
        self.repeat_penalty = penalty
        self.action_space = spaces.Discrete(self.num_candidates)

    def resolve(self, actions: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return repair_repeats(actions, chosen)

    def _sub_step_info(self, replaced: bool) -> dict[str, Any]:
        return {"repaired": replaced}

    def _sub_step_reward(self, reward: SupportsFloat, own_info: dict[str, Any]) -> SupportsFloat:
        if not self.repeat_penalty:
            return reward
        return float(charge_repairs([reward], np.array([own_info["repaired"]]), self.repeat_penalty)[0])


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
