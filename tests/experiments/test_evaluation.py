"""``evaluate``: exact episode quotas per shopper slot, ordered records, honest totals."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import torch

from shopgym.agents import Agent, RandomAgent, make_agent
from shopgym.envs.torch_env import TorchVectorEnv
from shopgym.experiments.evaluation import RECORD_COLUMNS, evaluate

from .helpers import synthetic_env

MAX_STEPS = 50  # ShopperConfig default


class RecordingEnv(TorchVectorEnv):
    """The torch env of ``env`` (a shopgym Gymnasium vector env), keeping each step's numbers."""

    def __init__(self, env):
        torch_env = env.torch_env
        super().__init__(torch_env.simulator, env.single_observation_space, env.single_action_space)
        self.env = env
        self.steps: list[dict[str, np.ndarray]] = []

    def step(self, slates):
        step = super().step(slates)
        self.steps.append(
            {
                "reward": step.reward.numpy().copy(),
                "done": step.done.numpy(),
                "clicks": step.clicks.sum(1).numpy(),
                "purchases": step.purchases.sum(1).numpy(),
            }
        )
        return step


def _random(env, seed=0):
    return RandomAgent(env.single_observation_space, env.single_action_space, seed=seed)


@pytest.mark.parametrize(("episodes", "num_envs"), [(23, 8), (40, 8), (5, 8), (7, 1)])
def test_records_exactly_the_episodes_asked_for_with_each_slots_quota(episodes, num_envs):
    env = synthetic_env(num_envs)
    records = evaluate(_random(env), env, episodes, seed=0)
    assert list(records.columns) == list(RECORD_COLUMNS)
    assert len(records) == episodes
    quota = np.full(num_envs, episodes // num_envs)
    quota[: episodes % num_envs] += 1
    counts = records["env_index"].value_counts().reindex(range(num_envs), fill_value=0)
    np.testing.assert_array_equal(counts.to_numpy(), quota)
    # Each slot records its first sessions: rounds 0 .. quota-1, once each.
    for index, group in records.groupby("env_index"):
        assert sorted(group["round"]) == list(range(quota[index]))


def test_rows_are_ordered_by_round_then_env_index():
    env = synthetic_env(8)
    records = evaluate(_random(env), env, 45, seed=1)
    keys = list(zip(records["round"], records["env_index"], strict=True))
    assert keys == sorted(keys)
    np.testing.assert_array_equal(records["episode"], np.arange(45))
    assert records.index.tolist() == list(range(45))
    for column in ("episode", "round", "env_index", "clicks", "purchases", "length"):
        assert pd.api.types.is_integer_dtype(records[column]), column


def test_returns_are_clicks_plus_purchases_with_default_rewards():
    env = synthetic_env(8, oracle=True)
    oracle = make_agent("oracle", env.single_observation_space, env.single_action_space)
    records = evaluate(oracle, env, 60, seed=2)
    np.testing.assert_array_equal(records["return"], records["clicks"] + records["purchases"])
    assert (records["length"] >= 1).all()
    assert (records["length"] <= MAX_STEPS).all()
    assert (records["clicks"] <= records["length"]).all()  # at most one click per slate
    assert (records["purchases"] <= records["clicks"]).all()
    assert records["clicks"].sum() > 0 and records["purchases"].sum() > 0


def test_returns_use_the_env_rewards():
    env = synthetic_env(8, click_reward=0.5, purchase_reward=2.0)
    records = evaluate(_random(env), env, 60, seed=3)
    np.testing.assert_allclose(records["return"], 0.5 * records["clicks"] + 2.0 * records["purchases"])
    assert records["purchases"].sum() > 0


def test_records_add_up_the_steps_of_each_session():
    env = RecordingEnv(synthetic_env(4))
    records = evaluate(_random(env.env, seed=4), env, 14, seed=4)
    steps = env.steps
    for index in range(4):
        sessions, current = [], {"return": 0.0, "clicks": 0, "purchases": 0, "length": 0}
        for step in steps:
            current["return"] += float(step["reward"][index])
            current["clicks"] += int(step["clicks"][index])
            current["purchases"] += int(step["purchases"][index])
            current["length"] += 1
            if step["done"][index]:
                sessions.append(current)
                current = {"return": 0.0, "clicks": 0, "purchases": 0, "length": 0}
        mine = records[records["env_index"] == index].sort_values("round")
        expected = pd.DataFrame(sessions[: len(mine)])
        for column in ("return", "clicks", "purchases", "length"):
            np.testing.assert_allclose(mine[column].to_numpy(), expected[column].to_numpy())
    # It stopped at the step where the last slot finished its quota (14 = 4 + 4 + 3 + 3).
    completed = np.cumsum([step["done"] for step in steps], axis=0)
    quota = np.array([4, 4, 3, 3])
    assert (completed[-1] >= quota).all()
    assert not (completed[-2] >= quota).all()


def test_same_seed_gives_identical_records():
    frames = []
    for _ in range(2):
        env = synthetic_env(8)
        frames.append(evaluate(_random(env, seed=7), env, 30, seed=7))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    env = synthetic_env(8)
    other = evaluate(_random(env, seed=7), env, 30, seed=8)
    assert not frames[0].equals(other)


class CountingAgent(Agent):
    """Random slates; counts the transitions it is shown."""

    name = "counting"
    learns_online: ClassVar[bool] = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.acted = 0
        self.observed: list = []

    def act(self, observation) -> torch.Tensor:
        self.acted += 1
        self.last = (observation, RandomAgent.act(self, observation))
        return self.last[1]

    def observe(self, transition) -> None:
        observation, action = self.last
        assert transition.observation is observation
        assert transition.action is action
        assert transition.clicks.shape == transition.purchases.shape == action.shape
        self.observed.append(transition)


def test_online_learners_observe_every_step_and_others_none():
    env = synthetic_env(8)
    learner = CountingAgent(env.single_observation_space, env.single_action_space)
    evaluate(learner, env, 24, seed=0)
    assert learner.acted > 0
    assert len(learner.observed) == learner.acted

    class Frozen(CountingAgent):
        learns_online = False

    frozen = Frozen(env.single_observation_space, env.single_action_space)
    evaluate(frozen, env, 24, seed=0)
    assert frozen.acted > 0 and frozen.observed == []


def test_only_oracles_are_shown_the_latent_info():
    from shopgym.envs import InterestEvolutionTorchEnv

    for env in (InterestEvolutionTorchEnv(4, device="cpu"), synthetic_env(4, oracle=True)):

        class Oracle(CountingAgent):
            needs_oracle = True

        learner, oracle = (
            agent(env.single_observation_space, env.single_action_space) for agent in (CountingAgent, Oracle)
        )
        evaluate(learner, env, 8, seed=0)
        evaluate(oracle, env, 8, seed=0)
        seen = {key for transition in learner.observed for key in transition.step.info}
        truth = {key for transition in oracle.observed for key in transition.step.info}
        latent = {"time_budget"} if isinstance(env, InterestEvolutionTorchEnv) else {"utilities"}
        assert latent <= truth and not latent & seen
