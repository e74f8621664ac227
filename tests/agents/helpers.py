"""Helpers shared by the agent tests: small synthetic torch vector envs and rollouts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from shopgym.agents import AGENTS, Agent, Transition, make_agent
from shopgym.agents.logged_data import collect_log
from shopgym.envs import make_torch_env
from shopgym.envs.torch_env import TorchVectorEnv

SYNTHETIC_ID = "shopgym/SyntheticShopper-v0"


def synthetic_env(
    num_envs: int = 8, oracle: bool = False, shoppers: str = "train", **options
) -> TorchVectorEnv:
    """The torch-native batch of synthetic shoppers, on the CPU (as the runner builds it)."""
    return make_torch_env(
        SYNTHETIC_ID, num_envs, oracle_info=oracle, shoppers=shoppers, device="cpu", **options
    )


def build_agent(
    name: str, seed: int = 0, num_envs: int = 8, fit_budget: int = 300, **kwargs
) -> tuple[TorchVectorEnv, Agent]:
    """A test env (oracle info only for the oracle) and a fitted agent, as the runner does."""
    env = synthetic_env(num_envs, oracle=AGENTS[name].needs_oracle, shoppers="test")
    if name == "planning-oracle" and not kwargs:
        kwargs = {"rollouts": 2, "horizon": 3, "tuning_rows": 8}  # the contract, not the planning, is tested
    agent = make_agent(
        name, env.single_observation_space, env.single_action_space, seed=seed, device="cpu", **kwargs
    )
    agent.fit(synthetic_env(num_envs, shoppers="train"), fit_budget, seed=10_000 + seed)
    agent.attach(env)
    return env, agent


def agent_on(agent_class: type[Agent], env: TorchVectorEnv, seed: int = 0, **kwargs) -> Agent:
    """An unfitted ``agent_class`` for one shopper of ``env``, on the CPU."""
    return agent_class(
        env.single_observation_space, env.single_action_space, seed=seed, device="cpu", **kwargs
    )


def spy_on_collect_log(monkeypatch, module) -> list[dict]:
    """Make ``module``'s ``collect_log`` record each call (its env, policy, num_slates and
    the log it returned) in the list returned, so a test sees what ``fit`` logged."""
    calls = []

    def spy(env, policy, num_slates, seed):
        log = collect_log(env, policy, num_slates, seed)
        calls.append({"env": env, "policy": policy, "num_slates": num_slates, "log": log})
        return log

    monkeypatch.setattr(module, "collect_log", spy)
    return calls


def assert_valid_slates(actions: torch.Tensor, num_rows: int, slate_size: int, num_candidates: int):
    assert isinstance(actions, torch.Tensor)
    assert actions.dtype == torch.int64
    assert actions.shape == (num_rows, slate_size)
    assert actions.min() >= 0
    assert actions.max() < num_candidates
    ordered = actions.sort(1).values
    assert (ordered[:, 1:] != ordered[:, :-1]).all(), f"repeated items in {actions}"


def rollout(
    env: TorchVectorEnv,
    agent: Agent,
    steps: int,
    seed: int,
    check: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run ``steps`` steps (learning online where the agent does); returns (steps, B, k)."""
    observation, _ = env.reset(seed=seed)
    actions = []
    for _ in range(steps):
        action = agent.act(observation)
        if check is not None:
            check(action)
        step = env.step(action)
        if agent.learns_online:
            agent.observe(Transition(observation, action, step))
        observation = step.observation
        actions.append(action)
    return torch.stack(actions)


def assert_state_equal(left: dict, right: dict) -> None:
    """Nested state dicts hold equal tensors and equal plain values."""
    assert sorted(left) == sorted(right)
    for key in left:
        if isinstance(left[key], dict):
            assert_state_equal(left[key], right[key])
        elif isinstance(left[key], torch.Tensor):
            assert torch.equal(left[key], right[key]), key
        else:
            assert left[key] == right[key], key


def reachable_instances(root: object, types: tuple[type, ...], max_depth: int = 6) -> list[str]:
    """Paths of the objects of ``types`` reachable from ``root`` through attributes,
    dict values and sequence items (what an agent could read later)."""
    found: list[str] = []
    seen: set[int] = set()

    def walk(obj: object, path: str, depth: int) -> None:
        if id(obj) in seen or depth > max_depth:
            return
        seen.add(id(obj))
        if isinstance(obj, types):
            found.append(f"{path}: {type(obj).__name__}")
            return
        if isinstance(obj, str | bytes | int | float | bool | np.ndarray | torch.Tensor):
            return
        if isinstance(obj, dict):
            for key, value in obj.items():
                walk(value, f"{path}[{key!r}]", depth + 1)
        elif isinstance(obj, list | tuple | set | frozenset):
            for index, value in enumerate(obj):
                walk(value, f"{path}[{index}]", depth + 1)
        attributes = getattr(obj, "__dict__", None)
        if isinstance(attributes, dict):
            for key, value in attributes.items():
                walk(value, f"{path}.{key}", depth + 1)

    walk(root, "agent", 0)
    return found
