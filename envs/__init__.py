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
:class:`ShopperSB3VecEnv` is the Stable-Baselines3 adapter.
"""

from gymnasium.envs.registration import register, registry

from shopgym.envs.presets import PRESETS
from shopgym.envs.sb3 import ShopperSB3VecEnv
from shopgym.envs.shopper import ShopperEnv
from shopgym.envs.shopper_vector import ShopperVectorEnv
from shopgym.envs.spaces import SlateSpace

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

__all__ = ["PRESETS", "ShopperEnv", "ShopperSB3VecEnv", "ShopperVectorEnv", "SlateSpace"]
