"""The batched twin of :class:`ShopperEnv`: B shoppers in one torch simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from shopgym.envs.core import final_observations, make_simulator, step_info, to_numpy
from shopgym.envs.spaces import SlateSpace, observation_space
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.world import World


class ShopperVectorEnv(VectorEnv):
    """``num_envs`` shoppers stepped together by one batched simulator (no Python loop
    over shoppers). Same dynamics, spaces and arguments as :class:`ShopperEnv`,
    whose documentation applies; with ``num_envs=1`` and the same seed the two give
    identical numbers.

    Autoreset is ``SAME_STEP``: a sub-environment whose session ends in a step
    already shows the next shopper in the returned observation; the final
    observation is in ``info["final_obs"]`` (an object array, ``None`` for the
    others) with the mask ``info["_final_obs"]``, and ``info["final_info"]`` holds
    the ended sessions' last ``clicks`` and ``purchases``. The top-level
    ``info["clicks"]`` and ``info["purchases"]`` (B, k) always describe the slate just
    shown, in every sub-environment.

    ``reset(seed=s)`` seeds the one generator of the batch (a list of seeds is not
    supported: the shoppers share one random stream).
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
        self.simulator = make_simulator(num_envs, world, shoppers, device, config, options)
        self.num_envs = num_envs
        self.oracle_info = oracle_info
        self.render_mode = render_mode
        config = self.simulator.config
        self.single_action_space = SlateSpace(config.num_candidates, config.slate_size)
        self.action_space = SlateSpace(config.num_candidates, config.slate_size, num_envs)
        self.single_observation_space = observation_space(self.simulator)
        self.observation_space = batch_space(self.single_observation_space, num_envs)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if isinstance(seed, list | tuple):
            raise ConfigError("ShopperVectorEnv.reset takes one integer seed for the whole batch")
        super().reset(seed=seed)
        self.simulator.reset(seed)
        return to_numpy(self.simulator.observe()), step_info(self.simulator, None, self.oracle_info)

    def step(self, actions: np.ndarray):
        outcome = self.simulator.step(torch.as_tensor(np.asarray(actions)))
        done = outcome.done.cpu().numpy()
        info = step_info(self.simulator, outcome, self.oracle_info)
        if done.any():
            final_obs = np.full(self.num_envs, None, dtype=object)
            for index, observation in final_observations(self.simulator, outcome, done).items():
                final_obs[index] = observation
            last_step = {key: info[key] for key in ("clicks", "purchases")}
            info["final_obs"], info["_final_obs"] = final_obs, done
            info["final_info"] = {**last_step, **{f"_{key}": done for key in last_step}}
            info["_final_info"] = done
        return (
            to_numpy(self.simulator.observe()),
            outcome.reward.cpu().numpy(),
            outcome.terminated.cpu().numpy(),
            outcome.truncated.cpu().numpy(),
            info,
        )
