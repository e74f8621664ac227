"""PPO with a Plackett–Luce slate policy (``shopgym.agents.ppo``).

The slate distribution is checked exactly on small N and k; GAE on hand-computed
episode ends; learning on the synthetic World where one slate is best for everyone
(``synthetic_world(personalization=0.0)``, as in test_learnability), against random
slates and the oracle; determinism, checkpoints, save/load and InterestEvolution.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from shopgym.agents.baselines import RandomAgent
from shopgym.agents.oracles import OracleAgent
from shopgym.agents.ppo import (
    PPOAgent,
    generalized_advantages,
    plackett_luce_sample,
    plackett_luce_terms,
)
from shopgym.envs import make_torch_env
from shopgym.envs.torch_env import ShopperTorchEnv
from shopgym.experiments.evaluation import evaluate
from shopgym.experiments.stats import bootstrap_ci
from shopgym.simulator.build import synthetic_world
from shopgym.simulator.world import World

from .helpers import assert_state_equal, assert_valid_slates, rollout, synthetic_env


def all_ordered_slates(num_candidates: int, k: int) -> torch.Tensor:
    """(S, k) every ordered slate of k distinct candidates of N."""
    return torch.tensor(list(itertools.permutations(range(num_candidates), k)))


def slate_probabilities(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every ordered slate of a (N,) score vector, its probability and its entropy estimate."""
    slates = all_ordered_slates(len(scores), k)
    log_prob, entropy = plackett_luce_terms(scores.expand(len(slates), -1), slates)
    return slates, log_prob.exp(), entropy


@pytest.mark.parametrize(("num_candidates", "k"), [(5, 3), (4, 4), (6, 1), (6, 2)])
def test_plackett_luce_probabilities_of_all_ordered_slates_sum_to_one(num_candidates, k):
    scores = torch.randn(num_candidates, generator=torch.Generator().manual_seed(k), dtype=torch.float64) * 2
    slates, probability, _ = slate_probabilities(scores, k)
    assert probability.sum().item() == pytest.approx(1.0, abs=1e-12)
    # One slate by the product formula: w_a1 / W * w_a2 / (W - w_a1) * ...
    weights, slate = scores.exp(), slates[7 % len(slates)].tolist()
    expected, left = 1.0, weights.sum().item()
    for item in slate:
        expected *= weights[item].item() / left
        left -= weights[item].item()
    assert probability[7 % len(slates)].item() == pytest.approx(expected, rel=1e-12)


def test_plackett_luce_entropy_estimate_averages_to_the_exact_slate_entropy():
    scores = torch.tensor([1.5, -0.3, 0.0, 2.2, -1.0], dtype=torch.float64)
    _, probability, entropy = slate_probabilities(scores, 3)
    exact = -(probability * probability.log()).sum()
    # The chain rule of entropy: the estimate is unbiased under the policy's own slates.
    assert (probability * entropy).sum().item() == pytest.approx(exact.item(), rel=1e-12)
    # A uniform policy has the largest entropy, log(5 * 4 * 3), at every slate.
    _, _, uniform = slate_probabilities(torch.zeros(5, dtype=torch.float64), 3)
    torch.testing.assert_close(uniform, torch.full_like(uniform, math.log(60)))


def test_gumbel_top_k_draws_follow_the_plackett_luce_probabilities():
    scores = torch.tensor([0.8, -0.5, 0.2, 1.1])
    draws = 40_000
    slates = plackett_luce_sample(scores.expand(draws, -1), 2, torch.Generator().manual_seed(0))
    assert_valid_slates(slates, draws, 2, 4)
    every, probability, _ = slate_probabilities(scores, 2)
    codes = slates[:, 0] * 4 + slates[:, 1]
    frequency = torch.bincount(codes, minlength=16)[every[:, 0] * 4 + every[:, 1]].float() / draws
    # 4 standard errors of the largest probability (about 0.22): 0.0083.
    assert (frequency - probability).abs().max().item() < 0.0085


def test_advantages_stop_at_episode_ends_and_bootstrap_only_truncated_sessions():
    gamma, lam = 0.9, 0.5
    rewards = torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])  # (T=2, B=3)
    values = torch.tensor([[0.5, 0.5, 0.5], [100.0, 100.0, 100.0]])  # row t=1: the next session's
    last_value = torch.tensor([0.0, 0.0, 0.0])
    # At t=0, column 0 terminated, column 1 was truncated, column 2 went on.
    terminated = torch.tensor([[True, False, False], [False, False, False]])
    truncated = torch.tensor([[False, True, False], [False, False, False]])
    final_values = torch.tensor([[7.0, 3.0, 55.0], [0.0, 0.0, 0.0]])  # read only where truncated
    advantages = generalized_advantages(
        rewards, values, last_value, terminated, truncated, final_values, gamma, lam
    )
    last_step = 2.0 - 100.0  # every column: reward + γ·0 − V
    expected = torch.tensor(
        [
            [1.0 - 0.5, 1.0 + gamma * 3.0 - 0.5, 1.0 + gamma * 100.0 - 0.5 + gamma * lam * last_step],
            [last_step, last_step, last_step],
        ]
    )
    torch.testing.assert_close(advantages, expected)


@functools.cache
def tiny_world() -> World:
    """The synthetic World with one slate best for everyone (utilities = item bias);
    built once, as building it takes seconds."""
    return synthetic_world(personalization=0.0)


def tiny_world_env(num_envs: int, shoppers: str, oracle: bool = False) -> ShopperTorchEnv:
    return ShopperTorchEnv(
        num_envs,
        world=tiny_world(),
        shoppers=shoppers,
        oracle_info=oracle,
        num_candidates=10,
        slate_size=3,
        device="cpu",
    )


def test_ppo_learns_the_best_slate_of_the_tiny_world_close_to_the_oracle():
    def mean_return(make, seed: int, oracle: bool = False) -> float:
        env = tiny_world_env(50, "test", oracle)
        agent = make(env, seed)
        return evaluate(agent, env, 400, seed=seed)["return"].mean()

    def ppo(env, seed):
        agent = PPOAgent(env.single_observation_space, env.single_action_space, seed=seed, device="cpu")
        agent.fit(tiny_world_env(32, "train"), 20_000, seed=100 + seed)
        return agent

    def baseline(agent_class):
        return lambda env, seed: agent_class(
            env.single_observation_space, env.single_action_space, seed=seed, device="cpu"
        )

    seeds = range(4)
    learned = np.array([mean_return(ppo, seed) for seed in seeds])
    random = np.array([mean_return(baseline(RandomAgent), seed) for seed in seeds])
    oracle = np.array([mean_return(baseline(OracleAgent), seed, oracle=True) for seed in seeds])
    print(f"\nppo {learned.round(3)}, random {random.round(3)}, oracle {oracle.round(3)}")
    assert bootstrap_ci(learned)[0] > bootstrap_ci(random)[1]
    assert learned.mean() >= 0.9 * oracle.mean()


def fitted(seed: int = 0, budget: int = 3000, checkpoint=None, **kwargs) -> PPOAgent:
    env = synthetic_env(16, shoppers="train")
    agent = PPOAgent(
        env.single_observation_space, env.single_action_space, seed=seed, device="cpu", n_steps=16, **kwargs
    )
    agent.fit(env, budget, seed=50 + seed, checkpoint=checkpoint)
    return agent


def test_same_seed_gives_identical_training_and_records():
    first, second, other = fitted(seed=3), fitted(seed=3), fitted(seed=4)
    assert_state_equal(first.state_dict(), second.state_dict())
    assert first.training_log == second.training_log  # no wall times: it is kept with the records
    records = [evaluate(agent, synthetic_env(8, shoppers="test"), 40, seed=1) for agent in (first, second)]
    pd.testing.assert_frame_equal(*records)
    assert not torch.equal(
        first.state_dict()["policy"]["scorer.0.weight"], other.state_dict()["policy"]["scorer.0.weight"]
    )


def test_checkpoint_evaluations_do_not_change_training():
    points: list[int] = []
    test_env = synthetic_env(8, shoppers="test")

    def checkpoint(steps: int) -> None:
        points.append(steps)
        evaluate(with_checkpoints, test_env, 16, seed=steps)

    with_checkpoints = PPOAgent(
        test_env.single_observation_space, test_env.single_action_space, seed=1, device="cpu", n_steps=16
    )
    with_checkpoints.fit(synthetic_env(16, shoppers="train"), 3000, seed=51, checkpoint=checkpoint)
    plain = fitted(seed=1)
    assert len(points) >= 5 and points == sorted(points) and points[-1] == 3008  # 188 steps of 16 rows
    assert_state_equal(with_checkpoints.state_dict(), plain.state_dict())


def test_fit_trains_for_the_budget_and_describes_itself():
    agent = fitted(budget=1000)
    description = agent.describe()
    assert description["name"] == "ppo"
    # 1000 slates of 16 rows: three rollouts of 16 steps, then 15 steps (1008 slates).
    assert description["training_data"]["slates"] == 1008
    assert description["training_data"]["updates"] == 4
    assert description["hyperparameters"]["n_steps"] == 16


def test_save_then_load_gives_the_same_actions(tmp_path):
    env = synthetic_env(8, shoppers="test")
    agent = fitted(seed=0)
    path = tmp_path / "ppo.pt"
    agent.save(path)
    fresh = PPOAgent(env.single_observation_space, env.single_action_space, seed=123, device="cpu")
    before = rollout(env, fresh, steps=20, seed=2)
    fresh.load(path)
    assert_state_equal(fresh.state_dict(), agent.state_dict())
    expected = rollout(env, agent, steps=20, seed=2)
    assert not torch.equal(before, expected)  # the fresh agent acted differently before loading
    torch.testing.assert_close(rollout(env, fresh, steps=20, seed=2), expected, rtol=0, atol=0)


def test_greedy_slates_are_valid_and_the_highest_scores_in_order():
    env = synthetic_env(8, shoppers="test")
    agent = fitted(budget=1000)
    observation, _ = env.reset(seed=0)
    for _ in range(30):
        action = agent.act(observation)
        assert_valid_slates(action, 8, 3, 10)
        scores = agent.policy.scores(agent.encoder(observation, agent.device)).detach()
        shown = scores.gather(1, action)
        assert (shown[:, :-1] >= shown[:, 1:]).all()  # best first
        unshown = scores.scatter(1, action, -torch.inf)
        assert (shown[:, -1] >= unshown.max(1).values).all()  # nothing better left out
        observation = env.step(action).observation


def test_history_profile_is_the_mean_of_the_filled_history_rows():
    env = synthetic_env(8, shoppers="test")
    agent = fitted(budget=500)
    observation, _ = env.reset(seed=4)
    for _ in range(6):  # clicks fill some of the history
        observation = env.step(agent.act(observation)).observation
    ids, features = observation["history_ids"], observation["history_features"]
    filled = ids != env.single_observation_space["history_ids"].nvec[0] - 1
    assert filled.any() and not filled.all()
    encoded = agent.encoder(observation, agent.device)
    for row in range(8):
        empty = torch.zeros(features.shape[-1])
        expected = features[row][filled[row]].mean(0) if filled[row].any() else empty
        torch.testing.assert_close(encoded.profile[row], expected)


def test_ppo_trains_and_acts_on_interest_evolution():
    train = make_torch_env("shopgym/InterestEvolution-v0", 32, device="cpu")
    agent = PPOAgent(train.single_observation_space, train.single_action_space, seed=0, device="cpu")
    assert agent.encoder.profile_key == "user"
    agent.fit(train, 30_000, seed=7)
    test = make_torch_env("shopgym/InterestEvolution-v0", 50, device="cpu")
    rollout(test, agent, steps=10, seed=3, check=lambda action: assert_valid_slates(action, 50, 2, 10))
    returns = evaluate(agent, test, 300, seed=3)["return"]
    baseline = RandomAgent(test.single_observation_space, test.single_action_space, seed=3, device="cpu")
    random = evaluate(baseline, test, 300, seed=3)
    print(f"\nppo {returns.mean():.1f}, random {random['return'].mean():.1f}")
    # Random slates return about 154 and the myopic greedy policy 166 (docs/interest_evolution.md).
    assert returns.mean() > random["return"].mean() + 5
