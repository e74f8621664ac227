"""Stable-Baselines3 agents behind shopgym's interface: contract, determinism, saving,
and learnability on the tiny world whose best slate is known."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from shopgym.agents import make_agent
from shopgym.agents.sb3_agents import (
    SB3_AGENTS,
    SB3Agent,
    SB3DQNAgent,
    SB3MaskablePPOAgent,
    SB3PPOAgent,
    _batch_size,
)
from shopgym.envs import ShopperTorchEnv
from shopgym.envs.slate_wrappers import RepairingSlotFillingVecEnv, ScoreVectorVecEnv, SlotFillingVecEnv
from shopgym.envs.torch_env import GymnasiumTorchAdapter
from shopgym.experiments.evaluation import evaluate
from shopgym.experiments.stats import bootstrap_ci
from shopgym.simulator.build import synthetic_world
from shopgym.simulator.errors import ConfigError

from .helpers import assert_state_equal, assert_valid_slates, rollout, synthetic_env

# Short training for the contract tests: small rollouts and an early start.
QUICK = {
    SB3PPOAgent: {"n_steps": 8},
    SB3MaskablePPOAgent: {"n_steps": 12},
    SB3DQNAgent: {"learning_starts": 30, "buffer_size": 1000},
}
BUDGET = 80


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The networks are tiny: one thread is faster than several fighting over the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _agent(agent_class: type[SB3Agent], seed: int = 0, **kwargs) -> tuple[ShopperTorchEnv, SB3Agent]:
    env = synthetic_env(8, shoppers="test")
    agent = agent_class(
        env.single_observation_space,
        env.single_action_space,
        seed=seed,
        device="cpu",
        **{**QUICK[agent_class], **kwargs},
    )
    return env, agent


def _fitted(agent_class: type[SB3Agent], seed: int = 0, fit_seed: int = 7, **kwargs) -> SB3Agent:
    _, agent = _agent(agent_class, seed, **kwargs)
    agent.fit(synthetic_env(8, shoppers="train"), BUDGET, seed=fit_seed)
    return agent


@pytest.mark.parametrize("agent_class", SB3_AGENTS)
def test_trains_then_acts_with_valid_slates(agent_class):
    env, agent = _agent(agent_class)
    assert agent.trains_before_evaluation and not agent.learns_online and not agent.needs_oracle
    k, n = agent.slate_size, agent.num_candidates

    def check(action):
        assert_valid_slates(action, env.num_envs, k, n)

    rollout(env, agent, 5, seed=0, check=check)  # before training: the initial model acts too
    points: list[int] = []
    agent.fit(synthetic_env(8, shoppers="train"), BUDGET, seed=3, checkpoint=points.append)
    assert points == sorted(points) and len(points) >= 5 and points[-1] >= BUDGET
    assert agent.training_data["slates"] >= BUDGET
    assert agent.training_data["sb3_timesteps"] == agent.training_data["slates"] * agent.steps_per_slate
    rollout(env, agent, 30, seed=1, check=check)
    described = agent.describe()
    assert described["name"] == agent.name and described["training_data"]["seed"] == 3
    json.dumps(described)  # goes into the run's records as JSON


def test_agents_use_the_wrapper_they_document():
    expected = {
        "sb3-ppo": ScoreVectorVecEnv,
        "sb3-maskable-ppo": SlotFillingVecEnv,
        "sb3-dqn": RepairingSlotFillingVecEnv,
    }
    assert {agent.name: agent.wrapper for agent in SB3_AGENTS} == expected
    for agent_class in SB3_AGENTS:
        env, agent = _agent(agent_class)
        venv = agent.training_env(env)
        # VecMonitor -> the slate wrapper -> the SB3 adapter over the env given, not a copy.
        assert type(venv.venv) is expected[agent.name]
        assert venv.venv.venv.torch_env is env


def test_fit_needs_shopgym_batched_shoppers():
    _, agent = _agent(SB3PPOAgent)
    gymnasium_env = gym.make_vec(
        "shopgym/SyntheticShopper-v0",
        num_envs=2,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    with pytest.raises(ConfigError, match="batched simulator"):
        agent.fit(GymnasiumTorchAdapter(gymnasium_env), BUDGET, seed=0)
    with pytest.raises(ConfigError, match="budget"):
        agent.fit(synthetic_env(2), 0, seed=0)


@pytest.mark.parametrize("agent_class", SB3_AGENTS)
def test_same_seed_trains_the_same_model(agent_class):
    first, second = _fitted(agent_class), _fitted(agent_class)
    assert_state_equal(first.state_dict(), second.state_dict())
    env = synthetic_env(8, shoppers="test")
    assert torch.equal(rollout(env, first, 20, seed=2), rollout(env, second, 20, seed=2))
    other = _fitted(agent_class, fit_seed=8)
    weights, other_weights = first.state_dict()["policy"], other.state_dict()["policy"]
    assert any(not torch.equal(weights[key], other_weights[key]) for key in weights)


@pytest.mark.parametrize("agent_class", [SB3PPOAgent, SB3DQNAgent])
def test_checkpoints_do_not_change_training(agent_class):
    # The runner evaluates at checkpoints: acting there must not disturb training.
    plain = _fitted(agent_class)
    _, agent = _agent(agent_class)
    test_env = synthetic_env(4, shoppers="test")
    agent.fit(
        synthetic_env(8, shoppers="train"),
        BUDGET,
        seed=7,
        checkpoint=lambda steps: evaluate(agent, test_env, 8, seed=steps),
    )
    assert_state_equal(plain.state_dict(), agent.state_dict())


@pytest.mark.parametrize("agent_class", SB3_AGENTS)
def test_save_and_load_reproduce_the_policy(agent_class, tmp_path):
    agent = _fitted(agent_class)
    path = tmp_path / "agent.pt"
    agent.save(path)
    _, loaded = _agent(agent_class, seed=5)  # another initial model, overwritten by the load
    loaded.load(path)
    assert_state_equal(agent.state_dict(), loaded.state_dict())
    env = synthetic_env(8, shoppers="test")
    assert torch.equal(rollout(env, agent, 20, seed=4), rollout(env, loaded, 20, seed=4))
    # SB3's own format: the model's zip loads back into the same weights.
    agent.model.save(tmp_path / "model.zip")
    restored = agent_class.algorithm.load(tmp_path / "model.zip", device="cpu")
    for key, value in agent.model.policy.state_dict().items():
        assert torch.equal(value, restored.policy.state_dict()[key]), key
    other = next(c for c in SB3_AGENTS if c is not agent_class)
    _, wrong = _agent(other)
    with pytest.raises(ConfigError, match=f"saved agent is {agent.name!r}"):
        wrong.load(path)


@pytest.mark.parametrize("agent_class", SB3_AGENTS)
def test_policy_output_stays_the_shared_candidate_scores(agent_class):
    agent = _fitted(agent_class)
    policy = agent.model.policy
    heads = [policy.action_net] if hasattr(policy, "action_net") else [policy.q_net.q_net[-1]]
    for head in heads:
        n = agent.num_candidates
        assert not head.weight.requires_grad
        torch.testing.assert_close(head.weight, torch.eye(n, head.in_features))


def test_settings_the_agent_owns_are_refused_and_registry_names():
    env = synthetic_env(2)
    spaces = (env.single_observation_space, env.single_action_space)
    with pytest.raises(ConfigError, match="slate_gamma sets gamma"):
        SB3PPOAgent(*spaces, device="cpu", gamma=0.5)
    with pytest.raises(ConfigError, match="slate_gamma"):
        SB3DQNAgent(*spaces, device="cpu", slate_gamma=1.5)
    assert SB3MaskablePPOAgent(*spaces, device="cpu").model.gamma == pytest.approx(0.9 ** (1 / 3))
    assert SB3PPOAgent(*spaces, device="cpu").model.gamma == pytest.approx(0.9)
    assert [c.name for c in SB3_AGENTS] == ["sb3-ppo", "sb3-maskable-ppo", "sb3-dqn"]


def test_minibatches_divide_the_rollout():
    assert _batch_size(320, 4) == 80
    assert _batch_size(330, 4) == 66  # 82 does not divide 330; 66 does
    assert _batch_size(7, 4) == 7  # a prime rollout: one full batch
    for rollout_size in range(2, 200):
        size = _batch_size(rollout_size, 4)
        assert rollout_size % size == 0 and size >= 2


# ----------------------------------------------------------------- learnability


TINY = {"num_candidates": 10, "slate_size": 3, "device": "cpu"}
LEARN_BUDGET = 16_000
SEEDS = range(3)


def _tiny_agent(name: str, env: ShopperTorchEnv, seed: int):
    """An SB3 agent with its defaults, or a reference agent of the registry."""
    spaces = (env.single_observation_space, env.single_action_space)
    sb3 = {agent.name: agent for agent in SB3_AGENTS}
    if name in sb3:
        return sb3[name](*spaces, seed=seed, device="cpu")
    return make_agent(name, *spaces, seed=seed, device="cpu")


def _tiny_return(name: str, seed: int, world) -> float:
    """Mean return over 400 test sessions (after LEARN_BUDGET slates of training)."""
    env = ShopperTorchEnv(10, world=world, shoppers="test", oracle_info=name == "oracle", **TINY)
    agent = _tiny_agent(name, env, seed)
    if agent.trains_before_evaluation:
        agent.fit(ShopperTorchEnv(10, world=world, shoppers="train", **TINY), LEARN_BUDGET, seed=100 + seed)
    return float(evaluate(agent, env, 400, seed=seed)["return"].mean())


@pytest.mark.slow
@pytest.mark.parametrize("name", [agent.name for agent in SB3_AGENTS])
def test_sb3_agents_approach_the_oracle_when_one_slate_is_best_for_everyone(name):
    # personalization=0: every shopper ranks items by the item bias alone, so one
    # slate is best for everyone and the myopic oracle's return is (about) the best.
    world = synthetic_world(personalization=0.0)
    random = np.array([_tiny_return("random", seed, world) for seed in SEEDS])
    oracle = np.array([_tiny_return("oracle", seed, world) for seed in SEEDS])
    agent = np.array([_tiny_return(name, seed, world) for seed in SEEDS])
    print(f"\n{name}: {agent.round(3)}, random {random.round(3)}, oracle {oracle.round(3)}")
    assert bootstrap_ci(agent)[0] > bootstrap_ci(random)[1]
    assert agent.mean() >= 0.9 * oracle.mean(), (
        f"{name} reaches {agent.mean() / oracle.mean():.2f} of the oracle"
    )


def test_each_training_seed_logs_to_its_own_folder(tmp_path):
    _, agent = _agent(SB3PPOAgent, log_dir=tmp_path)
    for fit_seed in (3, 4):
        agent.fit(synthetic_env(8, shoppers="train"), BUDGET, seed=fit_seed)
    logs = sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("progress.csv"))
    assert logs == ["seed3/progress.csv", "seed4/progress.csv"]
    assert all((tmp_path / log).stat().st_size > 0 for log in logs)
