"""``evaluate``: exact episode quotas per shopper slot, ordered records, honest totals;
``evaluate_detailed``: the same records plus slate metrics checked against the definitions."""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

from shopgym.agents import Agent, RandomAgent, make_agent
from shopgym.envs.torch_env import GymnasiumTorchAdapter, TorchVectorEnv
from shopgym.experiments.evaluation import (
    DETAIL_COLUMNS,
    ITEM_COLUMNS,
    RECORD_COLUMNS,
    Evaluation,
    _SlateDetails,
    evaluate,
    evaluate_detailed,
    position_columns,
)
from shopgym.simulator.errors import ConfigError

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


# ------------------------------------------------------------------ evaluate_detailed


def _agent(name, env, seed=0):
    return make_agent(name, env.single_observation_space, env.single_action_space, seed=seed, device="cpu")


@pytest.mark.parametrize("env_id", ["shopgym/Shopper-v1", "shopgym/SyntheticShopper-v0"])
@pytest.mark.parametrize("agent", ["random", "popularity"])
def test_detailed_base_columns_are_evaluates(env_id, agent):
    env = gym.make_vec(env_id, num_envs=8, shoppers="test", device="cpu")
    base = evaluate(_agent(agent, env, seed=3), env, 30, seed=3)
    detailed = evaluate_detailed(_agent(agent, env, seed=3), env, 30, seed=3)
    assert isinstance(detailed, Evaluation)
    k = env.single_action_space.slate_size
    assert list(detailed.records.columns) == [*RECORD_COLUMNS, *DETAIL_COLUMNS, *position_columns(k)]
    pd.testing.assert_frame_equal(detailed.records[list(RECORD_COLUMNS)], base)
    # And evaluate after evaluate_detailed is unchanged too (the details changed no state).
    pd.testing.assert_frame_equal(evaluate(_agent(agent, env, seed=3), env, 30, seed=3), base)


def test_detailed_columns_add_up():
    env = synthetic_env(8)
    result = evaluate_detailed(_random(env), env, 40, seed=5)
    records, items = result.records, result.items
    k = env.single_action_space.slate_size
    positions = position_columns(k)
    for column in positions:
        assert pd.api.types.is_integer_dtype(records[column]), column
    np.testing.assert_array_equal(records[positions].sum(axis=1), records["clicks"])
    assert records["ndcg"].between(0, 1 + 1e-6).all()
    assert records["ild"].between(-1e-6, 1 + 1e-6).all()
    assert (records["novelty"] > 0).all() and (records["revenue"] >= 0).all()
    assert records.loc[records["purchases"] == 0, "revenue"].eq(0).all()
    assert list(items.columns) == list(ITEM_COLUMNS)
    assert all(pd.api.types.is_integer_dtype(items[column]) for column in ITEM_COLUMNS)
    assert items["item"].is_monotonic_increasing and items["item"].is_unique
    assert (items["shown"] > 0).all() and (items["clicked"] <= items["shown"]).all()
    # Only the recorded episodes' slates count.
    assert items["shown"].sum() == k * records["length"].sum()
    assert items["clicked"].sum() == records["clicks"].sum()


class TopUtilityAgent(Agent):
    """Shows the k candidates of highest true utility, best first: an ideal slate for NDCG."""

    name = "top-utility"

    def attach(self, env) -> None:
        self.simulator = env.simulator

    def act(self, observation) -> torch.Tensor:
        simulator = self.simulator
        assert torch.equal(simulator.candidates, observation["candidate_ids"])
        utility = simulator.utilities(simulator.candidates)
        return utility.topk(self.action_space.slate_size, dim=1).indices


def test_the_ideal_slate_has_ndcg_one_and_others_less():
    env = synthetic_env(8)
    records = evaluate_detailed(
        TopUtilityAgent(env.single_observation_space, env.single_action_space), env, 24, 0
    )
    np.testing.assert_allclose(records.records["ndcg"], 1.0, rtol=1e-6)
    randomly = evaluate_detailed(_random(env), env, 24, seed=0).records
    assert (randomly["ndcg"] < 1 - 1e-3).all()


def _with_world(env, **changes):
    """``env`` (a shopgym vector env) with its simulator's World fields replaced."""
    simulator = env.torch_env.simulator
    simulator.world = dataclasses.replace(simulator.world, **changes)
    return env


def test_ild_of_identical_distinct_and_missing_categories():
    env = synthetic_env(4)
    world = env.torch_env.simulator.world
    m, c = world.item_category.shape
    same = torch.zeros(m, c)
    same[:, 0] = 1
    same[:, 1] = 1  # multi-hot, the same for every item: similarity 1
    records = evaluate_detailed(_random(_with_world(env, item_category=same)), env, 8, 0).records
    np.testing.assert_allclose(records["ild"], 0.0, atol=1e-6)
    # One category of its own per item: every pair at distance 1.
    names = tuple(f"c{index}" for index in range(m))
    records = evaluate_detailed(
        _random(_with_world(env, item_category=torch.eye(m), category_names=names)), env, 8, 0
    ).records
    np.testing.assert_allclose(records["ild"], 1.0, atol=1e-6)
    # No categories at all: cosine similarity 0, distance 1.
    records = evaluate_detailed(
        _random(_with_world(env, item_category=torch.zeros(m, c), category_names=world.category_names)),
        env,
        8,
        0,
    ).records
    np.testing.assert_allclose(records["ild"], 1.0, atol=1e-6)


def test_novelty_of_a_uniform_popularity_is_log2_of_the_catalogue():
    env = synthetic_env(4)
    m = env.torch_env.simulator.world.num_items
    env = _with_world(env, item_popularity=torch.full((m,), 7.0))
    records = evaluate_detailed(_random(env), env, 8, 0).records
    np.testing.assert_allclose(records["novelty"], math.log2(m), rtol=1e-6)


class LoggingAgent(CountingAgent):
    """Random slates; logs what each step showed, from the true state at ``act``."""

    def attach(self, env) -> None:
        self.simulator = env.simulator
        self.log: list[dict[str, np.ndarray]] = []

    def act(self, observation) -> torch.Tensor:
        action = super().act(observation)
        simulator = self.simulator
        self.log.append(
            {
                "items": observation["candidate_ids"].gather(1, action).numpy().copy(),
                "utility": simulator.utilities(simulator.candidates).numpy().copy(),
                "action": action.numpy().copy(),
            }
        )
        return action

    def observe(self, transition) -> None:
        super().observe(transition)
        step = transition.step
        self.log[-1] |= {
            "clicks": step.clicks.numpy().copy(),
            "revenue": step.info["revenue"].numpy().copy(),
            "done": step.done.numpy().copy(),
        }


def _reference_details(log, world, beta, index):
    """The detail columns of row ``index``'s sessions, recomputed from the step log in NumPy."""
    categories = world.item_category.numpy().astype(float)
    popularity = world.item_popularity.numpy().astype(float) + 1
    novelty_of = -np.log2(popularity / popularity.sum())
    sessions, slates = [], []
    for step in log:
        items, utility, action = step["items"][index], step["utility"][index], step["action"][index]
        k = len(items)
        gain = np.exp(beta * (utility - utility.max()))
        discount = 1 / np.log2(np.arange(k) + 2)
        ndcg = (gain[action] * discount).sum() / (np.sort(gain)[::-1][:k] * discount).sum()
        distances = []
        for i in range(k):
            for j in range(i + 1, k):
                a, b = categories[items[i]], categories[items[j]]
                norms = np.linalg.norm(a) * np.linalg.norm(b)
                distances.append(1 - (a @ b / norms if norms else 0.0))
        slates.append(
            {
                "ndcg": ndcg,
                "ild": np.mean(distances),
                "novelty": novelty_of[items].mean(),
                "revenue": step["revenue"][index],
                "clicks": step["clicks"][index].astype(int),
            }
        )
        if step["done"][index]:
            frame = pd.DataFrame(slates)
            session = {name: frame[name].mean() for name in ("ndcg", "ild", "novelty")}
            session["revenue"] = frame["revenue"].sum()
            session |= {f"clicks_p{p}": int(c) for p, c in enumerate(np.sum(list(frame["clicks"]), 0))}
            sessions.append(session)
            slates = []
    return pd.DataFrame(sessions)


@pytest.mark.parametrize(
    ("env_id", "flush_pairs"),
    [
        ("shopgym/SyntheticShopper-v0", None),  # one pass at the end
        ("shopgym/SyntheticShopper-v0", 1),  # a pass every step
        ("shopgym/Shopper-v1", 100),  # utility terms of drift and boredom; a pass every 3 steps
        ("shopgym/ShopperColdStart-v0", 100),  # the simulator's own World of new shoppers
    ],
)
def test_detail_columns_match_the_definitions_step_by_step(env_id, flush_pairs, monkeypatch):
    if flush_pairs is not None:
        monkeypatch.setattr(_SlateDetails, "FLUSH_PAIRS", flush_pairs)
    env = gym.make_vec(env_id, num_envs=4, shoppers="test", device="cpu")
    agent = LoggingAgent(env.single_observation_space, env.single_action_space)
    result = evaluate_detailed(agent, env, 14, seed=6)
    simulator = env.torch_env.simulator
    shown = pd.Series(0, index=range(simulator.world.num_items))
    for index in range(4):
        mine = result.records[result.records["env_index"] == index].sort_values("round")
        expected = _reference_details(agent.log, simulator.world, simulator.beta, index).iloc[: len(mine)]
        for column in expected.columns:
            np.testing.assert_allclose(mine[column].to_numpy(), expected[column].to_numpy(), rtol=1e-5)
        # The items shown in this row's recorded sessions: the steps up to its quota-th ending.
        ends = np.flatnonzero([step["done"][index] for step in agent.log])
        for step in agent.log[: ends[len(mine) - 1] + 1]:
            for item in step["items"][index]:
                shown[item] += 1
    shown = shown[shown > 0]
    np.testing.assert_array_equal(result.items["item"], shown.index)
    np.testing.assert_array_equal(result.items["shown"], shown.to_numpy())


def test_detailed_needs_a_shopper_simulator():
    from shopgym.envs import InterestEvolutionTorchEnv

    env = InterestEvolutionTorchEnv(2, device="cpu")
    with pytest.raises(ConfigError, match="evaluate_detailed needs a shopper env"):
        evaluate_detailed(_random(env), env, 4, seed=0)
    adapted = GymnasiumTorchAdapter(synthetic_env(2))
    with pytest.raises(ConfigError, match="evaluate_detailed needs a shopper env"):
        evaluate_detailed(_random(adapted), adapted, 4, seed=0)
