"""Click models: cascade and position-based (PBM) probabilities, their degenerate
cases, sampling against the marginals, and PBM's several clicks in the simulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shopgym.simulator.build import synthetic_world
from shopgym.simulator.choice import (
    cascade_probabilities,
    choice_probabilities,
    click_marginals,
    pbm_click_probabilities,
    sample_clicks,
)
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.shoppers import ShopperSimulator

MODELS = ("mnl", "cascade", "pbm")


@pytest.fixture(scope="module")
def world():
    return synthetic_world()


def random_slates(rng: np.random.Generator, batch: int, k: int, n: int) -> torch.Tensor:
    return torch.from_numpy(rng.random((batch, n)).argsort(1)[:, :k].astype(np.int64))


@st.composite
def choice_inputs(draw):
    batch = draw(st.integers(1, 6))
    k = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.floats(0.1, 10.0))
    generator = torch.Generator().manual_seed(seed)
    utilities = scale * torch.randn(batch, k, generator=generator)
    beta = draw(st.floats(0.01, 50.0))
    s0 = draw(st.floats(-5.0, 5.0))
    logits = torch.tensor(draw(st.lists(st.floats(-10.0, 3.0), min_size=k, max_size=k)))
    return utilities, beta, s0, logits


@settings(max_examples=30, deadline=None)
@given(choice_inputs())
def test_cascade_probabilities_are_a_distribution(inputs):
    utilities, beta, s0, logits = inputs
    p = cascade_probabilities(utilities, beta, s0, logits)
    assert p.shape == (utilities.shape[0], utilities.shape[1] + 1)
    assert torch.all(p >= 0) and torch.all(p <= 1)
    torch.testing.assert_close(p.sum(1), torch.ones(utilities.shape[0]), atol=1e-5, rtol=0)


@settings(max_examples=30, deadline=None)
@given(choice_inputs())
def test_pbm_probabilities_are_probabilities(inputs):
    utilities, beta, s0, logits = inputs
    p = pbm_click_probabilities(utilities, beta, s0, logits)
    assert p.shape == utilities.shape
    assert torch.all(p >= 0) and torch.all(p <= 1)
    for model in MODELS:
        marginals = click_marginals(model, utilities, beta, s0, logits)
        assert marginals.shape == utilities.shape
        assert torch.all(marginals >= 0) and torch.all(marginals <= 1)


@settings(max_examples=30, deadline=None)
@given(choice_inputs())
def test_cascade_equation(inputs):
    utilities, beta, s0, logits = inputs
    p = cascade_probabilities(utilities, beta, s0, logits)
    x = torch.exp(logits.clamp(max=0)) * torch.sigmoid(beta * (utilities - s0))
    before = torch.ones(utilities.shape[0])
    for position in range(utilities.shape[1]):
        torch.testing.assert_close(p[:, position], x[:, position] * before)
        before = before * (1 - x[:, position])
    torch.testing.assert_close(p[:, -1], before)


def test_cascade_clicks_first_position_when_it_is_certain():
    utilities = torch.tensor([[100.0, 100.0, 100.0], [100.0, -3.0, 5.0]])
    all_examined = torch.zeros(3)
    p = cascade_probabilities(utilities, 2.0, 0.0, all_examined)
    torch.testing.assert_close(p[:, 0], torch.ones(2))
    torch.testing.assert_close(p[:, 1:], torch.zeros(2, 3))
    uniform = torch.rand(1000, 3, generator=torch.Generator().manual_seed(0))
    clicks = sample_clicks("cascade", utilities[:1].expand(1000, -1), 2.0, 0.0, all_examined, uniform)
    assert clicks[:, 0].all() and not clicks[:, 1:].any()


@settings(max_examples=30, deadline=None)
@given(choice_inputs(), st.integers(0, 2**31 - 1))
def test_pbm_without_position_effect_ignores_position(inputs, seed):
    utilities, beta, s0, _ = inputs
    k = utilities.shape[1]
    flat = torch.zeros(k)
    permutation = torch.randperm(k, generator=torch.Generator().manual_seed(seed))
    p = pbm_click_probabilities(utilities, beta, s0, flat)
    permuted = pbm_click_probabilities(utilities[:, permutation], beta, s0, flat)
    torch.testing.assert_close(permuted, p[:, permutation])


def test_mnl_with_large_beta_picks_the_best_item():
    generator = torch.Generator().manual_seed(1)
    # Distinct utilities at least 0.5 apart, in random order.
    utilities = 0.5 * torch.stack([torch.randperm(5, generator=generator) for _ in range(50)]).float()
    p = choice_probabilities(utilities, 1000.0, -10.0, torch.zeros(5))
    best = utilities.argmax(1)
    torch.testing.assert_close(p.gather(1, best[:, None])[:, 0], torch.ones(50), atol=1e-4, rtol=0)
    assert torch.all(p[:, -1] < 1e-4)


def test_pbm_can_click_several_positions():
    utilities = torch.full((2000, 4), 1.0)
    uniform = torch.rand(2000, 4, generator=torch.Generator().manual_seed(0))
    clicks = sample_clicks("pbm", utilities, 1.0, 0.0, torch.zeros(4), uniform)
    per_slate = clicks.sum(1)
    assert (per_slate >= 2).any()
    assert (per_slate == 4).any()
    for model in ("mnl", "cascade"):
        single = sample_clicks(model, utilities, 1.0, 0.0, torch.zeros(4), uniform)
        assert (single.sum(1) <= 1).all()


@pytest.mark.parametrize("model", MODELS)
def test_sampled_frequencies_match_marginals(model):
    draws, k = 20_000, 5
    utilities = torch.tensor([[1.5, 0.5, -0.2, 2.0, 0.0]]).expand(draws, -1)
    logits = torch.tensor([0.0, -0.3, -0.7, -1.0, -1.5])
    beta, s0 = 1.3, 0.4
    uniform = torch.rand(draws, k, generator=torch.Generator().manual_seed(7))
    clicks = sample_clicks(model, utilities, beta, s0, logits, uniform)
    marginals = click_marginals(model, utilities[:1], beta, s0, logits)[0].double()
    frequencies = clicks.double().mean(0)
    standard_error = (marginals * (1 - marginals) / draws).sqrt()
    assert torch.all((frequencies - marginals).abs() <= 4 * standard_error + 1e-9), (frequencies, marginals)
    if model != "pbm":
        no_click = 1 - marginals.sum()
        se = math.sqrt(float(no_click * (1 - no_click)) / draws)
        assert abs(float((~clicks.any(1)).double().mean()) - float(no_click)) <= 4 * se


def test_pbm_simulator_appends_several_clicks_in_slate_order(world):
    config = ShopperConfig(choice_model="pbm", no_click_utility=-3.0, position_logits=(0.0,) * 5)
    sim = ShopperSimulator(world, config, 16, device="cpu", seed=3)
    sim.reset()
    rng = np.random.default_rng(0)
    empty = world.num_items
    h = config.history_length
    reference = [[] for _ in range(16)]
    saw_several = False
    for _ in range(4):
        slates = random_slates(rng, 16, config.slate_size, config.num_candidates)
        items = sim.candidates.gather(1, slates)
        outcome = sim.step(slates)
        assert not outcome.done.any()  # patience 10 with clicks: no session ends in 4 steps
        saw_several |= bool((outcome.clicks.sum(1) >= 2).any())
        for row in range(16):
            reference[row] += items[row][outcome.clicks[row]].tolist()
            expected = ([empty] * h + reference[row])[-h:]
            assert sim.clicked_history[row].tolist() == expected
    assert saw_several
