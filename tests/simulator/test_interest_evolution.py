"""RecSim's interest-evolution terms, one by one, at degenerate parameters, and the batched
simulator's contracts (determinism, snapshot/restore, autoreset)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shopgym.simulator.errors import ConfigError, SlateError
from shopgym.simulator.interest_evolution import (
    CHOICE_MODELS,
    OBSERVATION_KEYS,
    InterestEvolutionConfig,
    InterestEvolutionSimulator,
    choice_probabilities,
    choice_weights,
    cluster_quality_means,
    expected_utility,
    interest_step_size,
    sample_choice,
)

ALPHA = 0.9 / 3.4


def make(num_users: int = 1, seed: int = 0, **options) -> InterestEvolutionSimulator:
    return InterestEvolutionSimulator(InterestEvolutionConfig(**options), num_users, "cpu", seed=seed)


def set_candidates(simulator: InterestEvolutionSimulator, clusters, quality=None, length=None) -> None:
    """Give every user the (N,) candidate ``clusters`` (and qualities and lengths)."""
    b = simulator.num_shoppers
    cluster = torch.as_tensor(clusters).expand(b, -1).clone()
    n = cluster.shape[1]
    simulator.candidates = {
        "cluster": cluster,
        "quality": torch.zeros(b, n) if quality is None else torch.as_tensor(quality).float().expand(b, -1),
        "video_length": torch.full((b, n), 4.0) if length is None else torch.as_tensor(length).expand(b, -1),
    }


def slate(simulator: InterestEvolutionSimulator, *positions: int) -> torch.Tensor:
    return torch.tensor([positions]).expand(simulator.num_shoppers, -1)


# ------------------------------------------------------------------- config
def test_defaults_are_recsims():
    config = InterestEvolutionConfig()
    assert (config.num_candidates, config.slate_size, config.num_topics) == (10, 2, 20)
    assert (config.time_budget, config.step_penalty, config.video_length) == (200.0, 0.5, 4.0)
    assert config.user_update_alpha == pytest.approx(ALPHA)
    assert (config.user_quality_factor, config.document_quality_factor) == (0.0, 1.0)
    assert (config.no_click_mass, config.min_normalizer, config.choice_model) == (1.0, -1.0, "proportional")
    assert config.resample_documents and config.max_steps is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_candidates", 0),
        ("slate_size", 11),
        ("num_topics", 5),  # int(3.5) + int(1.5) clusters != 5
        ("quality_std", -1.0),
        ("video_length", 0.0),
        ("time_budget", 0.0),
        ("step_penalty", -0.1),
        ("choice_model", "cascade"),
        ("min_normalizer", -0.5),
        ("no_click_mass", -2.0),
        ("attention_prob", 1.5),
        ("alpha_x_intercept", 0.0),
        ("max_steps", 0),
        ("time_budget", math.inf),
    ],
)
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        InterestEvolutionConfig(**{field: value})


def test_cascade_scaling_must_give_probabilities():
    with pytest.raises(ConfigError, match="score_scaling"):
        InterestEvolutionConfig(choice_model="exponential_cascade", score_scaling=0.5)


# ---------------------------------------------------------------- documents
def test_cluster_means_follow_recsims_linspace():
    means = cluster_quality_means(InterestEvolutionConfig())
    assert means.shape == (20,)
    assert means[0] == -3 and means[13] == 0 and means[14] == 0 and means[19] == 3
    assert torch.allclose(means[:14], torch.linspace(-3, 0, 14))
    assert torch.allclose(means[14:], torch.linspace(0, 3, 6))


def test_documents_are_one_hot_with_quality_around_their_cluster_mean():
    simulator = make(500, quality_std=0.0)
    candidates = simulator.candidates
    means = cluster_quality_means(simulator.config)
    features = simulator.observe()["doc_features"]
    assert features.shape == (500, 10, 20)
    assert torch.equal(features.argmax(-1), candidates["cluster"])
    assert torch.equal(features.sum(-1), torch.ones(500, 10))
    assert torch.allclose(candidates["quality"], means[candidates["cluster"]])
    assert torch.equal(candidates["video_length"], torch.full((500, 10), 4.0))
    # Clusters are uniform: every one of the 20 appears among 5,000 draws.
    assert candidates["cluster"].unique().numel() == 20
    noisy = make(500).candidates
    spread = noisy["quality"] - means[noisy["cluster"]]
    assert spread.std().item() == pytest.approx(0.1, rel=0.05)


def test_candidates_are_resampled_every_step_or_kept():
    simulator = make(4)
    before = simulator.candidates["cluster"].clone()
    simulator.step(slate(simulator, 0, 1))
    assert not torch.equal(before, simulator.candidates["cluster"])
    fixed = make(4, resample_documents=False, time_budget=3.0)
    before = fixed.candidates["cluster"].clone()
    for _ in range(20):  # sessions end and restart on the same candidates
        fixed.step(slate(fixed, 0, 1))
    assert torch.equal(before, fixed.candidates["cluster"])


# -------------------------------------------------------------------- users
def test_users_start_uniform_with_a_full_budget():
    simulator = make(2000)
    assert simulator.interests.shape == (2000, 20)
    assert simulator.interests.min() >= -1 and simulator.interests.max() < 1
    assert simulator.interests.mean().item() == pytest.approx(0.0, abs=0.02)
    assert simulator.interests.var().item() == pytest.approx(1 / 3, rel=0.03)
    assert torch.equal(simulator.time_budget, torch.full((2000,), 200.0))


# ------------------------------------------------------------------- choice
def test_proportional_choice_is_score_minus_normalizer_over_the_sum():
    config = InterestEvolutionConfig()
    scores = torch.tensor([[0.5, -0.25]])
    expected = torch.tensor([[1.5, 0.75, 2.0]]) / 4.25
    assert torch.allclose(choice_probabilities(config, scores), expected)


def test_logit_choice_is_a_softmax_with_the_no_click_logit():
    config = InterestEvolutionConfig(choice_model="logit")
    scores = torch.tensor([[0.5, -0.25]])
    expected = torch.softmax(torch.tensor([[0.5, -0.25, 1.0]]), -1)
    assert torch.allclose(choice_probabilities(config, scores), expected)


@pytest.mark.parametrize("model", ["proportional_cascade", "exponential_cascade"])
def test_cascade_choice_examines_positions_in_order(model):
    config = InterestEvolutionConfig(choice_model=model)
    scores = torch.tensor([[0.5, -0.25]])
    raw = scores + 1 if model == "proportional_cascade" else scores.exp()
    c = config.attention_prob * config.score_scaling * raw[0]
    expected = torch.tensor([[c[0], (1 - c[0]) * c[1], (1 - c[0]) * (1 - c[1])]])
    assert torch.allclose(choice_probabilities(config, scores), expected)


@settings(max_examples=50, deadline=None)
@given(
    model=st.sampled_from(CHOICE_MODELS),
    scores=st.lists(st.floats(-1, 1), min_size=1, max_size=6),
    no_click_mass=st.floats(-1, 3),
)
def test_choice_probabilities_sum_to_one(model, scores, no_click_mass):
    config = InterestEvolutionConfig(choice_model=model, no_click_mass=no_click_mass)
    probabilities = choice_probabilities(config, torch.tensor([scores]))
    assert probabilities.shape == (1, len(scores) + 1)
    assert (probabilities >= 0).all()
    assert probabilities.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_sample_choice_never_draws_zero_weight_options():
    weights = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]).repeat(500, 1)
    uniform = torch.rand(1000, generator=torch.Generator().manual_seed(0))
    choice = sample_choice(weights, uniform)
    assert torch.equal(choice[0::2], torch.ones(500, dtype=torch.long))
    assert torch.equal(choice[1::2], torch.full((500,), 2))  # all zero: no click


def test_one_dominant_score_is_always_clicked():
    # no_click_mass = min_normalizer gives the no-click option weight 0; interest -1 gives a
    # video weight 0: only the video of topic 3 can be clicked, wherever it stands.
    simulator = make(64, no_click_mass=-1.0)
    simulator.interests = torch.full((64, 20), -1.0)
    simulator.interests[:, 3] = 0.2
    set_candidates(simulator, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    outcome = simulator.step(slate(simulator, 0, 3))
    assert torch.equal(outcome.clicks, torch.tensor([[False, True]]).expand(64, -1))
    assert not outcome.purchases.any()


def test_choice_frequencies_match_the_probabilities():
    simulator = make(20_000)
    simulator.interests = torch.zeros(20_000, 20)
    simulator.interests[:, 0] = 1.0  # weights: 2 (topic 0), 1 (topic 1), no click 2
    set_candidates(simulator, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    clicks = simulator.step(slate(simulator, 0, 1)).clicks.float().mean(0)
    assert clicks[0].item() == pytest.approx(0.4, abs=0.015)
    assert clicks[1].item() == pytest.approx(0.2, abs=0.015)


# ------------------------------------------------------- response and budget
def test_watch_time_is_the_whole_video_when_the_budget_allows():
    simulator = make(8, no_click_mass=-1.0)
    simulator.interests = torch.full((8, 20), -1.0)
    simulator.interests[:, 5] = 1.0
    set_candidates(simulator, [5, 1, 2, 3, 4, 0, 6, 7, 8, 9], quality=[2.0] + [0.0] * 9)
    outcome = simulator.step(slate(simulator, 1, 0))
    assert torch.equal(outcome.reward, torch.full((8,), 4.0))
    assert torch.equal(outcome.info["watch_time"], torch.full((8,), 4.0))
    # budget - watch time + alpha * watch time * quality
    assert torch.allclose(simulator.time_budget, torch.full((8,), 200 - 4 + ALPHA * 4 * 2.0))
    state = outcome.final_state
    assert torch.equal(state["response_watch_time"], torch.tensor([[0.0, 4.0]]).expand(8, -1))
    assert torch.equal(state["response_click"], torch.tensor([[0, 1]]).expand(8, -1))
    assert torch.equal(state["response_cluster_id"], torch.tensor([[1, 5]]).expand(8, -1))
    assert torch.equal(state["response_quality"], torch.tensor([[0.0, 2.0]]).expand(8, -1))
    assert not state["response_liked"].any()


def test_watch_time_is_cut_by_the_budget_and_the_session_ends():
    simulator = make(3, no_click_mass=-1.0)
    simulator.interests = torch.full((3, 20), -1.0)
    simulator.interests[:, 0] = 1.0
    simulator.time_budget = torch.tensor([1.5, 1.5, 1.5])
    set_candidates(simulator, list(range(10)), quality=[-1.0] + [0.0] * 9)
    outcome = simulator.step(slate(simulator, 0, 1))
    assert torch.allclose(outcome.reward, torch.full((3,), 1.5))
    assert torch.allclose(outcome.info["time_budget"], torch.full((3,), ALPHA * 1.5 * -1.0))
    assert outcome.terminated.all() and not outcome.truncated.any()
    # Same-step autoreset: fresh users with a full budget and no response yet.
    assert torch.equal(simulator.time_budget, torch.full((3,), 200.0))
    assert not simulator.observe()["response_click"].any()
    assert torch.equal(outcome.final_state["user"][:, 0], torch.ones(3))


def test_user_quality_factor_adds_the_expected_utility():
    simulator = make(2, no_click_mass=-1.0, user_quality_factor=1.0, document_quality_factor=0.0)
    simulator.interests = torch.full((2, 20), -1.0)
    simulator.interests[:, 0] = 0.5
    set_candidates(simulator, list(range(10)), quality=[3.0] * 10)
    simulator.step(slate(simulator, 0, 1))
    # The proportional model scores the video alone as 0.5 - min_normalizer = 1.5.
    assert torch.allclose(simulator.time_budget, torch.full((2,), 200 - 4 + ALPHA * 4 * 1.5))


def test_expected_utility_per_choice_model():
    scores = torch.tensor([0.5])
    assert expected_utility(InterestEvolutionConfig(), scores).item() == pytest.approx(1.5)
    logit = InterestEvolutionConfig(choice_model="logit")
    assert expected_utility(logit, scores).item() == pytest.approx(1 / (1 + math.exp(0.5)))
    cascade = InterestEvolutionConfig(choice_model="exponential_cascade")
    assert expected_utility(cascade, scores).item() == pytest.approx(0.65 * 0.05 * math.exp(0.5))


def test_a_slate_without_a_click_costs_the_step_penalty():
    simulator = make(5)
    simulator.interests = torch.full((5, 20), -1.0)  # every video has weight 0
    before = simulator.interests.clone()
    outcome = simulator.step(slate(simulator, 2, 7))
    assert not outcome.clicks.any() and torch.equal(outcome.reward, torch.zeros(5))
    assert torch.equal(simulator.time_budget, torch.full((5,), 199.5))
    assert torch.equal(simulator.interests, before)


def test_sessions_end_after_budget_over_step_penalty_slates_without_clicks():
    simulator = make(2, time_budget=2.0, step_penalty=0.5)
    ends = []
    for _ in range(4):
        simulator.interests = torch.full((2, 20), -1.0)
        ends.append(bool(simulator.step(slate(simulator, 0, 1)).terminated.all()))
    assert ends == [False, False, False, True]


def test_max_steps_truncates():
    simulator = make(3, max_steps=2)
    simulator.step(slate(simulator, 0, 1))
    outcome = simulator.step(slate(simulator, 0, 1))
    assert outcome.truncated.all() and not outcome.terminated.any()
    assert torch.equal(simulator.steps, torch.zeros(3, dtype=torch.long))


# ---------------------------------------------------------- interest update
def test_step_size_falls_linearly_with_the_interest():
    config = InterestEvolutionConfig()
    x = torch.tensor([[-1.0, -0.5, 0.0, 0.5, 1.0]])
    assert torch.allclose(interest_step_size(config, x), torch.tensor([[0.0, 0.15, 0.3, 0.15, 0.0]]))


def test_interest_moves_towards_the_video_with_probability_of_interest():
    b = 20_000
    simulator = make(b, no_click_mass=-1.0)
    simulator.interests = torch.full((b, 20), -1.0)
    simulator.interests[:, 4] = 0.5
    set_candidates(simulator, list(range(10)))
    simulator.step(slate(simulator, 4, 0))
    moved = simulator.interests[:, 4]
    # alpha(0.5) = 0.15, target 1 - 0.5: up to 0.575 with probability (0.5 + 1) / 2, else down to 0.425.
    up = torch.isclose(moved, torch.tensor(0.575))
    down = torch.isclose(moved, torch.tensor(0.425))
    assert (up | down).all()
    assert up.float().mean().item() == pytest.approx(0.75, abs=0.015)
    others = torch.cat([simulator.interests[:, :4], simulator.interests[:, 5:]], 1)
    assert torch.equal(others, torch.full((b, 19), -1.0))  # the mask keeps other topics


def test_interest_is_clipped_to_minus_one():
    # Every candidate is of topic 1, where the interest is -1, and the no-click option has
    # weight 0 (no_click_mass = min_normalizer): a video is clicked, and the interest moves
    # away with probability 1 - (-1 + 1) / 2 = 1. With x0 = 2, alpha(|-1|) = 0.3 - 0.15 = 0.15:
    # -1 - 0.15 * (1 - (-1)) = -1.3, clipped to -1.
    simulator = make(10, no_click_mass=-1.5, min_normalizer=-1.5, alpha_x_intercept=2.0)
    simulator.interests = torch.full((10, 20), -1.0)
    set_candidates(simulator, [1] * 10)
    outcome = simulator.step(slate(simulator, 1, 2))
    assert outcome.clicks.any(1).all()
    assert torch.equal(simulator.interests, torch.full((10, 20), -1.0))


# ---------------------------------------------------- properties and streams
def random_slates(generator: torch.Generator, b: int, n: int = 10, k: int = 2) -> torch.Tensor:
    return torch.rand((b, n), generator=generator).argsort(1)[:, :k]


def rollout(seed: int, steps: int = 60, b: int = 8, **options) -> list:
    simulator = make(b, seed=seed, **options)
    simulator.reset(seed)
    policy = torch.Generator().manual_seed(seed)
    record = []
    for _ in range(steps):
        outcome = simulator.step(random_slates(policy, b))
        record.append((outcome.reward, outcome.clicks, outcome.done, simulator.observe()))
    return record


def same(a: list, b: list) -> bool:
    for (ra, ca, da, oa), (rb, cb, db, ob) in zip(a, b, strict=True):
        if not (torch.equal(ra, rb) and torch.equal(ca, cb) and torch.equal(da, db)):
            return False
        if not all(torch.equal(oa[key], ob[key]) for key in oa):
            return False
    return True


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_same_seed_gives_identical_rollouts(seed):
    assert same(rollout(seed, time_budget=20.0), rollout(seed, time_budget=20.0))


def test_different_seeds_differ():
    assert not same(rollout(1), rollout(2))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), budget=st.floats(1.0, 30.0), quality_std=st.floats(0.0, 2.0))
def test_clicks_and_budget_invariants(seed, budget, quality_std):
    """Clicks: at most one per slate, only on shown positions, mirrored in the response.
    Budget after a step: exactly budget - step_penalty without a click (so >= -step_penalty:
    a budget of 1e-40 minus 0.5 rounds to -0.5 in float32),
    and at least user_update_alpha * watch time * quality of the clicked video with one."""
    simulator = make(64, seed=seed, time_budget=budget, quality_std=quality_std)
    policy = torch.Generator().manual_seed(seed)
    for _ in range(30):
        before = simulator.time_budget.clone()
        outcome = simulator.step(random_slates(policy, 64))
        clicked = outcome.clicks.any(1)
        assert (outcome.clicks.sum(1) <= 1).all()
        assert torch.equal(outcome.final_state["response_click"].bool(), outcome.clicks)
        assert torch.equal(outcome.reward > 0, clicked & (before > 0))
        end = outcome.info["time_budget"]
        assert torch.allclose(end[~clicked], before[~clicked] - 0.5)
        assert (end[~clicked] >= -0.5).all()
        quality = (outcome.final_state["response_quality"] * outcome.clicks).sum(1)
        floor = ALPHA * outcome.info["watch_time"] * quality
        assert (end[clicked] >= floor[clicked] - 1e-4).all()
        assert (outcome.reward <= torch.minimum(before.clamp(min=0), torch.tensor(4.0)) + 1e-6).all()


def test_documents_do_not_depend_on_the_policy():
    a, b = make(16, seed=3), make(16, seed=3)
    for step in range(30):
        a.step(slate(a, 0, 1))
        b.step(slate(b, step % 10, (step + 5) % 10))
        assert torch.equal(a.candidates["quality"], b.candidates["quality"])


def test_snapshot_and_restore_replay_the_future():
    simulator = make(6, seed=5, time_budget=10.0)
    policy = torch.Generator().manual_seed(0)
    for _ in range(5):
        simulator.step(random_slates(policy, 6))
    snapshot = simulator.snapshot()
    slates = [random_slates(policy, 6) for _ in range(20)]
    first = [simulator.step(s).reward for s in slates]
    first_obs = simulator.observe()
    simulator.restore(snapshot)
    second = [simulator.step(s).reward for s in slates]
    assert all(torch.equal(x, y) for x, y in zip(first, second, strict=True))
    assert all(torch.equal(first_obs[key], simulator.observe()[key]) for key in first_obs)


def test_observation_keys_and_shapes_for_one_user():
    simulator = make(1)
    observation = simulator.observe()
    assert tuple(observation) == OBSERVATION_KEYS
    assert observation["user"].shape == (1, 20) and observation["doc_features"].shape == (1, 10, 20)
    assert all(observation[key].shape == (1, 2) for key in OBSERVATION_KEYS[2:])
    assert observation["user"].dtype == torch.float32


def test_invalid_slates_raise():
    simulator = make(2)
    with pytest.raises(SlateError, match="repeats"):
        simulator.step(torch.tensor([[0, 1], [3, 3]]))
    with pytest.raises(SlateError, match="out of range"):
        simulator.step(torch.tensor([[0, 10], [1, 2]]))


def test_bad_batch_size_raises():
    with pytest.raises(ConfigError, match="num_envs"):
        InterestEvolutionSimulator(InterestEvolutionConfig(), 0, "cpu")


def test_choice_weights_shape():
    assert choice_weights(InterestEvolutionConfig(), torch.zeros(4, 3)).shape == (4, 4)


@pytest.mark.gpu
def test_runs_on_cuda():
    simulator = InterestEvolutionSimulator(InterestEvolutionConfig(), 256, "cuda", seed=0)
    slates = torch.tensor([[0, 1]]).expand(256, -1)
    outcome = simulator.step(slates)
    assert outcome.reward.device.type == "cuda"
    again = InterestEvolutionSimulator(InterestEvolutionConfig(), 256, "cuda", seed=0)
    assert torch.equal(again.step(slates).reward, outcome.reward)


def test_check_script_runs_on_a_tiny_budget(capsys):
    from shopgym.experiments.interest_evolution_check import main, mean_ci

    for policy in ("random", "greedy"):
        text = main(["--episodes", "20", "--policy", policy])
        assert "| shopgym | 20 |" in text and "RecSim" not in text
    assert "mean return" in capsys.readouterr().out
    mean, low, high = mean_ci([1.0, 2.0, 3.0])
    assert low < mean == 2.0 < high
