"""Gymnasium environments over the shopper simulator, and their registration.

Importing ``shopgym.envs`` registers:

- ``shopgym/Shopper-v0``: shoppers of the embedded MovieLens World (NeuMF fitted
  on real ratings; fitted once and cached, see ``shopgym.simulator.build``);
- ``shopgym/SyntheticShopper-v0``: a small synthetic World with a known truth
  (200 shoppers, 40 items), for fast experiments and tests;
- ``shopgym/InterestEvolution-v0``: RecSim's interest-evolution environment, term
  by term (:mod:`shopgym.envs.interest_evolution`).

``gymnasium.make(id)`` gives the single-shopper :class:`ShopperEnv`;
``gymnasium.make_vec(id, num_envs=B)`` the batched :class:`ShopperVectorEnv`;
:func:`make_torch_env` the torch-native batch that both wrap
(:class:`~shopgym.envs.torch_env.TorchVectorEnv`: what shopgym's runner and agents
use); :class:`ShopperSB3VecEnv` is the Stable-Baselines3 adapter.
"""

from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import register, registry

from shopgym.envs.interest_evolution import InterestEvolutionTorchEnv
from shopgym.envs.presets import PRESETS
from shopgym.envs.sb3 import ShopperSB3VecEnv
from shopgym.envs.shopper import ShopperEnv
from shopgym.envs.shopper_vector import ShopperVectorEnv
from shopgym.envs.spaces import SlateSpace
from shopgym.envs.torch_env import ShopperTorchEnv, TorchVectorEnv
from shopgym.simulator.errors import ConfigError

# The torch-native batch of each registered single env, by its entry point.
TORCH_ENVS: dict[str, type[TorchVectorEnv]] = {
    "shopgym.envs.shopper:ShopperEnv": ShopperTorchEnv,
    "shopgym.envs.interest_evolution:InterestEvolutionEnv": InterestEvolutionTorchEnv,
}


def make_torch_env(env_id: str, num_envs: int = 1, **kwargs: Any) -> TorchVectorEnv:
    """The torch-native batch of ``num_envs`` sessions of a registered shopgym
    environment, with the registration's arguments updated by ``kwargs`` (as
    ``gymnasium.make_vec`` takes them: ``world``, ``shoppers``, ``device``,
    ``check_slates``, environment options...)."""
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise ConfigError(f"unknown environment {env_id!r} ({exc})") from exc
    torch_env = TORCH_ENVS.get(str(spec.entry_point))
    if torch_env is None:
        raise ConfigError(f"{env_id} is not a shopgym environment with a torch-native batch")
    return torch_env(num_envs, **(spec.kwargs | kwargs))


for _env_id, _kwargs in PRESETS.items():
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point="shopgym.envs.shopper:ShopperEnv",
            vector_entry_point="shopgym.envs.shopper_vector:ShopperVectorEnv",
            kwargs=_kwargs,
        )

if "shopgym/InterestEvolution-v0" not in registry:
    register(
        id="shopgym/InterestEvolution-v0",
        entry_point="shopgym.envs.interest_evolution:InterestEvolutionEnv",
        vector_entry_point="shopgym.envs.interest_evolution:InterestEvolutionVectorEnv",
    )

__all__ = [
    "PRESETS",
    "ShopperEnv",
    "ShopperSB3VecEnv",
    "ShopperTorchEnv",
    "ShopperVectorEnv",
    "SlateSpace",
    "TorchVectorEnv",
    "make_torch_env",
]
