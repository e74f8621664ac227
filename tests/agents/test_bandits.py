"""The online bandits: exact update arithmetic on hand-made transitions, valid slates,
learning on a world whose best slate is known, determinism, saving and loading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from shopgym.agents import AGENTS, Transition
from shopgym.agents.bandits import (
    CascadingUCBAgent,
    EpsilonGreedyAgent,
    LinearThompsonAgent,
    LinUCBAgent,
    ThompsonSamplingAgent,
    UCB1Agent,
    credited_reward,
    first_click_examined,
    sample_beta,
)
from shopgym.envs import make_torch_env
from shopgym.envs.torch_env import TorchStep
from shopgym.experiments.evaluation import evaluate
from shopgym.experiments.stats import bootstrap_ci
from shopgym.simulator.build import synthetic_world
from shopgym.simulator.errors import ConfigError

from .helpers import assert_state_equal, assert_valid_slates, rollout, synthetic_env

NUM_ITEMS = 40  # the synthetic World's catalogue
NUM_FEATURES = 11  # its item features: popularity, price, 4 categories, 4 item-vector entries, bias
BANDITS = (
    EpsilonGreedyAgent,
    UCB1Agent,
    ThompsonSamplingAgent,
    CascadingUCBAgent,
    LinUCBAgent,
    LinearThompsonAgent,
)
NEW_BANDITS = BANDITS[1:]
ITEM_BANDITS = (EpsilonGreedyAgent, UCB1Agent, ThompsonSamplingAgent, CascadingUCBAgent)
LINEAR_BANDITS = (LinUCBAgent, LinearThompsonAgent)
every_bandit = pytest.mark.parametrize("agent_class", BANDITS, ids=lambda agent: agent.name)


def _agent(agent_class=EpsilonGreedyAgent, env=None, seed: int = 0, **kwargs):
    env = env or synthetic_env()
    return agent_class(
        env.single_observation_space, env.single_action_space, seed=seed, device="cpu", **kwargs
    )


def _features(candidate_ids) -> torch.Tensor:
    """Made-up (B, N, F) features that differ per item: feature f of item i is sin(i + 3f)."""
    ids = torch.as_tensor(candidate_ids, dtype=torch.float32)
    return torch.sin(ids[..., None] + 3 * torch.arange(NUM_FEATURES))


def _transition(candidate_ids, action, reward, clicks, purchases=None) -> Transition:
    """A hand-made batch: B rows of N candidates, the (B, k) slates shown and what happened."""
    candidate_ids = torch.as_tensor(candidate_ids, dtype=torch.int64)
    clicks = torch.as_tensor(clicks, dtype=torch.bool)
    purchases = (
        torch.zeros_like(clicks) if purchases is None else torch.as_tensor(purchases, dtype=torch.bool)
    )
    observation = {"candidate_ids": candidate_ids, "candidate_features": _features(candidate_ids)}
    rows = len(candidate_ids)
    step = TorchStep(
        observation=observation,
        reward=torch.as_tensor(reward, dtype=torch.float32),
        terminated=torch.zeros(rows, dtype=torch.bool),
        truncated=torch.zeros(rows, dtype=torch.bool),
        clicks=clicks,
        purchases=purchases,
        info={},
        observe_final=lambda: observation,
    )
    return Transition(observation, torch.as_tensor(action, dtype=torch.int64), step)


CANDIDATES = [list(range(10)), list(range(10, 20))]


# ---------------------------------------------------------------- every bandit


@every_bandit
def test_slates_are_valid_while_learning(agent_class):
    env = synthetic_env(num_envs=6)
    agent = _agent(agent_class, env)
    assert agent.learns_online and not agent.trains_before_evaluation

    def check(action):
        assert_valid_slates(action, 6, env.slate_size, env.single_action_space.num_candidates)

    rollout(env, agent, steps=40, seed=3, check=check)


@every_bandit
def test_same_seed_gives_identical_records(agent_class):
    def records() -> pd.DataFrame:
        env = synthetic_env(num_envs=5, shoppers="test")
        return evaluate(_agent(agent_class, env, seed=3), env, 40, seed=7)

    pd.testing.assert_frame_equal(records(), records())


# LinUCB draws nothing at random once its scores differ (from its first step on).
@pytest.mark.parametrize(
    "agent_class", [cls for cls in BANDITS if cls is not LinUCBAgent], ids=lambda agent: agent.name
)
def test_another_seed_shows_other_slates(agent_class):
    def slates(seed: int) -> torch.Tensor:
        env = synthetic_env(num_envs=5)
        return rollout(env, _agent(agent_class, env, seed=seed), steps=10, seed=7)

    assert torch.equal(slates(0), slates(0))
    assert not torch.equal(slates(0), slates(1))


@every_bandit
def test_save_and_load_round_trip(agent_class, tmp_path):
    env = synthetic_env()
    trained = _agent(agent_class, env)
    rollout(env, trained, steps=30, seed=1)
    trained.save(tmp_path / "agent.pt")
    loaded = _agent(agent_class, env, seed=123)
    loaded.load(tmp_path / "agent.pt")
    assert_state_equal(loaded.state_dict(), trained.state_dict())
    assert all(isinstance(value, torch.Tensor) for value in trained.state_dict().values())
    # With the same random stream, the loaded agent acts exactly as the trained one.
    observation, _ = env.reset(seed=2)
    trained.generator.manual_seed(5)
    loaded.generator.manual_seed(5)
    for _ in range(5):
        assert torch.equal(loaded.act(observation), trained.act(observation))
    # And it goes on learning from where the trained one stopped.
    rollout(env, loaded, steps=5, seed=4)
    before, after = trained.state_dict(), loaded.state_dict()
    assert any(not torch.equal(after[key], before[key]) for key in before)


@every_bandit
def test_loading_another_agent_or_another_shape_is_an_error(agent_class, tmp_path):
    agent = _agent(agent_class)
    other = next(cls for cls in BANDITS if cls is not agent_class)
    _agent(other).save(tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="saved agent"):
        agent.load(tmp_path / "other.pt")
    # One more entry along the last axis of every array (the step count stays as it is).
    wrong = {
        key: torch.zeros((*value.shape[:-1], value.shape[-1] + 1)) if value.dim() else value
        for key, value in agent.state_dict().items()
    }
    with pytest.raises(ConfigError):
        agent.load_state_dict(wrong)


@every_bandit
def test_describe_names_the_signal_and_online_training(agent_class):
    description = _agent(agent_class).describe()
    assert description["name"] == agent_class.name
    assert "online" in description["training"]
    assert "click" in description["signal"]


# ---------------------------------------------------------------- credit


def test_the_reward_is_split_over_clicked_positions():
    transition = _transition(
        CANDIDATES * 2, [[0, 1, 2]] * 4, [2.0, 3.0, 1.0, 0.0], [[0, 1, 0], [1, 0, 1], [0, 0, 0], [0, 0, 1]]
    )
    expected = torch.tensor([[0, 2.0, 0], [1.5, 0, 1.5], [0, 0, 0], [0, 0, 0]], dtype=torch.float64)
    assert torch.equal(credited_reward(transition), expected)


def test_the_cascade_examines_up_to_the_first_click():
    clicks = torch.tensor([[0, 1, 0], [0, 0, 0], [1, 0, 1], [0, 1, 1]], dtype=torch.bool)
    examined, first = first_click_examined(clicks)
    assert examined.tolist() == [[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert first.int().tolist() == [[0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]]


# ---------------------------------------------------------------- ε-greedy


def test_observe_credits_the_reward_only_to_the_clicked_position():
    agent = _agent()
    # Row 0 shows items 4, 7, 1 and clicks the second (reward 2: click and purchase);
    # row 1 shows items 12, 15, 19 with no click (a reward without a click credits nothing).
    agent.observe(_transition(CANDIDATES, [[4, 7, 1], [2, 5, 9]], [2.0, 1.5], [[0, 1, 0], [0, 0, 0]]))
    expected_reward = torch.zeros(NUM_ITEMS, dtype=torch.float64)
    expected_reward[7] = 2.0
    assert torch.equal(agent.reward_sum, expected_reward)
    expected_impressions = torch.zeros(NUM_ITEMS, dtype=torch.float64)
    expected_impressions[[4, 7, 1, 12, 15, 19]] = 1
    assert torch.equal(agent.impressions, expected_impressions)
    assert agent.slates == 2


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
    rollout(synthetic_env(), agent, steps=50, seed=0)
    global_mean = agent.reward_sum.sum() / agent.impressions.sum()
    assert global_mean > 0
    torch.testing.assert_close(
        agent.estimates(), torch.full_like(agent.estimates(), global_mean), rtol=1e-5, atol=0
    )


def test_estimates_start_at_zero_and_untrained_greedy_slates_are_random():
    agent = _agent(epsilon=0.0)
    assert torch.equal(agent.estimates(), torch.zeros(NUM_ITEMS, dtype=torch.float64))
    observation, _ = synthetic_env().reset(seed=0)
    firsts = torch.cat([agent.act(observation)[:, 0] for _ in range(100)])
    assert len(firsts.unique()) == 10  # all ties: any candidate may come first


def test_epsilon_zero_shows_the_candidates_with_the_highest_estimates_best_first():
    env = synthetic_env()
    agent = _agent(epsilon=0.0, env=env)
    rollout(env, agent, steps=60, seed=1)
    estimates = agent.estimates()
    observation, _ = env.reset(seed=2)
    for _ in range(20):
        slate = agent.act(observation)
        candidate_estimates = estimates[observation["candidate_ids"]]
        shown = candidate_estimates.gather(1, slate)
        assert (shown.diff(dim=1) <= 0).all()
        hidden = candidate_estimates.scatter(1, slate, -torch.inf)
        assert (shown.min(1).values >= hidden.max(1).values).all()
        observation = env.step(slate).observation


def test_epsilon_zero_puts_a_rewarded_item_first():
    agent = _agent(epsilon=0.0)
    for _ in range(3):
        agent.observe(_transition(CANDIDATES, [[6, 0, 1], [0, 1, 2]], [2.0, 0.0], [[1, 0, 0], [0, 0, 0]]))
    observation = {"candidate_ids": torch.tensor([[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]] * 4)}
    assert agent.act(observation)[:, 0].tolist() == [3, 3, 3, 3]  # candidate index of item 6


def test_epsilon_sets_the_share_of_random_slates():
    env = synthetic_env()
    agent = _agent(epsilon=0.5, env=env)
    # Distinct estimates, so the greedy slate is unique.
    agent.reward_sum = torch.arange(NUM_ITEMS, dtype=torch.float64)
    agent.impressions = torch.ones(NUM_ITEMS, dtype=torch.float64)
    observation, _ = env.reset(seed=0)
    greedy = agent.estimates()[observation["candidate_ids"]].argsort(1, descending=True)[:, :3]
    same = torch.cat([(agent.act(observation) == greedy).all(1) for _ in range(250)])
    # P(greedy slate) = 1 - ε + ε / (10·9·8).
    assert abs(same.double().mean() - 0.5) < 0.05, same.double().mean()


# ---------------------------------------------------------------- UCB1 and CascadeUCB1


def test_ucb1_index_is_the_mean_reward_plus_the_bonus():
    agent = _agent(UCB1Agent, exploration=0.5)
    # Items 0, 1, 2 (row 0; reward 2 to item 1) and 0, 3, 4 (row 1; reward 1 to item 0).
    agent.observe(
        _transition([list(range(10))] * 2, [[0, 1, 2], [0, 3, 4]], [2.0, 1.0], [[0, 1, 0], [1, 0, 0]])
    )
    index = agent.index()
    bonus = 0.5 * np.sqrt(2 * np.log(6.0) / np.array([2, 1, 1, 1, 1]))
    np.testing.assert_allclose(index[:5], np.array([0.5, 2.0, 0.0, 0.0, 0.0]) + bonus)
    assert torch.isinf(index[5:]).all()  # never shown


def test_ucb1_tries_unseen_candidates_then_exploits_the_best():
    agent = _agent(UCB1Agent, exploration=0.0)
    row = [list(range(10))]
    agent.observe(_transition(row, [[0, 1, 2]], [1.0], [[0, 0, 1]]))
    observation = {"candidate_ids": torch.tensor(row * 50)}
    slates = agent.act(observation)
    # The 7 unseen candidates come first (any 3 of them), before the seen ones.
    assert (slates >= 3).all() and len(slates.unique()) == 7
    for start in (3, 6):
        agent.observe(_transition(row, [[start, start + 1, start + 2]], [0.0], [[0, 0, 0]]))
    agent.observe(_transition(row, [[9, 0, 1]], [0.0], [[0, 0, 0]]))
    # Everything seen, no bonus: item 2 (mean 1) first, then the ties at 0.
    assert (agent.act(observation)[:, 0] == 2).all()


def test_cascade_counts_examined_positions_and_first_clicks():
    agent = _agent(CascadingUCBAgent, exploration=1.0)
    # Row 0 clicks position 1 (item 5): items 4, 5 examined, item 6 not.
    # Row 1 clicks nothing: items 10, 11, 12 examined. Row 2 clicks positions 0 and 2: only item 0 counts.
    agent.observe(
        _transition(
            [list(range(10)), list(range(10, 20)), list(range(10))],
            [[4, 5, 6], [0, 1, 2], [0, 1, 2]],
            [1.0, 0.0, 2.0],
            [[0, 1, 0], [0, 0, 0], [1, 0, 1]],
        )
    )
    expected_clicks = torch.zeros(NUM_ITEMS, dtype=torch.float64)
    expected_clicks[[5, 0]] = 1
    expected_examined = torch.zeros(NUM_ITEMS, dtype=torch.float64)
    expected_examined[[4, 5, 10, 11, 12, 0]] = 1
    assert torch.equal(agent.reward_sum, expected_clicks)
    assert torch.equal(agent.impressions, expected_examined)
    assert agent.slates == 3
    index = agent.index()
    bonus = np.sqrt(1.5 * np.log(3.0))  # one examination each, t = 3 slates
    np.testing.assert_allclose(index[[0, 4, 5, 10]], np.array([1.0, 0.0, 1.0, 0.0]) + bonus)
    assert torch.isinf(index[[1, 2, 6]]).all()  # shown but never examined


# ---------------------------------------------------------------- Thompson sampling


def test_thompson_posterior_counts_clicks_not_rewards():
    agent = _agent(ThompsonSamplingAgent, prior_clicks=2.0, prior_skips=3.0)
    agent.observe(_transition(CANDIDATES, [[0, 1, 2], [0, 1, 2]], [2.0, 1.0], [[1, 0, 0], [0, 1, 0]]))
    agent.observe(_transition(CANDIDATES, [[0, 1, 2], [0, 1, 2]], [0.0, 0.0], [[0, 0, 0], [0, 0, 0]]))
    alpha, beta = agent.posterior()
    # Item 0: 2 impressions, 1 click; item 11: 2 impressions, 1 click; item 2: 2, no click.
    assert (alpha[[0, 11, 2]].tolist(), beta[[0, 11, 2]].tolist()) == ([3.0, 3.0, 2.0], [4.0, 4.0, 5.0])
    assert alpha[30] == 2.0 and beta[30] == 3.0  # the prior


@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (3.0, 17.0), (0.2, 0.5), (40.0, 2.0)])
def test_beta_samples_have_the_beta_mean_and_variance(alpha, beta):
    generator = torch.Generator().manual_seed(0)
    draws = sample_beta(torch.full((200_000,), alpha), torch.full((200_000,), beta), generator)
    assert ((draws >= 0) & (draws <= 1)).all()
    mean = alpha / (alpha + beta)
    variance = alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1))
    assert abs(draws.mean() - mean) < 5 * np.sqrt(variance / len(draws))
    assert abs(draws.var() / variance - 1) < 0.03


def test_thompson_draws_per_shopper_and_favours_a_clicked_item():
    agent = _agent(ThompsonSamplingAgent)
    observation = {"candidate_ids": torch.tensor([list(range(10))] * 200)}
    # Equal posteriors: every shopper draws its own ranking.
    assert len(agent.act(observation).unique(dim=0)) > 100
    for _ in range(50):
        agent.observe(_transition([list(range(10))], [[4, 0, 1]], [1.0], [[1, 0, 0]]))
    # Item 4 (Beta(51, 1)) beats the 7 unseen items (Beta(1, 1)) with probability 51/58.
    first = agent.act(observation)[:, 0]
    assert (first == 4).double().mean() > 0.8


# ---------------------------------------------------------------- linear bandits


def _ridge(transitions, ridge: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A, b and theta of the ridge regression, impression by impression."""
    gram = ridge * torch.eye(NUM_FEATURES + 1, dtype=torch.float64)
    target = torch.zeros(NUM_FEATURES + 1, dtype=torch.float64)
    for transition in transitions:
        reward = credited_reward(transition)
        for b, slate in enumerate(transition.action.tolist()):
            for position, candidate in enumerate(slate):
                x = torch.cat(
                    [transition.observation["candidate_features"][b, candidate].double(), torch.ones(1)]
                )
                gram += torch.outer(x, x)
                target += reward[b, position] * x
    return gram, target, torch.linalg.solve(gram, target)


@pytest.mark.parametrize("agent_class", LINEAR_BANDITS, ids=lambda agent: agent.name)
def test_linear_batched_update_equals_the_ridge_regression(agent_class):
    agent = _agent(agent_class, ridge=2.0)
    transitions = [
        _transition(CANDIDATES, [[4, 7, 1], [2, 5, 9]], [2.0, 1.0], [[0, 1, 0], [1, 0, 1]]),
        _transition(CANDIDATES, [[0, 1, 2], [3, 4, 5]], [1.0, 0.0], [[1, 0, 0], [0, 0, 0]]),
    ]
    for transition in transitions:
        agent.observe(transition)
    gram, target, theta = _ridge(transitions, ridge=2.0)
    torch.testing.assert_close(agent.gram, gram)
    torch.testing.assert_close(agent.target, target)
    torch.testing.assert_close(agent.theta, theta)
    torch.testing.assert_close(agent.covariance, torch.linalg.inv(gram))


def test_linucb_scores_are_the_prediction_plus_alpha_standard_errors():
    agent = _agent(LinUCBAgent, exploration=0.7)
    agent.observe(_transition(CANDIDATES, [[4, 7, 1], [2, 5, 9]], [2.0, 1.0], [[0, 1, 0], [1, 0, 0]]))
    contexts = agent.contexts({"candidate_features": _features(CANDIDATES)})
    x = contexts[1, 3]
    expected = x @ agent.theta + 0.7 * torch.sqrt(x @ torch.linalg.inv(agent.gram) @ x)
    torch.testing.assert_close(agent.scores(contexts)[1, 3], expected)


def test_linucb_without_exploration_shows_the_best_predictions_best_first():
    env = synthetic_env()
    agent = _agent(LinUCBAgent, env, exploration=0.0)
    rollout(env, agent, steps=30, seed=0)
    observation, _ = env.reset(seed=1)
    predictions = agent.predictions(agent.contexts(observation))
    assert torch.equal(agent.act(observation), predictions.argsort(1, descending=True)[:, :3])


def test_linucb_is_least_sure_where_it_has_seen_nothing():
    agent = _agent(LinUCBAgent, ridge=2.0)
    for _ in range(50):
        agent.observe(_transition([list(range(10))], [[0, 1, 2]], [0.0], [[0, 0, 0]]))
    seen = agent.contexts({"candidate_features": _features([[0, 1, 2]])})[0]  # (3, d)
    # A direction orthogonal to the three contexts shown: A keeps only the ridge there.
    basis = torch.linalg.qr(seen.T).Q  # (d, 3)
    unseen = torch.eye(agent.dim, dtype=torch.float64)[4]
    unseen = unseen - basis @ (basis.T @ unseen)
    widths = agent.widths(torch.cat([seen, unseen[None]])[None])[0]
    torch.testing.assert_close(widths[3], unseen.norm() / np.sqrt(2.0))
    # 50 impressions each: at most |x| / sqrt(2 + 50 |x|^2) < 1 / sqrt(50).
    assert (widths[:3] < 1 / np.sqrt(50)).all()


def test_linear_thompson_weights_follow_the_posterior():
    agent = _agent(LinearThompsonAgent, scale=0.5)
    agent.observe(_transition(CANDIDATES, [[4, 7, 1], [2, 5, 9]], [2.0, 1.0], [[0, 1, 0], [1, 0, 0]]))
    weights = agent.sample_weights(100_000)
    assert weights.shape == (100_000, NUM_FEATURES + 1)
    torch.testing.assert_close(weights.mean(0), agent.theta, atol=0.01, rtol=0)
    torch.testing.assert_close(weights.T.cov(), 0.25 * agent.covariance, atol=0.005, rtol=0.05)


def test_linear_thompson_at_scale_zero_is_greedy_and_otherwise_varies_by_shopper():
    env = synthetic_env()
    greedy = _agent(LinearThompsonAgent, env, scale=0.0)
    rollout(env, greedy, steps=20, seed=0)
    observation, _ = env.reset(seed=1)
    predictions = greedy.predictions(greedy.contexts(observation))
    assert torch.equal(greedy.act(observation), predictions.argsort(1, descending=True)[:, :3])
    sampling = _agent(LinearThompsonAgent, env, scale=1.0)
    # One shopper's candidates, 100 times.
    same = {key: value[:1].expand(100, *value.shape[1:]) for key, value in observation.items()}
    assert len(sampling.act(same).unique(dim=0)) > 20


@pytest.mark.parametrize("agent_class", LINEAR_BANDITS, ids=lambda agent: agent.name)
def test_linear_bandits_run_on_interest_evolution_features(agent_class):
    env = make_torch_env("shopgym/InterestEvolution-v0", 4, device="cpu")
    agent = _agent(agent_class, env, features_key="doc_features")
    assert agent.dim == env.single_observation_space["doc_features"].shape[1] + 1

    def check(action):
        assert_valid_slates(action, 4, env.slate_size, env.single_action_space.num_candidates)

    rollout(env, agent, steps=10, seed=0, check=check)
    assert agent.gram.trace() > agent.dim  # it learned from the impressions


@pytest.mark.parametrize("agent_class", ITEM_BANDITS, ids=lambda agent: agent.name)
def test_item_bandits_need_catalogue_ids(agent_class):
    with pytest.raises(ConfigError, match="candidate_ids"):
        _agent(agent_class, make_torch_env("shopgym/InterestEvolution-v0", 2, device="cpu"))


@pytest.mark.parametrize(
    "agent_class, kwargs",
    [
        (EpsilonGreedyAgent, {"epsilon": -0.1}),
        (EpsilonGreedyAgent, {"epsilon": 1.5}),
        (EpsilonGreedyAgent, {"prior_impressions": 0.0}),
        (UCB1Agent, {"exploration": -1.0}),
        (CascadingUCBAgent, {"exploration": -1.0}),
        (ThompsonSamplingAgent, {"prior_clicks": 0.0}),
        (LinUCBAgent, {"ridge": 0.0}),
        (LinUCBAgent, {"exploration": -1.0}),
        (LinearThompsonAgent, {"scale": -1.0}),
        (LinUCBAgent, {"features_key": "missing"}),
    ],
)
def test_invalid_settings_are_rejected(agent_class, kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs)).split("_")[0]):
        _agent(agent_class, **kwargs)


# ---------------------------------------------------------------- learning


@pytest.fixture(scope="module")
def one_best_slate():
    """personalization=0: utilities are the item bias alone, so one slate is best for
    every shopper. Returns the world's env options and the late-round returns of the
    random policy and the oracle (one per seed)."""
    options = {"world": synthetic_world(personalization=0.0), "shoppers": "test", "device": "cpu"}
    return options, _late_returns(AGENTS["random"], options), _late_returns(AGENTS["oracle"], options)


SEEDS = range(5)
NUM_ENVS, EPISODES, LATE_ROUND = 10, 400, 30  # 40 rounds of 10 shoppers; the last quarter


def _late_returns(agent_class, options) -> np.ndarray:
    """Each seed's mean return over the last quarter of rounds, learning online from the start."""
    per_seed = []
    for seed in SEEDS:
        env = make_torch_env(
            "shopgym/SyntheticShopper-v0", NUM_ENVS, oracle_info=agent_class.needs_oracle, **options
        )
        agent = agent_class(env.single_observation_space, env.single_action_space, seed=seed, device="cpu")
        records = evaluate(agent, env, EPISODES, seed=seed)
        per_seed.append(records.loc[records["round"] >= LATE_ROUND, "return"].mean())
    return np.array(per_seed)


@pytest.mark.parametrize("agent_class", NEW_BANDITS, ids=lambda agent: agent.name)
def test_bandit_learns_the_best_slate_when_one_is_best_for_everyone(agent_class, one_best_slate):
    options, random, oracle = one_best_slate
    bandit = _late_returns(agent_class, options)
    print(f"\n{agent_class.name}: {bandit.round(2)}, random {random.round(2)}, oracle {oracle.round(2)}")
    # Beats random with non-overlapping 95% bootstrap intervals over seeds...
    assert bootstrap_ci(bandit)[0] > bootstrap_ci(random)[1]
    # ...and reaches 90% of the oracle's return after 30 rounds (about 1000 slates).
    assert bandit.mean() >= 0.9 * oracle.mean(), f"{bandit.mean() / oracle.mean():.2f} of the oracle"
