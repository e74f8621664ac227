"""A Stable-Baselines3 ``VecEnv`` over the batched shopper simulator.

SB3's vector API differs from Gymnasium's (``step_async``/``step_wait``, a list of
info dicts, ``dones`` with ``terminal_observation``), so it gets its own adapter
rather than B single environments in a Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv

from shopgym.envs.core import final_observations, make_simulator, row, step_info, to_numpy
from shopgym.envs.spaces import SlateSpace, observation_space
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.world import World


class ShopperSB3VecEnv(VecEnv):
    """``num_envs`` shoppers as an SB3 ``VecEnv``. Arguments as :class:`ShopperEnv`.

    Seeding follows SB3: ``seed(s)`` takes effect at the next ``reset()``; the batch
    shares one generator, seeded with ``s`` (SB3 would give sub-env i the seed
    ``s + i``; here the first seed drives the whole batch).
    Infos per shopper: ``clicks``, ``purchases`` (k,), ``TimeLimit.truncated`` and,
    at the end of a session, ``terminal_observation``.
    """

    def __init__(
        self,
        num_envs: int = 1,
        world: World | str | Path | None = None,
        shoppers: str = "train",
        device: str | torch.device = "auto",
        oracle_info: bool = False,
        config: ShopperConfig | None = None,
        **options: Any,
    ):
        self.simulator = make_simulator(num_envs, world, shoppers, device, config, options)
        self.oracle_info = oracle_info
        self.render_mode = None
        config = self.simulator.config
        super().__init__(
            num_envs,
            observation_space(self.simulator),
            SlateSpace(config.num_candidates, config.slate_size),
        )
        self._actions: np.ndarray | None = None

    def reset(self) -> dict[str, np.ndarray]:
        self.simulator.reset(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = self._infos(step_info(self.simulator, None, self.oracle_info))
        return to_numpy(self.simulator.observe())

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        outcome = self.simulator.step(torch.as_tensor(self._actions))
        infos = self._infos(step_info(self.simulator, outcome, self.oracle_info))
        done = outcome.done.cpu().numpy()
        truncated = outcome.truncated.cpu().numpy()
        for index, observation in final_observations(self.simulator, outcome, done).items():
            infos[index]["terminal_observation"] = observation
            infos[index]["TimeLimit.truncated"] = bool(truncated[index])
        return to_numpy(self.simulator.observe()), outcome.reward.cpu().numpy(), done, infos

    def _infos(self, batched: dict[str, np.ndarray]) -> list[dict]:
        return [row(batched, index) for index in range(self.num_envs)]

    def close(self) -> None:
        pass

    # The shoppers share one simulator, so attributes and methods are the adapter's own.
    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: Any = None, **method_kwargs) -> list[Any]:
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices: Any) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)
