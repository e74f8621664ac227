"""The per-shopper reference simulators (shopgym.simulator.reference) against the batched
core: the same distribution of outcomes under uniformly random slates, and a comparison
with the power to see a wrong dynamic.

Each comparison is a two-sample z-test per estimate (mean return, mean length, CTR per
slate position) at |z| <= 3.5, combining both standard errors: with a dozen estimates
per comparison, a false alarm has odds of about 1 in 200 for a new seed (the seeds
here are fixed, so the outcome is too). Batched rollouts count the first episode of
each row (see ``batched_random_episodes``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError, SlateError
from shopgym.simulator.interest_evolution import (
    OBSERVATION_KEYS,
    InterestEvolutionConfig,
    InterestEvolutionSimulator,
)
from shopgym.simulator.reference import (
    Episodes,
    Estimate,
    batched_random_episodes,
    compare,
    run_random_episodes,
)
from shopgym.simulator.reference.interest_evolution import ReferenceInterestEvolution
from shopgym.simulator.reference.shopper import ReferenceShopper, ShopperTruth
from shopgym.simulator.shoppers import ShopperSimulator

Z = 3.5
SHOPPER_EPISODES = 3000  # about 18,000 slates a side, under a second each
INTEREST_EPISODES = 2000  # about 170,000 slates a side: some 5 s for the reference


def disagreements(a: Episodes, b: Episodes) -> dict[str, tuple[Estimate, Estimate]]:
    """The estimates on which a and b disagree at ``Z`` (empty: they agree)."""
    return {name: (x, y) for name, (x, y, agree) in compare(a, b, Z).items() if not agree}


def batched_shopper(world, config: ShopperConfig, seed: int) -> Episodes:
    simulator = ShopperSimulator(world, config, SHOPPER_EPISODES, device="cpu", seed=seed)
    return batched_random_episodes(simulator, seed)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Batched steps of a few thousand rows gain little from a second thread, and lose
    much when other jobs hold the cores; restored afterwards for the other tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def truth(synthetic) -> ShopperTruth:
    return ShopperTruth.from_world(synthetic)


@pytest.fixture(scope="module")
def batched_default(synthetic) -> Episodes:
    return batched_shopper(synthetic, ShopperConfig(), seed=11)


@pytest.fixture(scope="module")
def reference_interest() -> Episodes:
    simulator = ReferenceInterestEvolution(InterestEvolutionConfig(), seed=21)
    return run_random_episodes(simulator, INTEREST_EPISODES, seed=22)


def interest_batched(config: InterestEvolutionConfig, seed: int) -> Episodes:
    return batched_random_episodes(InterestEvolutionSimulator(config, INTEREST_EPISODES, "cpu"), seed)


# ------------------------------------------------------------------ shopper
def test_reference_shopper_matches_the_batched_core(truth, batched_default):
    reference = run_random_episodes(ReferenceShopper(truth, seed=12), SHOPPER_EPISODES, seed=13)
    assert reference.num_episodes == batched_default.num_episodes == SHOPPER_EPISODES
    assert disagreements(reference, batched_default) == {}


def test_the_comparison_sees_a_wrong_patience(truth, batched_default):
    # Patience 9 instead of 10 shortens sessions by about 0.3 of ~6 slates (|z| ≈ 7).
    wrong = ReferenceShopper(truth, ShopperConfig(patience=9.0), seed=12)
    reference = run_random_episodes(wrong, SHOPPER_EPISODES, seed=13)
    assert "length" in disagreements(reference, batched_default)


def test_reference_shopper_matches_with_budgets_money_and_other_options(synthetic, truth):
    # Every option the reference models, off its default: leaving after unsatisfying
    # slates, click costs and refills, money, spread price sensitivity, revenue reward,
    # popularity sampling, and a lower no-click utility (more clicks, so more of them matter).
    config = ShopperConfig(
        leave_after_unsatisfying=2,
        click_cost=0.5,
        utility_refill=1.0,
        money=2.0,
        price_sensitivity_spread=0.5,
        reward="revenue",
        candidate_sampling="popularity",
        no_click_utility=0.5,
    )
    reference = run_random_episodes(ReferenceShopper(truth, config, seed=14), SHOPPER_EPISODES, seed=15)
    assert disagreements(reference, batched_shopper(synthetic, config, seed=16)) == {}


def test_budget_arithmetic_without_clicks(truth):
    # A no-click option no slate can beat: every slate costs step_cost + no_click_cost = 2,
    # so every session lasts exactly patience / 2 slates and earns nothing.
    config = ShopperConfig(no_click_utility=50.0, patience=7.0)
    episodes = run_random_episodes(ReferenceShopper(truth, config, seed=0), 20, seed=1)
    assert (episodes.lengths == 4).all() and (episodes.returns == 0).all() and (episodes.clicks == 0).all()


def test_reference_shopper_observation_and_errors(synthetic, truth):
    config = ShopperConfig()
    shopper = ReferenceShopper(truth, config, seed=0)
    observation = shopper.reset()
    assert set(observation) == {"candidate_ids", "history_ids", "step"}
    assert observation["candidate_ids"].shape == (config.num_candidates,)
    assert len(set(observation["candidate_ids"].tolist())) == config.num_candidates
    assert (observation["history_ids"] == synthetic.num_items).all()  # empty history
    with pytest.raises(SlateError):
        shopper.step([0, 0, 1, 2, 3])
    with pytest.raises(SlateError):
        shopper.step([0, 1, 2, 3, config.num_candidates])
    result = shopper.step(np.arange(config.slate_size))
    assert result.clicks.shape == (config.slate_size,) and result.clicks.sum() <= 1
    assert shopper.observe()["step"][0] == 1
    with pytest.raises(ConfigError, match="drift_rate"):
        ReferenceShopper(truth, ShopperConfig(drift_rate=0.3))


def test_reference_rollouts_are_reproducible(truth):
    def rollout() -> Episodes:
        return run_random_episodes(ReferenceShopper(truth, seed=3), 50, seed=4)

    first, second = rollout(), rollout()
    assert np.array_equal(first.returns, second.returns) and np.array_equal(first.clicks, second.clicks)


# ------------------------------------------------------- interest evolution
def test_reference_interest_evolution_matches_the_batched_core(reference_interest):
    batched = interest_batched(InterestEvolutionConfig(), seed=23)
    assert batched.num_episodes == reference_interest.num_episodes == INTEREST_EPISODES
    assert disagreements(reference_interest, batched) == {}


def test_the_comparison_sees_a_wrong_step_penalty(reference_interest):
    # The batched core with a step penalty of 0.6 minutes instead of 0.5 (|z| ≈ 10 in
    # return): the same test with the roles swapped, at the cost of a batched rollout.
    wrong = interest_batched(InterestEvolutionConfig(step_penalty=0.6), seed=23)
    assert {"return", "length"} <= set(disagreements(reference_interest, wrong))


def test_reference_interest_evolution_observation_and_budget():
    config = InterestEvolutionConfig(max_steps=3)
    user = ReferenceInterestEvolution(config, seed=0)
    observation = user.reset()
    assert set(observation) == set(OBSERVATION_KEYS)
    assert observation["doc_features"].shape == (config.num_candidates, config.num_topics)
    assert (observation["response_click"] == 0).all()
    budget = user.time_budget
    result = user.step([0, 1])
    if result.clicks.any():
        assert result.reward == config.video_length
    else:
        assert result.reward == 0 and user.time_budget == pytest.approx(budget - config.step_penalty)
    assert (user.observe()["response_click"] == result.clicks).all()
    user.step([2, 3])
    assert user.step([4, 5]).truncated
    with pytest.raises(RuntimeError, match="reset"):
        user.step([0, 1])


def test_the_other_choice_models_give_valid_probabilities():
    for model in ("logit", "proportional_cascade", "exponential_cascade"):
        user = ReferenceInterestEvolution(dataclasses.replace(InterestEvolutionConfig(), choice_model=model))
        user.reset()
        weights = user._choice_weights(np.array([0.5, -0.5]))
        assert (weights >= 0).all() and weights.sum() > 0
