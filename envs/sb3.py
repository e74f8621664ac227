"""A Stable-Baselines3 ``VecEnv`` over the batched shopper simulator.

SB3's vector API differs from Gymnasium's (``step_async``/``step_wait``, a list of
info dicts, ``dones`` with ``terminal_observation``), so it gets its own adapter
rather than B single environments in a Python loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices

from shopgym.envs.core import row, to_numpy
from shopgym.envs.spaces import feature_space
from shopgym.envs.torch_env import ShopperTorchEnv, TorchVectorEnv
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.world import World

ObservationMode = Literal["full", "features"]
OBSERVATION_MODES: tuple[str, ...] = ("full", "features")


# What the adapter takes from its torch env when it is built: setting one afterwards
# would leave the two disagreeing (oracle_info without the torch env's utilities).
_FIXED_ATTRIBUTES = ("oracle_info", "observation_mode", "torch_env", "simulator", "num_envs")


class ShopperSB3VecEnv(VecEnv):
    """``num_envs`` shoppers as an SB3 ``VecEnv``. Arguments as :class:`ShopperEnv`, and:

    Args:
        observation: ``"full"`` (the default): the observation of :class:`ShopperEnv`;
            ``"features"``: without the ID keys (``candidate_ids``, ``history_ids``),
            which SB3's ``MultiInputPolicy`` would one-hot encode (``(N + H) * M``
            inputs: about 100 k on the MovieLens World). The feature boxes stay
            (``candidate_features`` (N, F), ``history_features`` (H, F), ``step``, and
            with lifetimes ``session``, ``days_away``).

    ``step`` returns observations (B, ...) per key, rewards (B,) float32, dones (B,)
    and one info dict per shopper: ``clicks``, ``purchases`` (k,) of the slate shown,
    ``TimeLimit.truncated`` (the time limit ended the session, and the shopper did
    not leave), with ``oracle_info`` ``utilities`` (N,), and at the end of a session
    ``terminal_observation`` (the observation it ended in; the returned observation
    already shows the next session, whose reset info goes to ``reset_infos[i]``).

    Seeding follows SB3: ``seed(s)`` returns ``[s, s + 1, ...]`` and takes effect at
    the next ``reset()``, once. The shoppers share one simulator and one generator,
    seeded with ``s``: the whole batch is reproduced by ``s`` alone.

    The shoppers share their attributes (spaces, settings, the simulator):
    ``get_attr`` gives, per index asked, the adapter's value (``"index"``: the
    sub-environment's own index); ``set_attr`` sets it for all of them at once
    (indices that are not every sub-environment are a ``ConfigError``).
    ``env_method`` calls a method of each sub-environment asked, once per index:
    those of :class:`ShopperSlot`. The batch's methods (``reset``, ``step``,
    ``seed``, ``close``, ...) act on the one simulator of every shopper and cannot be
    called for one sub-environment: that is a ``ConfigError``.

    :meth:`from_torch_env` builds the adapter over an existing torch env instead.
    Slates from SB3's own policies over this ``MultiDiscrete`` space may repeat items
    (a ``SlateError``): :mod:`shopgym.envs.slate_wrappers` has the wrappers through
    which SB3's algorithms build valid slates.
    """

    def __init__(
        self,
        num_envs: int = 1,
        world: World | str | Path | None = None,
        shoppers: str = "train",
        device: str | torch.device = "auto",
        oracle_info: bool = False,
        config: ShopperConfig | None = None,
        observation: ObservationMode = "full",
        **options: Any,
    ):
        if observation not in OBSERVATION_MODES:
            raise ConfigError(f"observation must be one of {OBSERVATION_MODES}, got {observation!r}")
        torch_env = ShopperTorchEnv(num_envs, world, shoppers, device, oracle_info, config, **options)
        self._attach(torch_env, observation)

    @classmethod
    def from_torch_env(
        cls, torch_env: TorchVectorEnv, observation: ObservationMode = "full"
    ) -> ShopperSB3VecEnv:
        """The SB3 adapter over an existing torch env (e.g. the :class:`ShopperTorchEnv` of
        train shoppers that ``Agent.fit`` receives), without building a second simulator.

        The adapter steps ``torch_env`` itself: both share one simulator and its random
        streams, so use one of them at a time. ``oracle_info`` is the torch env's.
        """
        if observation not in OBSERVATION_MODES:
            raise ConfigError(f"observation must be one of {OBSERVATION_MODES}, got {observation!r}")
        if not isinstance(torch_env, TorchVectorEnv):
            raise ConfigError(f"expected a TorchVectorEnv, got {type(torch_env).__name__}")
        adapter = cls.__new__(cls)
        adapter._attach(torch_env, observation)
        return adapter

    def _attach(self, torch_env: TorchVectorEnv, observation: ObservationMode) -> None:
        """Set the adapter up over ``torch_env`` (what both constructors share)."""
        self.torch_env = torch_env
        self.simulator = torch_env.simulator
        self.oracle_info = bool(getattr(torch_env, "oracle_info", False))
        self.observation_mode = observation
        self.render_mode = None
        self.slots = [ShopperSlot(self, index) for index in range(torch_env.num_envs)]
        space = torch_env.single_observation_space
        VecEnv.__init__(
            self,
            torch_env.num_envs,
            space if observation == "full" else feature_space(space),
            torch_env.single_action_space,
        )
        self._actions: np.ndarray | None = None

    def reset(self) -> dict[str, np.ndarray]:
        """Start new sessions for every shopper (seeded by the last ``seed()``, if any)
        -> (B, ...) observations; ``reset_infos`` holds each shopper's reset info."""
        observation, info = self.torch_env.reset(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = self._infos(to_numpy(info))
        return self._keep(to_numpy(observation))

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict]]:
        step = self.torch_env.step(torch.as_tensor(self._actions))
        extra = {key: step.info[key] for key in ("utilities",) if self.oracle_info}
        infos = self._infos(to_numpy({"clicks": step.clicks, "purchases": step.purchases} | extra))
        done = step.done.cpu().numpy()
        time_limit = (step.truncated & ~step.terminated).cpu().numpy()
        for index, info in enumerate(infos):
            info["TimeLimit.truncated"] = bool(time_limit[index])
        if done.any():
            final = self._keep(to_numpy(step.final_observation))
            reset_infos = self._infos(to_numpy(extra))
            for index in np.flatnonzero(done):
                infos[index]["terminal_observation"] = row(final, int(index))
                self.reset_infos[index] = reset_infos[index]
        return self._keep(to_numpy(step.observation)), step.reward.cpu().numpy(), done, infos

    def _keep(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The entries of ``observation`` that the observation space has."""
        return {key: observation[key] for key in self.observation_space.spaces}

    def _infos(self, batched: dict[str, np.ndarray]) -> list[dict]:
        return [row(batched, index) for index in range(self.num_envs)]

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [slot.get_wrapper_attr(attr_name) for slot in self._slots(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if attr_name in _FIXED_ATTRIBUTES:
            raise ConfigError(
                f"set_attr({attr_name!r}): {attr_name} is fixed when the adapter is built "
                f"(ShopperSB3VecEnv(..., {attr_name}=...) or from_torch_env); build a new adapter"
            )
        asked = sorted(set(self._get_indices(indices)))
        if asked != list(range(self.num_envs)):
            raise ConfigError(
                f"set_attr({attr_name!r}) for sub-environments {asked}: the {self.num_envs} shoppers "
                "share one simulator and its attributes; set it for every index (indices=None)"
            )
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        if not callable(getattr(ShopperSlot, method_name, None)):
            per_shopper = sorted(name for name in vars(ShopperSlot) if not name.startswith("_"))
            if callable(getattr(self, method_name, None)):
                raise ConfigError(
                    f"env_method({method_name!r}): {method_name} acts on the one simulator of all "
                    f"{self.num_envs} shoppers and cannot be called per sub-environment; call "
                    f"{type(self).__name__}.{method_name} itself. Methods of one sub-environment: "
                    f"{per_shopper}"
                )
            raise AttributeError(f"sub-environments have no method {method_name!r}; they have {per_shopper}")
        return [getattr(slot, method_name)(*method_args, **method_kwargs) for slot in self._slots(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._slots(indices)]

    def _slots(self, indices: VecEnvIndices) -> list[ShopperSlot]:
        return [self.slots[index] for index in self._get_indices(indices)]


class ShopperSlot:
    """Sub-environment ``index`` of a :class:`ShopperSB3VecEnv`, as ``get_attr`` and
    ``env_method`` see it: its attributes are the adapter's (the shoppers share the
    simulator, its spaces and settings) and its own ``index``.

    Its methods are those that mean something for one shopper of a batch that steps
    and seeds together; ``env_method`` calls them once per index asked.
    """

    def __init__(self, vec_env: ShopperSB3VecEnv, index: int):
        self.vec_env = vec_env
        self.index = index

    def get_wrapper_attr(self, name: str) -> Any:
        """The slot's own attribute ``name`` (``index``, ``vec_env``), else the adapter's."""
        if name in vars(self):
            return vars(self)[name]
        return getattr(self.vec_env, name)

    def has_wrapper_attr(self, name: str) -> bool:
        return name in vars(self) or hasattr(self.vec_env, name)

    def render(self) -> None:
        """Nothing to render (``render_mode`` is ``None``)."""
        return None

    def __repr__(self) -> str:
        return f"ShopperSlot(index={self.index}, num_envs={self.vec_env.num_envs})"
