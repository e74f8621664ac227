"""The static deep recommenders (bpr-mf, neumf, gru4rec) learn only from simulator logs
of train shoppers, beat random, approach the oracle when one slate is best for everyone,
and are reproducible, saveable and say what they were trained on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import shopgym.agents.static_deep as static_deep_module
from shopgym.agents import EpsilonGreedyAgent, OracleAgent, PopularityAgent, RandomAgent
from shopgym.agents.logged_data import LOGGING_POLICIES, collect_log, make_logging_policy
from shopgym.agents.static_deep import (
    BPRMFAgent,
    GRU4Rec,
    GRU4RecAgent,
    NeuMFAgent,
    SessionNeuMF,
    same_family_as_world,
)
from shopgym.envs import make_torch_env
from shopgym.experiments.evaluation import evaluate
from shopgym.experiments.stats import bootstrap_ci
from shopgym.simulator.build import synthetic_world
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.shoppers import POPULARITY_FEATURE

from .helpers import agent_on, assert_state_equal, spy_on_collect_log, synthetic_env

RECOMMENDERS = [BPRMFAgent, NeuMFAgent, GRU4RecAgent]
NUM_ITEMS = 40


@pytest.fixture
def spy_collect_log(monkeypatch):
    return spy_on_collect_log(monkeypatch, static_deep_module)


# --- Learning: against random and against the oracle ----------------------------------


@pytest.fixture(scope="module")
def random_returns_on_synthetic_shoppers() -> np.ndarray:
    returns = []
    for seed in range(5):
        env = synthetic_env(20, shoppers="test")
        returns.append(evaluate(agent_on(RandomAgent, env, seed), env, 200, seed=seed)["return"].mean())
    return np.array(returns)


@pytest.mark.parametrize("agent_class", RECOMMENDERS, ids=lambda agent: agent.name)
def test_each_recommender_beats_random_on_synthetic_shoppers(
    agent_class, random_returns_on_synthetic_shoppers
):
    returns = []
    for seed in range(5):
        agent = agent_on(agent_class, synthetic_env(20, shoppers="test"), seed)
        agent.fit(synthetic_env(20, shoppers="train"), 3000, seed=100 + seed)
        env = synthetic_env(20, shoppers="test")
        returns.append(evaluate(agent, env, 200, seed=seed)["return"].mean())
    random = random_returns_on_synthetic_shoppers
    print(f"\n{agent_class.name} {np.round(returns, 3)}, random {np.round(random, 3)}")
    # Non-overlapping 95% bootstrap intervals of the mean return over seeds.
    assert bootstrap_ci(np.array(returns))[0] > bootstrap_ci(random)[1]


# personalization=0: utilities are the item bias alone, so one slate is best for everyone.
_TINY_WORLD = synthetic_world(personalization=0.0)


def _tiny_env(shoppers: str, oracle: bool = False):
    """The tiny World of test_learnability: 10 candidates, slates of 3."""
    return make_torch_env(
        "shopgym/SyntheticShopper-v0",
        10,
        world=_TINY_WORLD,
        num_candidates=10,
        slate_size=3,
        shoppers=shoppers,
        oracle_info=oracle,
        device="cpu",
    )


@pytest.fixture(scope="module")
def oracle_return_on_tiny_world() -> float:
    returns = []
    for seed in range(3):
        env = _tiny_env("test", oracle=True)
        returns.append(evaluate(agent_on(OracleAgent, env, seed), env, 300, seed=seed)["return"].mean())
    return float(np.mean(returns))


@pytest.mark.parametrize("agent_class", RECOMMENDERS, ids=lambda agent: agent.name)
def test_each_recommender_reaches_90_percent_of_the_oracle_when_one_slate_is_best(
    agent_class, oracle_return_on_tiny_world
):
    returns = []
    for seed in range(3):
        env = _tiny_env("test")
        agent = agent_on(agent_class, env, seed)
        agent.fit(_tiny_env("train"), 3000, seed=100 + seed)
        returns.append(evaluate(agent, env, 300, seed=seed)["return"].mean())
    share = np.array(returns) / oracle_return_on_tiny_world
    print(f"\n{agent_class.name} share of the oracle's return {np.round(share, 3)}")
    assert bootstrap_ci(share)[0] >= 0.9


@pytest.mark.parametrize("agent_class", RECOMMENDERS, ids=lambda agent: agent.name)
def test_training_lowers_the_loss_on_a_held_out_log(agent_class):
    env = synthetic_env(20)
    spaces = (env.single_observation_space, env.single_action_space)
    log = collect_log(env, RandomAgent(*spaces, seed=0), 2000, seed=0)
    held_out = collect_log(env, RandomAgent(*spaces, seed=1), 1000, seed=1)
    agent = agent_on(agent_class, env, epochs=10)

    def held_out_loss() -> float:
        kept = agent.keeps(held_out.clicks)
        with torch.no_grad():
            scores = agent.model(held_out.history_ids[kept], held_out.shown_ids[kept])
            return float(agent.loss(scores, held_out.clicks[kept]))

    untrained = held_out_loss()
    losses = agent.train_on(log)
    assert len(losses) == 10 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    print(f"\n{agent_class.name} held-out loss {untrained:.3f} -> {held_out_loss():.3f}")
    assert held_out_loss() < untrained - 0.03


# --- Reproducibility and saving --------------------------------------------------------


@pytest.mark.parametrize("agent_class", RECOMMENDERS, ids=lambda agent: agent.name)
def test_same_seed_gives_identical_weights_and_records(agent_class):
    def fitted_records(seed: int) -> tuple[dict, pd.DataFrame]:
        agent = agent_on(agent_class, synthetic_env(8, shoppers="test"), seed)
        agent.fit(synthetic_env(8, shoppers="train"), 500, seed=7)
        return agent.state_dict(), evaluate(agent, synthetic_env(8, shoppers="test"), 80, seed=3)

    first_state, first_records = fitted_records(seed=1)
    second_state, second_records = fitted_records(seed=1)
    assert_state_equal(first_state, second_state)
    pd.testing.assert_frame_equal(first_records, second_records)
    # The seed matters: another one draws other initial weights and shuffles.
    other_state, _ = fitted_records(seed=2)
    weights = first_state["model"]
    assert any(not torch.equal(value, other_state["model"][key]) for key, value in weights.items())


@pytest.mark.parametrize("agent_class", RECOMMENDERS, ids=lambda agent: agent.name)
def test_save_then_load_gives_the_same_slates(agent_class, tmp_path):
    env = synthetic_env(8, shoppers="test")
    agent = agent_on(agent_class, env, seed=0)
    agent.fit(synthetic_env(8, shoppers="train"), 1000, seed=5)
    agent.save(tmp_path / "agent.pt")
    fresh = agent_on(agent_class, env, seed=0)
    before = {key: value.clone() for key, value in fresh.model.state_dict().items()}
    fresh.load(tmp_path / "agent.pt")
    assert_state_equal(fresh.state_dict(), agent.state_dict())
    assert fresh.describe() == agent.describe()

    # A step into sessions, so that histories are not empty.
    observation, _ = env.reset(seed=9)
    for _ in range(5):
        observation = env.step(agent.act(observation)).observation
    assert (observation["history_ids"] < NUM_ITEMS).any()
    torch.testing.assert_close(fresh.scores(observation), agent.scores(observation), rtol=0, atol=0)
    agent.generator.manual_seed(42)
    fresh.generator.manual_seed(42)
    assert torch.equal(fresh.act(observation), agent.act(observation))
    # The loaded weights are not the fresh agent's own (its scores came from the file).
    assert any(not torch.equal(value, fresh.model.state_dict()[key]) for key, value in before.items())


def test_loading_another_recommenders_file_raises_config_error(tmp_path):
    env = synthetic_env(8)
    agent_on(BPRMFAgent, env).save(tmp_path / "bpr.pt")
    with pytest.raises(ConfigError, match="saved agent is 'bpr-mf', not 'gru4rec'"):
        agent_on(GRU4RecAgent, env).load(tmp_path / "bpr.pt")


# --- What they are trained on and what they say ----------------------------------------


@pytest.mark.parametrize("agent_class", RECOMMENDERS, ids=lambda agent: agent.name)
def test_fit_logs_train_shoppers_with_the_policy_and_describe_names_the_log(agent_class, spy_collect_log):
    train_env = synthetic_env(8, shoppers="train")
    agent = agent_on(agent_class, train_env, logging_policy="popularity")
    assert agent.describe()["training_data"]["slates"] == 0
    points = []
    agent.fit(train_env, budget=300, seed=10, checkpoint=points.append)
    [call] = spy_collect_log
    assert call["env"] is train_env and call["num_slates"] == 300
    assert type(call["policy"]) is PopularityAgent
    log = call["log"]
    assert points == [len(log)]  # trained offline: one curve point, after training
    description = agent.describe()
    assert description["name"] == agent_class.name
    assert description["model_family"] == agent_class.model_family
    assert description["training_data"] == {
        "source": "log collected in the simulator",
        "logging_policy": "popularity",
        "logging_policy_detail": LOGGING_POLICIES["popularity"],
        "shoppers": "train",
        "slates": len(log),
        "clicks": int(log.clicks.sum()),
    }
    assert description["training_data"]["clicks"] > 0
    # Every hyperparameter is reported.
    assert {"epochs", "batch_size", "lr", "weight_decay", "dim"} <= set(description["hyperparameters"])


def test_fit_learns_only_from_the_log():
    # fit == collect the log, then train_on it: the same log gives the same weights.
    env = synthetic_env(8, shoppers="train")
    fitted = agent_on(GRU4RecAgent, env, seed=3)
    fitted.fit(env, 400, seed=11)
    again = agent_on(GRU4RecAgent, env, seed=3)
    logger = make_logging_policy("random", env.single_observation_space, env.single_action_space, seed=11)
    again.train_on(collect_log(env, logger, 400, seed=11))
    assert_state_equal(fitted.state_dict()["model"], again.state_dict()["model"])


def test_model_families_and_the_world_they_share():
    assert [agent.model_family for agent in RECOMMENDERS] == ["mf", "ncf", "sequential"]
    # The shipped World is NeuMF: neumf shares its family, the others do not.
    assert same_family_as_world("ncf", "neumf")
    assert not same_family_as_world("mf", "neumf") and not same_family_as_world("sequential", "neumf")
    # The synthetic World is a BPR-trained MF: there bpr-mf shares the family.
    assert same_family_as_world("mf", "bpr") and not same_family_as_world("ncf", "bpr")


def test_an_unknown_logging_policy_or_bad_setting_is_a_config_error():
    env = synthetic_env(8)
    with pytest.raises(ConfigError, match="logging_policy must be one of random, popularity"):
        agent_on(NeuMFAgent, env, logging_policy="oracle")
    with pytest.raises(ConfigError, match="unknown logging policy 'bogus'"):
        make_logging_policy("bogus", env.single_observation_space, env.single_action_space, seed=0)
    with pytest.raises(ConfigError, match="epochs >= 1"):
        agent_on(BPRMFAgent, env, epochs=0)


# --- Logging policies -------------------------------------------------------------------


def test_logging_policies_are_the_agents_they_name():
    env = synthetic_env(8)
    spaces = (env.single_observation_space, env.single_action_space)
    assert type(make_logging_policy("random", *spaces, seed=0)) is RandomAgent
    assert type(make_logging_policy("popularity", *spaces, seed=0)) is PopularityAgent
    bandit = make_logging_policy("epsilon-greedy", *spaces, seed=0, epsilon=0.3)
    assert type(bandit) is EpsilonGreedyAgent and bandit.epsilon == 0.3


def test_the_popularity_log_shows_the_most_popular_candidates():
    env = synthetic_env(8)
    spaces = (env.single_observation_space, env.single_action_space)
    observation, _ = env.reset(seed=0)
    slates = make_logging_policy("popularity", *spaces, seed=0).act(observation)
    popularity = observation["candidate_features"][..., POPULARITY_FEATURE]
    shown = popularity.gather(1, slates)
    assert (shown.min(1).values >= popularity.topk(3, dim=1).values[:, -1]).all()
    # Over a log, popularity shows fewer distinct items than random slates do.
    popular_log = collect_log(env, make_logging_policy("popularity", *spaces, seed=0), 500, seed=0)
    random_log = collect_log(env, make_logging_policy("random", *spaces, seed=0), 500, seed=0)
    assert popular_log.shown_ids.unique().numel() < random_log.shown_ids.unique().numel() == NUM_ITEMS


def test_the_epsilon_greedy_logger_learns_while_it_logs():
    env = synthetic_env(8)
    bandit = make_logging_policy("epsilon-greedy", env.single_observation_space, env.single_action_space, 0)
    log = collect_log(env, bandit, 400, seed=0)
    # It observed every logged impression and the reward credited to the clicks.
    assert int(bandit.impressions.sum()) == log.shown_ids.numel()
    torch.testing.assert_close(
        bandit.reward_sum.sum(), (log.reward[:, None] * log.clicks).sum().double(), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("policy", list(LOGGING_POLICIES))
def test_each_logging_policy_trains_a_recommender(policy):
    env = synthetic_env(8, shoppers="train")
    agent = agent_on(BPRMFAgent, env, logging_policy=policy, epochs=2)
    untrained = {key: value.clone() for key, value in agent.model.state_dict().items()}
    agent.fit(env, 400, seed=0)
    assert agent.describe()["training_data"]["logging_policy"] == policy
    assert not torch.equal(agent.model.item_bias, untrained["item_bias"])


# --- The models -------------------------------------------------------------------------


def test_gru4rec_ignores_empty_slots_and_scores_biases_for_an_empty_history():
    model = GRU4Rec(num_items=6, dim=3, hidden=4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.item_bias.copy_(torch.arange(6.0))
        items = torch.tensor([[0, 3, 5], [1, 2, 4]])
        empty = torch.full((2, 4), 6)
        torch.testing.assert_close(model(empty, items), model.item_bias[items])
        # Empty slots in front (as the history holds them) leave the state where it was.
        short = torch.tensor([[6, 6, 1, 4], [6, 6, 6, 2]])
        long = torch.tensor([[6, 6, 6, 6, 6, 1, 4], [6, 6, 6, 6, 6, 6, 2]])
        torch.testing.assert_close(model(short, items), model(long, items))
        # The order of the clicks matters to a sequential model.
        assert not torch.allclose(
            model(torch.tensor([[1, 4]]), items[:1]), model(torch.tensor([[4, 1]]), items[:1])
        )


def test_session_neumf_pools_the_filled_history_slots():
    model = SessionNeuMF(num_items=6, dim=3, layers=(5, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        items = torch.tensor([[0, 3], [5, 5]])
        padded = torch.tensor([[6, 1, 4], [6, 6, 2]])
        permuted = torch.tensor([[4, 6, 1], [2, 6, 6]])  # a mean does not depend on the order
        torch.testing.assert_close(model(padded, items), model(permuted, items))
        model.gmf_context[-1] = 100.0  # whatever the empty slot held would be masked
        model.mlp_context[-1] = 100.0
        torch.testing.assert_close(model(padded, items), model(permuted, items))
        assert model(padded, items).shape == (2, 2)


def test_bpr_loss_compares_each_click_with_each_shown_non_click():
    agent = agent_on(BPRMFAgent, synthetic_env(8))
    scores = torch.tensor([[2.0, 0.0, 1.0], [0.5, 3.0, 0.0]])
    clicks = torch.tensor([[True, False, False], [True, True, False]])
    pairs = torch.tensor([2.0 - 0.0, 2.0 - 1.0, 0.5 - 0.0, 3.0 - 0.0])
    expected = torch.nn.functional.softplus(-pairs).mean()
    torch.testing.assert_close(agent.loss(scores, clicks), expected)
    # Slates without a click, or clicked throughout, hold no pair.
    kept = agent.keeps(torch.tensor([[False, False, False], [True, True, True], [False, True, False]]))
    assert kept.tolist() == [False, False, True]


def test_gru4rec_loss_is_the_clicked_items_softmax_cross_entropy_over_the_slate():
    agent = agent_on(GRU4RecAgent, synthetic_env(8))
    scores = torch.tensor([[2.0, 0.0, 1.0], [0.5, 3.0, 0.0]])
    clicks = torch.tensor([[False, False, True], [True, True, False]])
    log_p = torch.log_softmax(scores, 1)
    expected = -(log_p[0, 2] + (log_p[1, 0] + log_p[1, 1]) / 2) / 2
    torch.testing.assert_close(agent.loss(scores, clicks), expected)


@pytest.mark.gpu
@pytest.mark.parametrize("agent_class", RECOMMENDERS, ids=lambda agent: agent.name)
def test_initial_weights_and_training_do_not_depend_on_the_device(agent_class):
    env = synthetic_env(8)
    on_cpu, on_cuda = (
        agent_on(agent_class, env, seed=4),
        agent_class(env.single_observation_space, env.single_action_space, seed=4, device="cuda"),
    )
    assert_state_equal(on_cpu.state_dict(), on_cuda.state_dict())
    log = collect_log(env, RandomAgent(env.single_observation_space, env.single_action_space, seed=0), 500, 0)
    on_cpu.train_on(log)
    on_cuda.train_on(log)
    for key, value in on_cpu.state_dict()["model"].items():
        torch.testing.assert_close(on_cuda.state_dict()["model"][key], value, rtol=1e-3, atol=1e-4)
