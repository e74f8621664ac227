"""The torch-native batched env: tensors in and out, the same numbers as the Gymnasium
vector env it sits under, final observations batched with the done mask."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from shopgym.envs import TORCH_ENVS, make_torch_env
from shopgym.envs.torch_env import GymnasiumTorchAdapter, TorchVectorEnv, _compiled_step, as_torch_env
from shopgym.simulator.errors import ConfigError, SlateError

from ._helpers import SYNTHETIC

IE = "shopgym/InterestEvolution-v0"
B = 6


def _slates(env: TorchVectorEnv, generator: torch.Generator) -> torch.Tensor:
    space = env.single_action_space
    keys = torch.rand((env.num_envs, space.num_candidates), generator=generator)
    return keys.argsort(1)[:, : space.slate_size]


@pytest.mark.parametrize("env_id", [SYNTHETIC, IE])
def test_steps_give_tensors_of_the_declared_shapes(env_id):
    env = make_torch_env(env_id, B, device="cpu")
    observation, info = env.reset(seed=0)
    assert isinstance(info, dict)
    space = env.single_observation_space
    assert set(observation) == set(space.spaces)
    for key, value in observation.items():
        assert isinstance(value, torch.Tensor) and value.shape == (B, *space[key].shape), key
    step = env.step(_slates(env, torch.Generator().manual_seed(0)))
    k = env.single_action_space.slate_size
    assert step.reward.shape == step.terminated.shape == step.truncated.shape == (B,)
    assert step.clicks.shape == step.purchases.shape == (B, k)
    assert step.clicks.dtype == step.done.dtype == torch.bool
    assert env.action_space.shape == (B, k)


@pytest.mark.parametrize(("env_id", "steps"), [(SYNTHETIC, 60), (IE, 200)])  # IE sessions: ~84 steps
def test_same_numbers_as_the_gymnasium_vector_env_over_it(env_id, steps):
    ours = make_torch_env(env_id, B, device="cpu")
    theirs = gym.make_vec(env_id, num_envs=B, vectorization_mode="vector_entry_point", device="cpu")
    observation, _ = ours.reset(seed=3)
    vector_observation, _ = theirs.reset(seed=3)
    generator = torch.Generator().manual_seed(1)
    ended = 0
    for _ in range(steps):
        for key, value in observation.items():
            np.testing.assert_array_equal(value.numpy(), vector_observation[key], err_msg=key)
        slates = _slates(ours, generator)
        step = ours.step(slates)
        vector_observation, reward, terminated, truncated, info = theirs.step(slates.numpy())
        np.testing.assert_array_equal(step.reward.numpy(), reward)
        np.testing.assert_array_equal(step.terminated.numpy(), terminated)
        np.testing.assert_array_equal(step.truncated.numpy(), truncated)
        done = step.done.numpy()
        for index in np.flatnonzero(done):
            ended += 1
            final = info["final_obs"][index]
            for key, value in step.final_observation.items():
                np.testing.assert_array_equal(value[index].numpy(), final[key], err_msg=key)
        observation = step.observation
    assert ended > 0


def test_final_observation_is_the_next_one_where_no_session_ended():
    env = make_torch_env(SYNTHETIC, B, device="cpu")
    env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    seen_done = seen_running = False
    for _ in range(40):
        step = env.step(_slates(env, generator))
        running = ~step.done
        seen_done |= bool(step.done.any())
        seen_running |= bool(running.any())
        for key, value in step.final_observation.items():
            assert torch.equal(value[running], step.observation[key][running]), key
        # Where a session ended, the final observation is the old session's: its step count
        # went on, while the next observation starts a new session.
        if step.done.any():
            assert (step.observation["step"][step.done] == 0).all()
            assert (step.final_observation["step"][step.done] > 0).all()
    assert seen_done and seen_running


def test_slates_are_checked_by_default_and_the_check_can_be_switched_off():
    env = make_torch_env(SYNTHETIC, 2, device="cpu")
    env.reset(seed=0)
    with pytest.raises(SlateError, match="shopper 1 repeats an item"):
        env.step(torch.tensor([[0, 1, 2], [3, 3, 4]]))
    unchecked = make_torch_env(SYNTHETIC, 2, device="cpu", check_slates=False)
    unchecked.reset(seed=0)
    step = unchecked.step(torch.tensor([[0, 1, 2], [3, 4, 5]]))
    assert step.reward.shape == (2,)


def test_oracle_info_holds_the_true_utilities_of_the_next_candidates():
    env = make_torch_env(SYNTHETIC, B, device="cpu", oracle_info=True)
    _, info = env.reset(seed=0)
    simulator = env.simulator
    assert torch.equal(info["utilities"], simulator.utilities(simulator.candidates))
    step = env.step(_slates(env, torch.Generator().manual_seed(0)))
    assert torch.equal(step.info["utilities"], simulator.utilities(simulator.candidates))
    assert "utilities" not in make_torch_env(SYNTHETIC, B, device="cpu").reset(seed=0)[1]


def test_every_registered_shopgym_env_has_a_torch_twin():
    for env_id, spec in gym.registry.items():
        if env_id.startswith("shopgym/"):
            assert str(spec.entry_point) in TORCH_ENVS, env_id
    with pytest.raises(ConfigError, match="not a shopgym environment"):
        make_torch_env("CartPole-v1")
    with pytest.raises(ConfigError, match="unknown environment"):
        make_torch_env("shopgym/Nope-v0")


def test_as_torch_env_unwraps_ours_and_adapts_gymnasiums():
    torch_env = make_torch_env(SYNTHETIC, 2, device="cpu")
    assert as_torch_env(torch_env) is torch_env
    vector = gym.make_vec(SYNTHETIC, num_envs=2, vectorization_mode="vector_entry_point", device="cpu")
    assert as_torch_env(vector) is vector.torch_env
    sync = gym.make_vec(
        SYNTHETIC,
        num_envs=2,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    adapted = as_torch_env(sync)
    assert isinstance(adapted, GymnasiumTorchAdapter)
    observation, _ = adapted.reset(seed=0)
    step = adapted.step(_slates(torch_env, torch.Generator().manual_seed(0)))
    assert set(step.observation) == set(observation)
    assert step.clicks.dtype == torch.bool and step.clicks.shape == (2, 3)
    with pytest.raises(ConfigError, match="expected a vector environment"):
        as_torch_env(object())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("env_id", ["shopgym/Shopper-v1", IE])
def test_unchecked_steps_never_wait_on_the_device(env_id):
    # CUDA's sync debug mode raises on any operation that synchronises with the host.
    env = make_torch_env(env_id, 256, device="cuda", check_slates=False)
    env.reset(seed=0)
    generator = torch.Generator(device="cuda").manual_seed(0)
    n, k = env.single_action_space.num_candidates, env.single_action_space.slate_size
    slates = [torch.rand((256, n), generator=generator, device="cuda").argsort(1)[:, :k] for _ in range(3)]
    env.step(slates[0])  # first-call allocations
    torch.cuda.set_sync_debug_mode("error")
    try:
        for slate in slates:
            step = env.step(slate)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert step.reward.device.type == "cuda"


def _assert_same_state(ours, theirs) -> None:
    if isinstance(ours, dict):
        assert ours.keys() == theirs.keys()
        for key in ours:
            _assert_same_state(ours[key], theirs[key])
    else:
        assert torch.equal(ours, theirs)


def _rollout(env: TorchVectorEnv, steps: int) -> list[torch.Tensor]:
    env.reset(seed=5)
    generator = torch.Generator().manual_seed(2)
    return [env.step(_slates(env, generator)).reward for _ in range(steps)]


def test_a_failed_compile_warns_and_steps_eagerly_from_the_restored_state(monkeypatch):
    def broken_compile(step, **kwargs):
        def run(*args, **kwargs):
            step(*args, **kwargs)  # the trial step changes the state, then fails
            raise RuntimeError("no C++ compiler")

        return run

    eager = make_torch_env(SYNTHETIC, B, device="cpu")
    before = eager.simulator.snapshot()
    monkeypatch.setattr(torch, "compile", broken_compile)
    failed = r"torch.compile failed \(no C\+\+ compiler\); the env steps eagerly"
    with pytest.warns(UserWarning, match=failed):
        assert _compiled_step(eager.simulator) is None
    _assert_same_state(eager.simulator.snapshot(), before)  # the trial step was undone
    with pytest.warns(UserWarning, match=failed):
        fallen_back = make_torch_env(SYNTHETIC, B, device="cpu", compile=True)
    assert not fallen_back.compiled and not eager.compiled
    for ours, theirs in zip(_rollout(fallen_back, 20), _rollout(eager, 20), strict=True):
        assert torch.equal(ours, theirs)


@pytest.mark.slow  # compiles twice: about a minute on 2 CPU cores
@pytest.mark.parametrize("env_id", [SYNTHETIC, IE])
def test_a_compiled_env_steps_like_the_eager_one(env_id):
    compiled = make_torch_env(env_id, B, device="cpu", compile=True)
    assert compiled.compiled
    eager = make_torch_env(env_id, B, device="cpu")
    for ours, theirs in zip(_rollout(compiled, 30), _rollout(eager, 30), strict=True):
        torch.testing.assert_close(ours, theirs)
