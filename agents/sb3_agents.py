"""Stable-Baselines3 algorithms behind shopgym's agent interface.

Each agent trains an SB3 model in :meth:`~SB3Agent.fit` on an SB3 ``VecEnv`` over the
*same* train shoppers it is given (the torch env's own simulator, through
:meth:`ShopperSB3VecEnv.from_torch_env` and a slate wrapper from
:mod:`shopgym.envs.slate_wrappers`), and acts by converting at its edge: observation
tensors -> NumPy -> ``model.predict(deterministic=True)`` -> a (B, k) tensor.

- ``sb3-ppo``: PPO on candidate score vectors (:class:`ScoreVectorVecEnv`).
- ``sb3-maskable-ppo``: sb3-contrib's MaskablePPO, filling the slate slot by slot
  under an action mask (:class:`SlotFillingVecEnv`).
- ``sb3-dqn``: DQN, slot by slot; it cannot mask, so repeats are repaired by the rule
  of :class:`RepairingSlotFillingVecEnv` (the next free candidate in index order).

Every policy is SB3's ``MultiInputPolicy`` with :class:`CandidateScorer` (one network
scores every candidate row) whose scores are the policy's logits / means / Q-values
(:func:`use_scores_as_head`). docs/sb3.md has the details and an example.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, configure
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from shopgym.agents.base import Agent, Checkpoint, CurvePoints, Observation
from shopgym.envs.sb3 import ShopperSB3VecEnv
from shopgym.envs.slate_wrappers import (
    CandidateScorer,
    RepairingSlotFillingVecEnv,
    ScoreVectorVecEnv,
    SlotFillingVecEnv,
    top_k_distinct,
    use_scores_as_head,
)
from shopgym.envs.spaces import SlateSpace, feature_space
from shopgym.envs.torch_env import TorchVectorEnv, as_torch_env
from shopgym.simulator.errors import ConfigError

NumpyObservation = dict[str, np.ndarray]


class TrainingLogWriter(KVWriter):
    """An output of SB3's logger that appends each dump to an agent's ``training_log``:
    ``steps`` (slates) and SB3's numbers (``train/loss``, ``rollout/ep_rew_mean``, ...),
    without its ``time/`` entries, which hold wall times, one row per step count. SB3
    dumps before it trains on a rollout, so on-policy agents' last ``train/`` values
    are not in the log (a budget of one rollout has none)."""

    def __init__(self, log: list[dict[str, float]], steps_per_slate: int):
        self.log = log
        self.steps_per_slate = steps_per_slate

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        row = {"steps": float(step // self.steps_per_slate)}
        for key, value in key_values.items():
            if key.split("/")[0] not in ("time", "shopgym") and isinstance(value, int | float | np.number):
                row[key] = float(value)
        # Off-policy SB3 dumps once per finished episode: several in one vector step.
        if self.log and self.log[-1]["steps"] == row["steps"]:
            self.log[-1].update(row)
        else:
            self.log.append(row)

    def close(self) -> None:
        pass


class CurveCallback(BaseCallback):
    """Calls the runner's ``checkpoint`` through :class:`CurvePoints` as SB3 trains, with
    the slates shown so far (SB3's timesteps are sub-steps under slot filling: k per
    slate), records them in SB3's logger as ``shopgym/slates`` and adds a
    :class:`TrainingLogWriter` to whatever outputs the logger has."""

    def __init__(self, curve: CurvePoints, steps_per_slate: int, training_log: list[dict[str, float]]):
        super().__init__()
        self.curve = curve
        self.steps_per_slate = steps_per_slate
        self.training_log = training_log

    def _on_training_start(self) -> None:
        self.logger.output_formats.append(TrainingLogWriter(self.training_log, self.steps_per_slate))

    @property
    def slates(self) -> int:
        return self.num_timesteps // self.steps_per_slate

    def _on_step(self) -> bool:
        self.curve.update(self.slates)
        return True

    def _on_rollout_end(self) -> None:
        self.logger.record("shopgym/slates", self.slates)


class _SpacesOnly(VecEnv):
    """A VecEnv of spaces alone, so the model (and ``act``, ``load_state_dict``) exists
    before ``fit`` gives a training env; stepping it is an error."""

    def __init__(self, observation_space: spaces.Dict, action_space: SlateSpace):
        super().__init__(1, observation_space, action_space)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError("this agent's model has no environment yet: train it with fit(env, ...)")

    reset = step_async = step_wait = _refuse

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "render_mode":  # what VecEnv.__init__ asks; nothing renders
            return [None]
        raise AttributeError(attr_name)

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        self._refuse()

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        return self._refuse()

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False]


class SB3Agent(Agent):
    """Base class: an SB3 algorithm on a slate wrapper, trained before evaluation.

    Args:
        observation_space, action_space, seed, device: as :class:`Agent` (``device``
            ``"auto"``: SB3 trains on CUDA when available).
        slate_gamma: the discount per *slate* (``None``: the agent's
            ``default_slate_gamma``); slot-filling agents give SB3
            ``slate_gamma ** (1 / k)`` per sub-step, so that the horizon is the same.
        hidden: width of :class:`CandidateScorer`.
        log_dir: where SB3's logger writes ``seed<s>/progress.csv`` during ``fit`` with
            seed ``s`` (``None``: SB3's default logger, silent at ``verbose=0``).
        verbose: SB3's verbosity.
        hyperparameters: keyword arguments of the SB3 algorithm, overriding the
            agent's ``defaults`` (documented per agent); SB3's names and units (its
            timesteps are sub-steps under slot filling).

    The model is rebuilt in :meth:`fit` with SB3's ``seed=`` the fit seed (SB3 then
    seeds Python's, NumPy's and torch's global generators, and the env); before that,
    ``act`` uses a model initialised from ``seed`` (without touching global generators).

    Saving: :meth:`state_dict` holds the policy's ``state_dict()`` (CPU tensors, for
    ``Agent.save``/``load``, which loads with ``weights_only=True``) and what training
    saw; the agent must be built with the same settings to load it. ``agent.model``
    is the SB3 model, so ``agent.model.save("model.zip")`` saves it SB3's way too.
    """

    trains_before_evaluation = True
    algorithm: ClassVar[type[BaseAlgorithm]]
    wrapper: ClassVar[type[ScoreVectorVecEnv | SlotFillingVecEnv]]
    defaults: ClassVar[dict[str, Any]] = {}
    default_slate_gamma: ClassVar[float] = 0.9
    # What the policy network looks like after the features (empty where the scores are the output).
    net_arch: ClassVar[Any] = None

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        slate_gamma: float | None = None,
        hidden: int = 64,
        log_dir: str | Path | None = None,
        verbose: int = 0,
        **hyperparameters: Any,
    ):
        super().__init__(observation_space, action_space, seed, device)
        # The agent sets these itself (gamma from slate_gamma, the policy, seed and device).
        reserved = sorted(
            set(hyperparameters) & {"gamma", "seed", "device", "policy", "env", "policy_kwargs"}
        )
        if reserved:
            raise ConfigError(f"{self.name}: {reserved} are set by the agent (slate_gamma sets gamma)")
        slate_gamma = self.default_slate_gamma if slate_gamma is None else slate_gamma
        if not 0.0 < slate_gamma <= 1.0:
            # 0 would discount the sub-steps within a slate too: its first positions would get no credit.
            raise ConfigError(f"slate_gamma must be in (0, 1], got {slate_gamma}")
        self.hyperparameters = {**self.defaults, **hyperparameters}
        self.slate_gamma = slate_gamma
        self.hidden = hidden
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.verbose = verbose
        self.features_space = feature_space(observation_space)
        self.steps_per_slate = self.slate_size if issubclass(self.wrapper, SlotFillingVecEnv) else 1
        # The wrapper over spaces alone: its spaces build the model, and its fill()
        # builds slates in act exactly as the training wrapper does.
        self.spaces_env = self.wrap(_SpacesOnly(observation_space, action_space))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = self._make_model(self.spaces_env, seed=None, total_timesteps=None)
        self.training_data: dict[str, Any] = {"slates": 0}

    # ------------------------------------------------------------------ building

    def policy_kwargs(self) -> dict[str, Any]:
        """SB3's ``policy_kwargs``: the shared candidate scorer, an empty policy net_arch."""
        return {
            "features_extractor_class": CandidateScorer,
            "features_extractor_kwargs": {"hidden": self.hidden},
            "net_arch": self.net_arch,
        }

    def algorithm_kwargs(self, num_envs: int, total_timesteps: int | None) -> dict[str, Any]:
        """The algorithm's keyword arguments for ``num_envs`` training envs."""
        return {"gamma": self.slate_gamma ** (1.0 / self.steps_per_slate), **self.hyperparameters}

    def _make_model(self, venv: VecEnv, seed: int | None, total_timesteps: int | None) -> BaseAlgorithm:
        model = self.algorithm(
            "MultiInputPolicy",
            venv,
            seed=seed,
            device=self.device,
            verbose=self.verbose,
            policy_kwargs=self.policy_kwargs(),
            **self.algorithm_kwargs(venv.num_envs, total_timesteps),
        )
        use_scores_as_head(model, self.num_candidates)
        return model

    def training_env(self, env: Any) -> VecEnv:
        """The SB3 VecEnv over ``env``'s own shoppers: its features observation, this
        agent's slate wrapper, and ``VecMonitor`` for episode returns in SB3's logs."""
        torch_env = as_torch_env(env)
        if not isinstance(torch_env, TorchVectorEnv):
            raise ConfigError(
                f"{self.name} trains on shopgym's batched simulator (a TorchVectorEnv, or a vector env "
                f"built on one), got {type(env).__name__}"
            )
        return VecMonitor(self.wrap(ShopperSB3VecEnv.from_torch_env(torch_env, observation="features")))

    def wrap(self, venv: VecEnv) -> ScoreVectorVecEnv | SlotFillingVecEnv:
        """``venv`` in this agent's slate wrapper."""
        return self.wrapper(venv)

    # ------------------------------------------------------------------ training

    def fit(self, env: Any, budget: int, seed: int, checkpoint: Checkpoint | None = None) -> None:
        """Train on ``env`` (train shoppers) for ``budget`` slates: ``budget * k`` SB3
        timesteps under slot filling, ``budget`` for score vectors (on-policy algorithms
        round up to whole rollouts). SB3 seeds itself and the env with ``seed``."""
        if budget < 1:
            raise ConfigError(f"budget must be at least one slate, got {budget}")
        venv = self.training_env(env)
        total = budget * self.steps_per_slate
        self.model = self._make_model(venv, seed=seed, total_timesteps=total)
        if self.log_dir is not None:  # one folder per training seed: seeds do not overwrite each other
            self.model.set_logger(configure(str(self.log_dir / f"seed{seed}"), ["csv"]))
        curve = CurvePoints(budget, checkpoint)
        callback = CurveCallback(curve, self.steps_per_slate, self.training_log)
        self.model.learn(total_timesteps=total, callback=callback)
        if self.log_dir is not None:
            self.model.logger.close()  # flushes and closes progress.csv
        curve.finish(callback.slates)
        # VecMonitor's recent episodes: training rewards (DQN's repeat penalties included).
        episodes = [float(info["r"]) for info in self.model.ep_info_buffer or []]
        self.training_data = {
            "slates": callback.slates,
            "sb3_timesteps": int(self.model.num_timesteps),
            "num_envs": venv.num_envs,
            "seed": seed,
            "shoppers": "train",
            "recent_episode_return": float(np.mean(episodes)) if episodes else None,
        }
        # Hold no reference to the training shoppers' simulator: agents never keep the truth
        # (SB3's model.set_env gives it an env again to train further).
        self.model.env = None

    # ------------------------------------------------------------------ acting

    def act(self, observation: Observation) -> torch.Tensor:
        """(B, ...) observation tensors -> (B, k) int64 slates on their device."""
        device = observation["candidate_features"].device
        features = {key: observation[key].detach().cpu().numpy() for key in self.features_space.spaces}
        return torch.as_tensor(self.slates(features), device=device)

    @abstractmethod
    def slates(self, features: NumpyObservation) -> np.ndarray:
        """(B, ...) NumPy features -> (B, k) slates, as the training wrapper builds them."""

    # ------------------------------------------------------------------ reporting, saving

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "algorithm": f"{self.algorithm.__module__.split('.')[0]}.{self.algorithm.__name__}",
            "wrapper": self.wrapper.__name__,
            "policy": "MultiInputPolicy + CandidateScorer (shared per-candidate scores as the output)",
            "slate_gamma": self.slate_gamma,
            "hidden": self.hidden,
            "hyperparameters": {key: _plain(value) for key, value in self.hyperparameters.items()},
            "device": str(self.model.device),
            "training_data": self.training_data,
        }

    def state_dict(self) -> dict[str, Any]:
        weights = {key: value.detach().cpu() for key, value in self.model.policy.state_dict().items()}
        return {"policy": weights, "training_data": dict(self.training_data)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.policy.load_state_dict(state["policy"])
        self.training_data = dict(state["training_data"])


def _plain(value: Any) -> Any:
    """A JSON-friendly hyperparameter (schedules and classes by name)."""
    return value if isinstance(value, int | float | str | bool | type(None)) else repr(value)


def _batch_size(rollout: int, minibatches: int) -> int:
    """The largest divisor of ``rollout`` no larger than ``rollout / minibatches`` (at
    least 2): SB3 warns about a truncated last minibatch otherwise."""
    target = max(2, rollout // max(1, minibatches))
    return next((size for size in range(target, 1, -1) if rollout % size == 0), rollout)


class _OnPolicySB3Agent(SB3Agent):
    """PPO-like agents: ``n_steps`` (per env, SB3 timesteps) is capped so that one
    rollout fits the budget, and ``minibatches`` sets ``batch_size`` (a divisor of the
    rollout, so that no minibatch is truncated)."""

    net_arch: ClassVar[Any] = {"pi": [], "vf": [64, 64]}

    def algorithm_kwargs(self, num_envs: int, total_timesteps: int | None) -> dict[str, Any]:
        kwargs = super().algorithm_kwargs(num_envs, total_timesteps)
        minibatches = kwargs.pop("minibatches", 4)
        n_steps = int(kwargs["n_steps"])
        if total_timesteps is not None:
            n_steps = max(1, min(n_steps, total_timesteps // num_envs))
        if n_steps * num_envs < 2:  # SB3 needs two samples per rollout
            n_steps = 2
        kwargs["n_steps"] = n_steps
        if "batch_size" not in self.hyperparameters:  # PPO and MaskablePPO take one
            kwargs["batch_size"] = _batch_size(n_steps * num_envs, minibatches)
        return kwargs


class SB3PPOAgent(_OnPolicySB3Agent):
    """``sb3-ppo``: SB3's PPO on candidate score vectors (:class:`ScoreVectorVecEnv`): a
    Gaussian over N scores, whose k highest are shown (``act``: the mean's).

    Defaults (SB3's otherwise): ``slate_gamma`` 0.9, ``learning_rate`` 3e-4 decaying
    linearly to 3e-6, ``n_steps`` 32 per env, ``minibatches`` 4, ``n_epochs`` 10,
    ``gae_lambda`` 0.95, ``clip_range`` 0.2, ``ent_coef`` 0; the scores are bounded to
    (-1, 1) by tanh (the action box), and the Gaussian starts at std
    ``exp(log_std_init)`` = ``exp(0.5)``: wide, so that early slates explore (narrower
    starts settled on worse slates on the tiny world of the learnability test).
    """

    name = "sb3-ppo"
    algorithm = PPO
    wrapper = ScoreVectorVecEnv
    defaults: ClassVar[dict[str, Any]] = {
        "learning_rate": LinearSchedule(3e-4, 3e-6, 1.0),
        "n_steps": 32,
        "minibatches": 4,
        "n_epochs": 10,
        "gae_lambda": 0.95,
        "clip_range": 0.2,
        "ent_coef": 0.0,
    }

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        log_std_init: float = 0.5,
        **kwargs: Any,
    ):
        self.log_std_init = log_std_init
        super().__init__(observation_space, action_space, seed, device, **kwargs)

    def policy_kwargs(self) -> dict[str, Any]:
        kwargs = super().policy_kwargs()
        kwargs["features_extractor_kwargs"] = {**kwargs["features_extractor_kwargs"], "score_bound": 1.0}
        return {**kwargs, "log_std_init": self.log_std_init}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "log_std_init": self.log_std_init}

    def slates(self, features: NumpyObservation) -> np.ndarray:
        scores, _ = self.model.predict(features, deterministic=True)
        return top_k_distinct(np.asarray(scores).reshape(-1, self.num_candidates), self.slate_size)


class SB3MaskablePPOAgent(_OnPolicySB3Agent):
    """``sb3-maskable-ppo``: sb3-contrib's MaskablePPO filling the slate one position per
    sub-step (:class:`SlotFillingVecEnv`), the candidates already chosen masked out, so
    it never repeats an item (``act`` too: it predicts with the masks).

    Defaults: as ``sb3-ppo`` (``slate_gamma`` 0.9: 0.9 ** (1/3) per sub-step) with
    ``n_steps`` 96 sub-steps per env (32 slates of 3) and ``ent_coef`` 0.01 (an
    entropy bonus keeps the categorical policy exploring).
    """

    name = "sb3-maskable-ppo"
    algorithm = MaskablePPO
    wrapper = SlotFillingVecEnv
    defaults: ClassVar[dict[str, Any]] = {**SB3PPOAgent.defaults, "n_steps": 96, "ent_coef": 0.01}

    def slates(self, features: NumpyObservation) -> np.ndarray:
        def choose(observation: NumpyObservation, masks: np.ndarray) -> np.ndarray:
            return self.model.predict(observation, deterministic=True, action_masks=masks)[0]

        return self.spaces_env.fill(features, choose)


class SB3DQNAgent(SB3Agent):
    """``sb3-dqn``: SB3's DQN filling the slate one position per sub-step. DQN cannot
    mask, so it trains and acts on :class:`RepairingSlotFillingVecEnv`: a candidate
    already in the slate is replaced by the next free one in index order, and its
    Q-value is learned as that replacement's, less ``repeat_penalty``. ``act``
    applies the same rule (through the wrapper's ``fill``).

    Defaults: ``slate_gamma`` 0.7 (it learned better slates than 0.9 on the tiny
    world of the learnability test), ``repeat_penalty`` 1 (a repaired repeat costs
    1 in training, so greedy Q-values learn to avoid repeats; 0 left DQN further
    from the oracle there), ``learning_rate`` 1e-3 decaying linearly to 1e-5, ``buffer_size`` 20 000
    sub-steps, ``learning_starts`` 300, ``batch_size`` 64, ``train_freq`` 1,
    ``gradient_steps`` 2, ``target_update_interval`` 300, ``exploration_fraction``
    0.3, ``exploration_final_eps`` 0.1, ``max_grad_norm`` 1; Q-values are the
    candidate scores (``net_arch`` []).
    """

    name = "sb3-dqn"
    algorithm = DQN
    wrapper = RepairingSlotFillingVecEnv
    net_arch: ClassVar[Any] = []
    default_slate_gamma: ClassVar[float] = 0.7
    defaults: ClassVar[dict[str, Any]] = {
        "learning_rate": LinearSchedule(1e-3, 1e-5, 1.0),
        "buffer_size": 20_000,
        "learning_starts": 300,
        "batch_size": 64,
        "train_freq": 1,
        "gradient_steps": 2,
        "target_update_interval": 300,
        "exploration_fraction": 0.3,
        "exploration_final_eps": 0.1,
        "max_grad_norm": 1.0,
    }

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: SlateSpace,
        seed: int = 0,
        device: str | torch.device = "auto",
        repeat_penalty: float = 1.0,
        **kwargs: Any,
    ):
        self.repeat_penalty = repeat_penalty  # before the base class wraps its spaces
        super().__init__(observation_space, action_space, seed, device, **kwargs)

    def wrap(self, venv: VecEnv) -> RepairingSlotFillingVecEnv:
        return RepairingSlotFillingVecEnv(venv, repeat_penalty=self.repeat_penalty)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "repeat_penalty": self.repeat_penalty}

    def slates(self, features: NumpyObservation) -> np.ndarray:
        def choose(observation: NumpyObservation, masks: np.ndarray) -> np.ndarray:
            return self.model.predict(observation, deterministic=True)[0]

        return self.spaces_env.fill(features, choose)


SB3_AGENTS: tuple[type[SB3Agent], ...] = (SB3PPOAgent, SB3MaskablePPOAgent, SB3DQNAgent)
