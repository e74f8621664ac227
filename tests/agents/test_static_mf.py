"""The static MF recommender learns only from a random-policy log on train shoppers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import shopgym.agents.static_mf as static_mf_module
from shopgym.agents import RandomAgent, StaticMFAgent
from shopgym.agents.logged_data import SlateLog, collect_log
from shopgym.agents.static_mf import SessionMF

from .helpers import agent_on, spy_on_collect_log, synthetic_env

NUM_ITEMS = 40


@pytest.fixture
def spy_collect_log(monkeypatch):
    return spy_on_collect_log(monkeypatch, static_mf_module)


def test_fit_collects_a_log_with_a_random_policy_on_the_env_given(spy_collect_log):
    train_env = synthetic_env(num_envs=8, shoppers="train")
    agent = agent_on(StaticMFAgent, train_env)
    agent.fit(train_env, budget=300, seed=10)
    [call] = spy_collect_log
    assert call["env"] is train_env
    assert type(call["policy"]) is RandomAgent
    assert call["num_slates"] == 300
    log = call["log"]
    assert len(log) >= 300
    # What fit learned from is the log alone: the same log through train_on gives
    # the same model (a second agent with the same seed).
    again = agent_on(StaticMFAgent, train_env)
    logger = RandomAgent(train_env.single_observation_space, train_env.single_action_space, seed=10)
    again.train_on(collect_log(train_env, logger, 300, seed=10))
    for key, value in agent.state_dict()["model"].items():
        torch.testing.assert_close(value, again.state_dict()["model"][key], rtol=1e-5, atol=1e-6)


def test_the_log_holds_only_what_a_shop_sees():
    assert set(SlateLog.__dataclass_fields__) == {
        "history_ids",
        "shown_ids",
        "clicks",
        "purchases",
        "reward",
    }


def test_describe_reports_the_training_data(spy_collect_log):
    train_env = synthetic_env(num_envs=8, shoppers="train")
    agent = agent_on(StaticMFAgent, train_env)
    assert agent.describe()["training_data"]["slates"] == 0
    agent.fit(train_env, budget=300, seed=10)
    log = spy_collect_log[0]["log"]
    description = agent.describe()
    assert description["name"] == "static-mf"
    assert description["training_data"] == {
        "slates": len(log),
        "clicks": int(log.clicks.sum()),
        "logging_policy": "uniformly random slates",
    }
    assert description["training_data"]["clicks"] > 0


def test_fit_draws_its_log_from_the_train_shoppers(spy_collect_log):
    train_env = synthetic_env(num_envs=8, shoppers="train")
    agent = agent_on(StaticMFAgent, train_env)
    agent.fit(train_env, budget=200, seed=0)
    world = train_env.simulator.world
    population = set(spy_collect_log[0]["env"].simulator.population.members.tolist())
    assert population == set(world.shopper_indices("train").tolist())
    assert population.isdisjoint(world.shopper_indices("test").tolist())


def test_empty_slot_context_vector_stays_zero_and_never_contributes():
    env = synthetic_env(num_envs=8)
    agent = agent_on(StaticMFAgent, env)
    agent.fit(env, budget=500, seed=0)
    model = agent.model
    assert model.context_vector.shape == (NUM_ITEMS + 1, 16)
    assert torch.count_nonzero(model.context_vector[-1]) == 0
    assert torch.count_nonzero(model.context_vector[:-1]) > 0
    # With an empty history, the logits are the item biases alone.
    with torch.no_grad():
        empty = torch.full((2, 10), NUM_ITEMS)
        items = torch.tensor([[0, 5, 9], [39, 1, 2]])
        torch.testing.assert_close(model(empty, items), model.item_bias[items])


def test_session_mf_scores_the_mean_of_the_clicked_items_context():
    model = SessionMF(num_items=6, dim=3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.context_vector[-1] = 100.0  # whatever the empty slot holds is masked
        history = torch.tensor([[1, 4, 6, 6], [2, 6, 6, 6]])
        items = torch.tensor([[0, 3], [5, 5]])
        context = torch.stack(
            [
                (model.context_vector[1] + model.context_vector[4]) / 2,
                model.context_vector[2],
            ]
        )
        expected = model.item_bias[items] + torch.einsum("bd,bnd->bn", context, model.item_vector[items])
        torch.testing.assert_close(model(history, items), expected)


def test_empty_slot_context_vector_is_zero_from_construction():
    model = SessionMF(num_items=6, dim=3, generator=torch.Generator().manual_seed(0))
    assert torch.count_nonzero(model.context_vector[-1]) == 0


def test_training_loss_decreases_and_the_model_learns_click_rates():
    env = synthetic_env(num_envs=50)
    logger = RandomAgent(env.single_observation_space, env.single_action_space, seed=0)
    log = collect_log(env, logger, 3000, seed=0)
    # Enough epochs to converge on this small log (3000 slates: about 9 batches an epoch).
    agent = agent_on(StaticMFAgent, env, epochs=30)
    losses = agent.train_on(log)
    assert len(losses) == 30
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.9 * losses[0]
    assert losses[-1] < losses[len(losses) // 2] < losses[0]
    # Its mean predicted click probability per item follows the item's click rate in the log.
    items = log.shown_ids.numpy().ravel()
    with torch.no_grad():
        logits = agent.model(log.history_ids.repeat_interleave(3, 0), log.shown_ids.reshape(-1, 1))
    predicted = torch.sigmoid(logits).numpy().ravel()
    impressions = np.bincount(items, minlength=NUM_ITEMS)
    clicks = log.clicks.numpy().ravel()
    click_rate = np.bincount(items, weights=clicks, minlength=NUM_ITEMS) / impressions
    mean_prediction = np.bincount(items, weights=predicted, minlength=NUM_ITEMS) / impressions
    assert np.corrcoef(click_rate, mean_prediction)[0, 1] > 0.9


def test_fitted_agent_beats_its_untrained_self_on_click_prediction():
    env = synthetic_env(num_envs=50)
    logger = RandomAgent(env.single_observation_space, env.single_action_space, seed=1)
    held_out = collect_log(env, logger, 1000, seed=1)
    untrained, trained = agent_on(StaticMFAgent, env), agent_on(StaticMFAgent, env)
    trained.fit(env, budget=3000, seed=0)

    def held_out_loss(agent):
        k = held_out.shown_ids.shape[1]
        with torch.no_grad():
            logits = agent.model(
                held_out.history_ids.repeat_interleave(k, 0), held_out.shown_ids.reshape(-1, 1)
            )
        labels = held_out.clicks.reshape(-1, 1).float()
        return float(torch.nn.functional.binary_cross_entropy_with_logits(logits, labels))

    assert held_out_loss(trained) < held_out_loss(untrained) - 0.05


def test_a_loaded_agent_still_reports_its_training_data(tmp_path):
    env = synthetic_env(num_envs=8)
    agent = agent_on(StaticMFAgent, env)
    agent.fit(env, budget=200, seed=0)
    agent.save(tmp_path / "mf.pt")
    fresh = agent_on(StaticMFAgent, env)
    fresh.load(tmp_path / "mf.pt")
    assert fresh.describe()["training_data"] == agent.describe()["training_data"]
