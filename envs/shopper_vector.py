"""The batched twin of :class:`ShopperEnv`: B shoppers in one torch simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from shopgym.envs.core import numpy_step, to_numpy, vector_reset_info
from shopgym.envs.spaces import SlateSpace
from shopgym.envs.torch_env import ShopperTorchEnv
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.world import World


class ShopperVectorEnv(VectorEnv):
    """``num_envs`` shoppers stepped together by one batched simulator (no Python loop
    over shoppers). Same dynamics, spaces and arguments as :class:`ShopperEnv`,
    whose documentation applies; with ``num_envs=1`` and the same seed the two give
    identical numbers.

    Autoreset is ``SAME_STEP``, with the info layout of Gymnasium's own vector envs
    (``SyncVectorEnv(..., autoreset_mode=AutoresetMode.SAME_STEP)`` over
    :class:`ShopperEnv` gives the same keys): a sub-environment whose session ends in a
    step already shows the next shopper in the returned observation; its final
    observation is in ``info["final_obs"]`` (an object array, ``None`` for the others,
    mask ``info["_final_obs"]``) and its last step's info (``clicks``, ``purchases``
    (B, k), with ``oracle_info`` ``utilities``; each with its ``_key`` mask) in
    ``info["final_info"]`` (mask ``info["_final_info"]``). The top level holds what a
    reset reports for those sub-environments: ``info["clicks"]`` and
    ``info["purchases"]`` (B, k) describe the slate just shown only where
    ``info["_clicks"]`` is True (they are zero for ended sessions, and absent when
    every session ended). :func:`shopgym.envs.core.slate_info` reads the slate's
    outcome for every sub-environment from either place.

    ``reset(seed=s)`` seeds the one generator of the batch (a list of seeds is not
    supported: the shoppers share one random stream).

    It is an adapter: the batch is a :class:`shopgym.envs.ShopperTorchEnv`
    (``torch_env``), whose tensors it copies to NumPy.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        world: World | str | Path | None = None,
        shoppers: str = "train",
        device: str | torch.device = "auto",
        oracle_info: bool = False,
        config: ShopperConfig | None = None,
        render_mode: None = None,
        **options: Any,
    ):
        self.torch_env = ShopperTorchEnv(num_envs, world, shoppers, device, oracle_info, config, **options)
        self.simulator = self.torch_env.simulator
        self.num_envs = num_envs
        self.oracle_info = oracle_info
        self.render_mode = render_mode
        self.single_action_space = self.torch_env.single_action_space
        space = self.single_action_space
        self.action_space = SlateSpace(space.num_candidates, space.slate_size, num_envs)
        self.single_observation_space = self.torch_env.single_observation_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if isinstance(seed, list | tuple):
            raise ConfigError("ShopperVectorEnv.reset takes one integer seed for the whole batch")
        super().reset(seed=seed)
        observation, info = self.torch_env.reset(seed)
        return to_numpy(observation), vector_reset_info(to_numpy(info))

    def step(self, actions: np.ndarray):
        """(B, k) slates -> observations, (B,) rewards, terminated, truncated, info."""
        step = self.torch_env.step(torch.as_tensor(np.asarray(actions)))
        return numpy_step(step, tuple(self._reset_keys), self._reset_keys)

    @property
    def _reset_keys(self) -> set[str]:
        """The info keys a reset reports too (see :func:`shopgym.envs.core.vector_info`)."""
        return {"utilities"} if self.oracle_info else set()
