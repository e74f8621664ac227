"""The ε-greedy bandit: credit to clicked positions, shrinkage, greedy choice."""

from __future__ import annotations

import numpy as np
import pytest

from shopgym.agents import EpsilonGreedyAgent, Transition
from shopgym.simulator.errors import ConfigError

from .helpers import rollout, synthetic_env

NUM_ITEMS = 40  # the synthetic World's catalogue


def _agent(env=None, **kwargs) -> EpsilonGreedyAgent:
    env = env or synthetic_env()
    return EpsilonGreedyAgent(
        env.single_observation_space, env.single_action_space, seed=0, device="cpu", **kwargs
    )


def _transition(candidate_ids, action, reward, clicks) -> Transition:
    candidate_ids = np.asarray(candidate_ids, dtype=np.int64)
    clicks = np.asarray(clicks, dtype=bool)
    observation = {"candidate_ids": candidate_ids}
    return Transition(
        observation=observation,
        action=np.asarray(action, dtype=np.int64),
        reward=np.asarray(reward, dtype=np.float32),
        next_observation=observation,
        terminated=np.zeros(len(candidate_ids), dtype=bool),
        truncated=np.zeros(len(candidate_ids), dtype=bool),
        info={"clicks": clicks, "purchases": np.zeros_like(clicks)},
    )


CANDIDATES = [list(range(10)), list(range(10, 20))]


def test_observe_credits_the_reward_only_to_the_clicked_position():
    agent = _agent()
    # Row 0 shows items 4, 7, 1 and clicks the second (reward 2: click and purchase);
    # row 1 shows items 12, 15, 19 with no click (a reward without a click credits nothing).
    agent.observe(_transition(CANDIDATES, [[4, 7, 1], [2, 5, 9]], [2.0, 1.5], [[0, 1, 0], [0, 0, 0]]))
    expected_reward = np.zeros(NUM_ITEMS)
    expected_reward[7] = 2.0
    np.testing.assert_array_equal(agent.reward_sum, expected_reward)
    expected_impressions = np.zeros(NUM_ITEMS)
    expected_impressions[[4, 7, 1, 12, 15, 19]] = 1
    np.testing.assert_array_equal(agent.impressions, expected_impressions)


def test_observe_accumulates_an_item_shown_to_several_shoppers_in_one_batch():
    agent = _agent()
    both = [list(range(10)), list(range(10))]
    agent.observe(_transition(both, [[3, 0, 1], [2, 3, 4]], [1.0, 2.0], [[1, 0, 0], [0, 1, 0]]))
    assert agent.reward_sum[3] == 3.0
    assert agent.impressions[3] == 2.0
    assert agent.reward_sum.sum() == 3.0
    assert agent.impressions.sum() == 6.0


@pytest.mark.parametrize("prior", [1.0, 5.0])
def test_estimates_shrink_to_the_global_mean_reward_per_impression(prior):
    agent = _agent(prior_impressions=prior)
    agent.observe(_transition(CANDIDATES, [[0, 1, 2], [0, 1, 2]], [1.0, 2.0], [[1, 0, 0], [0, 1, 0]]))
    agent.observe(_transition(CANDIDATES, [[0, 1, 2], [3, 4, 5]], [1.0, 0.0], [[1, 0, 0], [0, 0, 0]]))
    # 12 impressions, total reward 4.
    global_mean = 4.0 / 12.0
    estimates = agent.estimates()
    assert estimates.shape == (NUM_ITEMS,)
    never_shown = np.setdiff1d(np.arange(NUM_ITEMS), [0, 1, 2, 10, 11, 12, 13, 14, 15])
    np.testing.assert_allclose(estimates[never_shown], global_mean)
    # Item 0: 2 impressions, reward 2; item 11: 1 impression, reward 2; item 13: 1, 0.
    np.testing.assert_allclose(estimates[0], (2.0 + prior * global_mean) / (2 + prior))
    np.testing.assert_allclose(estimates[11], (2.0 + prior * global_mean) / (1 + prior))
    np.testing.assert_allclose(estimates[13], (0.0 + prior * global_mean) / (1 + prior))
    # Shrinkage pulls every estimate between the item's raw mean and the global mean.
    assert global_mean < estimates[0] < 1.0
    assert 0.0 < estimates[13] < global_mean


def test_strong_prior_pulls_every_estimate_to_the_global_mean():
    agent = _agent(prior_impressions=1e9)
    env = synthetic_env()
    rollout(env, agent, steps=50, seed=0)
    global_mean = agent.reward_sum.sum() / agent.impressions.sum()
    assert global_mean > 0
    np.testing.assert_allclose(agent.estimates(), global_mean, rtol=1e-5)


def test_estimates_start_at_zero_and_untrained_greedy_slates_are_random():
    agent = _agent(epsilon=0.0)
    np.testing.assert_array_equal(agent.estimates(), np.zeros(NUM_ITEMS))
    env = synthetic_env()
    observation, info = env.reset(seed=0)
    firsts = np.concatenate([agent.act(observation, info)[:, 0] for _ in range(100)])
    assert len(np.unique(firsts)) == 10  # all ties: any candidate may come first


def test_epsilon_zero_shows_the_candidates_with_the_highest_estimates_best_first():
    env = synthetic_env()
    agent = _agent(env, epsilon=0.0)
    rollout(env, agent, steps=60, seed=1)
    estimates = agent.estimates()
    observation, info = env.reset(seed=2)
    for _ in range(20):
        slate = agent.act(observation, info)
        candidate_estimates = estimates[observation["candidate_ids"]]
        shown = np.take_along_axis(candidate_estimates, slate, axis=1)
        assert (np.diff(shown, axis=1) <= 0).all()
        hidden = candidate_estimates.copy()
        np.put_along_axis(hidden, slate, -np.inf, axis=1)
        assert (shown.min(1) >= hidden.max(1)).all()
        observation, _, _, _, info = env.step(slate)


def test_epsilon_zero_puts_a_rewarded_item_first():
    agent = _agent(epsilon=0.0)
    for _ in range(3):
        agent.observe(_transition(CANDIDATES, [[6, 0, 1], [0, 1, 2]], [2.0, 0.0], [[1, 0, 0], [0, 0, 0]]))
    observation = {"candidate_ids": np.array([[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]] * 4)}
    slates = agent.act(observation, {})
    np.testing.assert_array_equal(slates[:, 0], [3, 3, 3, 3])  # candidate index of item 6


def test_epsilon_sets_the_share_of_random_slates():
    env = synthetic_env()
    agent = _agent(env, epsilon=0.5)
    # Distinct estimates, so the greedy slate is unique.
    agent.reward_sum = np.arange(NUM_ITEMS, dtype=float)
    agent.impressions = np.ones(NUM_ITEMS)
    observation, info = env.reset(seed=0)
    greedy = np.argsort(-agent.estimates()[observation["candidate_ids"]], axis=1)[:, :3]
    same = np.concatenate([(agent.act(observation, info) == greedy).all(1) for _ in range(250)])
    # P(greedy slate) = 1 - ε + ε / (10·9·8).
    assert abs(same.mean() - 0.5) < 0.05, same.mean()


@pytest.mark.parametrize("epsilon", [-0.1, 1.5])
def test_epsilon_outside_the_unit_interval_is_rejected(epsilon):
    with pytest.raises(ConfigError, match="epsilon"):
        _agent(epsilon=epsilon)


def test_describe_says_it_learns_online_from_test_shoppers():
    description = _agent(epsilon=0.2).describe()
    assert description["epsilon"] == 0.2
    assert "online" in description["training"]
