"""SlateQ: its slate optimisers, its training loop's bookkeeping, and that it learns."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import shopgym.agents.slateq as slateq_module
from shopgym.agents.baselines import RandomAgent
from shopgym.agents.oracles import OracleAgent
from shopgym.agents.slateq import ObservationFeatures, SlateQAgent, best_slates, slate_values
from shopgym.envs import make_torch_env
from shopgym.envs.torch_env import TorchVectorEnv
from shopgym.experiments.evaluation import evaluate
from shopgym.experiments.stats import bootstrap_ci
from shopgym.simulator.build import synthetic_world
from shopgym.simulator.choice import choice_probabilities
from shopgym.simulator.errors import ConfigError

from .helpers import assert_state_equal, assert_valid_slates, rollout, synthetic_env

IE_ID = "shopgym/InterestEvolution-v0"
# Small and quick: the tests check the mechanics, not the tuning.
QUICK = {"hidden": 32, "interaction_dim": 8, "batch_size": 64, "learning_starts": 100}


def _agent(env, seed: int = 0, **kwargs: Any) -> SlateQAgent:
    return SlateQAgent(
        env.single_observation_space, env.single_action_space, seed=seed, device="cpu", **kwargs
    )


# ------------------------------------------------------------ slate optimisers
def _brute_force(logits, values, null_logit, null_value, position_logits):
    """The best ordered slate of each row, by enumeration."""
    n, k = logits.shape[1], len(position_logits)
    slates = torch.tensor(list(itertools.permutations(range(n), k)))  # (S, k)
    best = []
    for row in range(len(logits)):
        rows = len(slates)
        value = slate_values(
            logits[row, slates] + position_logits,
            values[row, slates],
            null_logit[row].expand(rows),
            null_value[row].expand(rows),
        )
        best.append(value.max())
    return torch.stack(best)


def _random_problem(rows: int, n: int, k: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, n, generator=g, dtype=torch.float64)
    values = 3 * torch.randn(rows, n, generator=g, dtype=torch.float64)
    null_logit = torch.randn(rows, generator=g, dtype=torch.float64)
    null_value = torch.randn(rows, generator=g, dtype=torch.float64)
    position_logits = torch.randn(k, generator=g, dtype=torch.float64)
    return logits, values, null_logit, null_value, position_logits


def _value_of(slates, logits, values, null_logit, null_value, position_logits):
    return slate_values(
        logits.gather(1, slates) + position_logits, values.gather(1, slates), null_logit, null_value
    )


@pytest.mark.parametrize("seed", range(3))
def test_exact_optimiser_finds_the_best_ordered_slate_and_the_heuristics_do_not_beat_it(seed):
    problem = _random_problem(rows=40, n=6, k=3, seed=seed)
    best = _brute_force(*problem)
    found = {}
    for method in ("exact", "greedy", "topk"):
        slates = best_slates(*problem, method=method)
        assert_valid_slates(slates, 40, 3, 6)
        found[method] = _value_of(slates, *problem)
    torch.testing.assert_close(found["exact"], best)
    assert (found["greedy"] <= best + 1e-9).all() and (found["topk"] <= best + 1e-9).all()
    # The heuristics are not the exact optimiser in disguise on these (negative values, position effects).
    assert (found["topk"] < best - 1e-6).any()


def test_topk_shows_the_largest_weight_times_value_in_the_best_positions():
    logits = torch.log(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    values = torch.tensor([[4.0, 1.0, 1.0, 0.5]])  # w · Q̄ = 4, 2, 3, 2
    null = torch.zeros(1)
    # Position 1 has the larger logit, so the best item goes there.
    slates = best_slates(logits, values, null, null, torch.tensor([0.0, 0.5]), "topk")
    assert slates.tolist() == [[2, 0]]
    # Equal position logits: position 0 first.
    slates = best_slates(logits, values, null, null, torch.zeros(2), "topk")
    assert slates.tolist() == [[0, 2]]


def test_unknown_options_raise_config_error():
    env = synthetic_env(2)
    with pytest.raises(ConfigError, match="slate_optimizer"):
        _agent(env, slate_optimizer="best")
    with pytest.raises(ConfigError, match="target"):
        _agent(env, target="expected-sarsa")
    with pytest.raises(ConfigError, match="gamma"):
        _agent(env, gamma=1.5)


# ------------------------------------------------------------------- inputs
def test_user_features_use_every_float_entry_but_the_candidates_and_no_ids():
    env = synthetic_env(3, lifetime_days=5)
    features = ObservationFeatures(env.single_observation_space, num_items=40)
    assert features.item_key == "candidate_features"
    assert [key for key, _ in features.user_keys] == ["days_away", "session", "step"]
    observation, _ = env.reset(seed=0)
    for _ in range(6):
        observation = env.step(torch.tensor([[0, 1, 2]] * 3)).observation
    user, items = features(observation, torch.device("cpu"))
    f = items.shape[2]
    assert user.shape == (3, f + 1 + 3) and items.shape == (3, 10, f)
    filled = observation["history_ids"] < 40
    mean = (observation["history_features"] * filled[..., None]).sum(1) / filled.sum(1, keepdim=True).clamp(
        min=1
    )
    torch.testing.assert_close(user[:, :f], mean)
    torch.testing.assert_close(user[:, f], filled.float().mean(1))
    # step is divided by its bound (max_steps).
    max_steps = float(env.single_observation_space["step"].high[0])
    torch.testing.assert_close(user[:, -1:], observation["step"] / max_steps)

    ie = make_torch_env(IE_ID, 2, device="cpu")
    features = ObservationFeatures(ie.single_observation_space, num_items=None)
    assert features.item_key == "doc_features"
    assert [key for key, _ in features.user_keys] == ["response_quality", "response_watch_time", "user"]
    assert features.user_dim == 2 + 2 + 20


# ------------------------------------------------------------------ training
class RecordingEnv(TorchVectorEnv):
    """A torch env that keeps every action and step, to check what the agent stored."""

    def __init__(self, env):
        self.env, self.num_envs, self.device = env, env.num_envs, env.device
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.actions, self.steps = [], []

    def reset(self, seed=None):
        return self.env.reset(seed=seed)

    def step(self, action):
        step = self.env.step(action)
        self.actions.append(action.clone())
        self.steps.append(step)
        return step


@pytest.mark.parametrize("target", ["q-learning", "sarsa"])
def test_stored_transitions_bootstrap_truncated_sessions_from_their_final_observation(monkeypatch, target):
    added = []
    original = slateq_module.ReplayBuffer.add
    monkeypatch.setattr(
        slateq_module.ReplayBuffer,
        "add",
        lambda self, batch: (added.append({k: v.clone() for k, v in batch.items()}), original(self, batch)),
    )
    # max_steps=3: most sessions are cut (truncated); some shoppers leave first (terminated).
    env = RecordingEnv(synthetic_env(8, max_steps=3, patience=6.0))
    agent = _agent(env, target=target, **QUICK)
    agent.fit(env, budget=8 * 30, seed=1)
    features = agent.features
    assert len(added) == len(env.steps) - 1  # each step's transitions wait for the next slate
    truncations = terminations = 0
    for t, batch in enumerate(added):
        step = env.steps[t]
        next_user, _ = features(step.observation, agent.device)
        final_user, final_items = features(step.final_observation, agent.device)
        cut = step.truncated
        truncations += int(cut.sum())
        terminations += int(step.terminated.sum())
        torch.testing.assert_close(batch["next_user"][cut], final_user[cut])
        torch.testing.assert_close(batch["next_items"][cut], final_items[cut])
        torch.testing.assert_close(batch["next_user"][~cut], next_user[~cut])
        assert torch.equal(batch["bootstrap"], (~step.terminated).float())
        assert torch.equal(batch["reward"], step.reward)
        # The first click's position, k for none.
        clicks = step.clicks
        expected = torch.where(clicks.any(1), clicks.float().argmax(1), 3)
        assert torch.equal(batch["choice"], expected)
        # SARSA's next slate: the one shown next, in sessions that go on.
        going_on = ~step.done
        assert torch.equal(batch["next_slate"][going_on], env.actions[t + 1][going_on])
    assert truncations > 0 and terminations > 0


def test_fit_trains_for_the_budget_and_calls_the_checkpoints():
    env = synthetic_env(10)
    agent = _agent(env, **QUICK)
    calls = []
    agent.fit(env, budget=1000, seed=3, checkpoint=calls.append)
    assert calls == list(range(100, 1001, 100))
    data = agent.describe()["training_data"]
    assert data["slates"] == 1000
    assert data["gradient_steps"] == (1000 - 100) // 10 + 1
    assert agent.describe()["gamma"] == 0.99 and agent.describe()["slate_optimizer"] == "greedy"


def _fitted(seed: int, budget: int = 600) -> SlateQAgent:
    env = synthetic_env(10)
    agent = _agent(env, seed=seed, **QUICK)
    agent.fit(env, budget=budget, seed=100 + seed)
    return agent


def test_same_seed_gives_identical_weights_and_records_and_another_seed_does_not():
    first, second, other = _fitted(4), _fitted(4), _fitted(5)
    assert_state_equal(first.state_dict(), second.state_dict())
    records = [evaluate(agent, synthetic_env(10, shoppers="test"), 60, seed=9) for agent in (first, second)]
    pd.testing.assert_frame_equal(*records)
    weights = first.state_dict()["q_network"]
    assert any(not torch.equal(value, other.state_dict()["q_network"][key]) for key, value in weights.items())


def test_evaluating_at_checkpoints_does_not_change_training():
    test_env = synthetic_env(10, shoppers="test")
    env = synthetic_env(10)
    with_checkpoints = _agent(env, seed=2, **QUICK)
    evaluated = []

    def checkpoint(steps: int) -> None:  # what the runner does: evaluate act on held-out shoppers
        evaluated.append(evaluate(with_checkpoints, test_env, 20, seed=steps)["return"].mean())

    with_checkpoints.fit(env, budget=600, seed=7, checkpoint=checkpoint)
    assert len(evaluated) == 10
    without = _agent(synthetic_env(10), seed=2, **QUICK)
    without.fit(synthetic_env(10), budget=600, seed=7)
    assert_state_equal(with_checkpoints.state_dict(), without.state_dict())


def test_save_then_load_gives_the_same_state_and_actions(tmp_path):
    agent = _fitted(0)
    path = tmp_path / "slateq.pt"
    agent.save(path)
    assert torch.load(path, weights_only=True)["name"] == "slateq"
    fresh = _agent(synthetic_env(10), seed=123, **QUICK)
    fresh.load(path)
    assert_state_equal(fresh.state_dict(), agent.state_dict())
    assert fresh.describe()["training_data"] == agent.describe()["training_data"]
    env = synthetic_env(10, shoppers="test")
    observation, _ = env.reset(seed=5)
    for _ in range(5):
        action = agent.act(observation)
        assert torch.equal(fresh.act(observation), action)
        observation = env.step(action).observation


@pytest.mark.parametrize(
    ("options", "agent_options"),
    [
        ({}, {"slate_optimizer": "greedy"}),
        ({}, {"slate_optimizer": "topk", "target": "sarsa"}),
        ({"choice_model": "pbm"}, {"slate_optimizer": "exact", "double_q": False}),
        ({"lifetime_days": 5}, {"tau": 1.0, "target_update_interval": 20}),
    ],
)
def test_act_returns_valid_slates_on_shopper_envs(options, agent_options):
    env = synthetic_env(10, **options)
    agent = _agent(env, **{**QUICK, **agent_options})
    agent.fit(env, budget=400, seed=0)
    test_env = synthetic_env(7, shoppers="test", **options)
    rollout(test_env, agent, steps=60, seed=1, check=lambda a: assert_valid_slates(a, 7, 3, 10))
    single = synthetic_env(1, shoppers="test", **options)
    rollout(single, agent, steps=10, seed=1, check=lambda a: assert_valid_slates(a, 1, 3, 10))


def test_act_draws_no_random_numbers():
    agent = _fitted(1, budget=300)
    env = synthetic_env(10, shoppers="test")
    observation, _ = env.reset(seed=0)
    states = agent.training_generator.get_state(), agent.generator.get_state()
    first = agent.act(observation)
    assert torch.equal(agent.act(observation), first)
    assert torch.equal(agent.training_generator.get_state(), states[0])
    assert torch.equal(agent.generator.get_state(), states[1])


def test_device_auto_runs_where_the_env_is():
    env = synthetic_env(4)
    agent = SlateQAgent(env.single_observation_space, env.single_action_space, device="auto", **QUICK)
    agent.fit(env, budget=200, seed=0)
    observation, _ = env.reset(seed=0)
    assert agent.act(observation).device == env.device


@pytest.mark.gpu
def test_trains_and_acts_on_cuda():
    env = make_torch_env(IE_ID, 32, device="cuda")
    agent = SlateQAgent(env.single_observation_space, env.single_action_space, device="cuda", **QUICK)
    agent.fit(env, budget=3200, seed=0)
    observation, _ = env.reset(seed=1)
    action = agent.act(observation)
    assert action.device.type == "cuda"
    assert_valid_slates(action.cpu(), 32, 2, 10)


# ------------------------------------------------------------------ learning
@pytest.fixture(scope="module")
def one_best_slate():
    """The synthetic World with personalization 0: utilities are the item bias alone, so
    one slate is best for every shopper (built once for the tests below)."""
    return synthetic_world(personalization=0.0)


def test_click_model_learns_the_shoppers_choice_from_its_own_data(one_best_slate):
    # The synthetic shoppers choose by a multinomial logit over the true utilities with
    # position logits: a model SlateQ's click model can represent (the item bias is a
    # candidate feature). SlateQ never reads the truth; the test does, to grade it.
    options = {"world": one_best_slate, "num_candidates": 10, "slate_size": 3}
    env = synthetic_env(10, **options)
    agent = _agent(env, hidden=32, learning_starts=500, exploration_fraction=0.5)
    agent.fit(env, budget=2000, seed=0)
    test_env = synthetic_env(1000, shoppers="test", **options)
    observation, _ = test_env.reset(seed=3)
    simulator = test_env.simulator
    utility, _ = simulator.click_values(simulator.candidates)
    slates = RandomAgent(env.single_observation_space, env.single_action_space, seed=1).act(observation)
    truth = choice_probabilities(
        utility.gather(1, slates), simulator.beta, simulator.no_click_utility, simulator.position_bias
    )
    user, items = agent.features(observation, agent.device)
    with torch.no_grad():
        learned = agent.click_model.slate_log_probs(
            user, items.gather(1, slates[..., None].expand(-1, -1, 11))
        )
    kl = (truth * (truth.log() - learned)).sum(1).mean()
    constant = truth.mean(0, keepdim=True)  # the best model that ignores the slate
    kl_constant = (truth * (truth.log() - constant.log())).sum(1).mean()
    print(f"\nKL(truth || learned) {kl:.4f}, KL(truth || constant) {kl_constant:.4f}")
    assert kl < 0.2 * kl_constant
    assert 0.5 * (truth - learned.exp()).abs().sum(1).mean() < 0.05


def test_on_interest_evolution_it_trains_and_shows_valid_slates():
    env = make_torch_env(IE_ID, 16, device="cpu", num_candidates=20, slate_size=3)
    agent = _agent(env, **QUICK)
    agent.fit(env, budget=1600, seed=0)
    test_env = make_torch_env(IE_ID, 50, device="cpu", num_candidates=20, slate_size=3)
    rollout(test_env, agent, steps=30, seed=1, check=lambda a: assert_valid_slates(a, 50, 3, 20))


def test_learns_the_best_slate_when_one_slate_is_best_for_everyone(one_best_slate):
    # personalization=0: utilities are the item bias alone, so the oracle's slate is the best
    # for everyone. SlateQ beats random (non-overlapping 95% intervals over seeds) and reaches
    # at least 90% of the oracle's return.
    options = {"world": one_best_slate, "num_candidates": 10, "slate_size": 3}

    def returns(agent_class, **kwargs) -> np.ndarray:
        per_seed = []
        for seed in range(3):
            env = synthetic_env(10, oracle=agent_class.needs_oracle, shoppers="test", **options)
            agent = agent_class(env.single_observation_space, env.single_action_space, seed=seed, **kwargs)
            if agent_class.trains_before_evaluation:
                agent.fit(synthetic_env(10, shoppers="train", **options), 2000, seed=100 + seed)
            per_seed.append(evaluate(agent, env, 400, seed=seed)["return"].mean())
        return np.array(per_seed)

    random, oracle = returns(RandomAgent), returns(OracleAgent)
    slateq = returns(SlateQAgent, device="cpu", hidden=64, learning_starts=500, exploration_fraction=0.5)
    print(f"\nrandom {random.round(3)}, SlateQ {slateq.round(3)}, oracle {oracle.round(3)}")
    assert bootstrap_ci(slateq)[0] > bootstrap_ci(random)[1]
    assert slateq.mean() >= 0.9 * oracle.mean()
