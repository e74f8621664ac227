"""On CUDA: the simulator runs on the GPU and stays reproducible (skipped without CUDA)."""

import numpy as np
import pytest
import torch

from shopgym.envs import ShopperVectorEnv
from shopgym.simulator.shoppers import ShopperSimulator

pytestmark = pytest.mark.gpu


def _rollout(world, seed: int) -> list[torch.Tensor]:
    simulator = ShopperSimulator(world, num_shoppers=512, device="cuda", seed=seed)
    simulator.reset()
    keys = torch.Generator(device="cuda").manual_seed(seed)
    rewards = []
    for _ in range(20):
        slates = torch.rand(512, 20, generator=keys, device="cuda").argsort(1)[:, :5]
        rewards.append(simulator.step(slates).reward.cpu())
    return rewards


def test_simulator_on_cuda_same_seed_same_numbers(synthetic):
    first, again, other = _rollout(synthetic, 3), _rollout(synthetic, 3), _rollout(synthetic, 4)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_vector_env_on_cuda_returns_numpy(synthetic):
    env = ShopperVectorEnv(num_envs=64, world=synthetic, device="cuda")
    observation, _ = env.reset(seed=0)
    assert env.simulator.device.type == "cuda"
    _, reward, terminated, _, _ = env.step(env.action_space.sample())
    assert isinstance(observation["candidate_features"], np.ndarray)
    assert reward.shape == terminated.shape == (64,)
