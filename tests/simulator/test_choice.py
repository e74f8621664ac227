"""The multinomial-logit choice model: probabilities, click probability and the
inverse-CDF sampler, including degenerate logits (RecSim-style tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shopgym.simulator.choice import choice_probabilities, click_probability, sample_choice
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.world import Calibration, decay_logits

FLOAT32_BELOW_ONE = float(np.nextafter(np.float32(1), np.float32(0)))


@st.composite
def choice_inputs(draw, max_utility: float = 30.0):
    rows = draw(st.integers(1, 6))
    k = draw(st.integers(1, 8))
    utility = draw(
        arrays(
            np.float32,
            (rows, k),
            elements=st.floats(-max_utility, max_utility, width=32),
        )
    )
    beta = draw(st.floats(0.01, 10.0))
    no_click = draw(st.floats(-max_utility, max_utility))
    decay = draw(st.floats(0.0, 3.0))
    # Calibrated for the first few positions only; the rest stay level with the last.
    calibrated = draw(st.integers(1, k))
    bias = Calibration(position_logits=decay_logits(decay, calibrated)).position_bias(k)
    return torch.from_numpy(utility), beta, no_click, bias


@settings(max_examples=200, deadline=None)
@given(choice_inputs())
def test_probabilities_are_a_distribution(inputs):
    utility, beta, no_click, bias = inputs
    probabilities = choice_probabilities(utility, beta, no_click, bias)
    assert probabilities.shape == (utility.shape[0], utility.shape[1] + 1)
    assert bool(torch.isfinite(probabilities).all())
    assert bool((probabilities >= 0).all())
    assert bool((probabilities <= 1).all())
    assert torch.allclose(probabilities.sum(1), torch.ones(len(utility)), atol=1e-5)


@settings(max_examples=200, deadline=None)
@given(choice_inputs())
def test_click_probability_is_one_minus_no_click(inputs):
    utility, beta, no_click, bias = inputs
    probabilities = choice_probabilities(utility, beta, no_click, bias)
    clicks = click_probability(utility, beta, no_click, bias)
    assert clicks.shape == (utility.shape[0],)
    assert bool(((clicks >= 0) & (clicks <= 1)).all())
    assert torch.allclose(clicks, 1 - probabilities[:, -1], atol=1e-5)


@settings(max_examples=100, deadline=None)
@given(choice_inputs(max_utility=5.0))
def test_probabilities_follow_the_logit_formula(inputs):
    """P(j) = exp(beta s_j + b_j) / (exp(beta s0) + sum exp(beta s + b)), in float64."""
    utility, beta, no_click, bias = inputs
    logits = beta * utility.double() + bias.double()
    numerators = torch.cat([logits.exp(), torch.full_like(logits[:, :1], beta * no_click).exp()], 1)
    expected = numerators / numerators.sum(1, keepdim=True)
    got = choice_probabilities(utility, beta, no_click, bias).double()
    assert torch.allclose(got, expected, atol=1e-5)


@settings(max_examples=100, deadline=None)
@given(
    k=st.integers(1, 8),
    chosen=st.integers(0, 7),
    uniform=st.floats(0.0, FLOAT32_BELOW_ONE),
    others=st.floats(-5, 5),
)
def test_huge_utility_is_always_chosen(k, chosen, uniform, others):
    chosen = chosen % k
    utility = torch.full((1, k), others)
    utility[0, chosen] = 1e4
    bias = Calibration().position_bias(k)
    probabilities = choice_probabilities(utility, 1.0, 0.0, bias)
    assert float(probabilities[0, chosen]) == 1.0
    assert float(click_probability(utility, 1.0, 0.0, bias)[0]) == 1.0
    assert int(sample_choice(probabilities, torch.tensor([uniform]))[0]) == chosen


@settings(max_examples=100, deadline=None)
@given(
    k=st.integers(1, 8),
    uniform=st.floats(0.0, FLOAT32_BELOW_ONE),
    utility=st.floats(-5, 5),
)
def test_huge_no_click_utility_never_clicks(k, uniform, utility):
    utilities = torch.full((1, k), utility)
    bias = Calibration().position_bias(k)
    probabilities = choice_probabilities(utilities, 2.0, 1e4, bias)
    assert float(probabilities[0, -1]) == 1.0
    assert float(click_probability(utilities, 2.0, 1e4, bias)[0]) == 0.0
    assert int(sample_choice(probabilities, torch.tensor([uniform]))[0]) == k


@settings(max_examples=200, deadline=None)
@given(
    weights=arrays(np.float32, st.integers(2, 9), elements=st.floats(0, 1, width=32)),
    uniforms=arrays(np.float32, 16, elements=st.floats(0.0, FLOAT32_BELOW_ONE, width=32)),
)
def test_sample_choice_is_the_inverse_cdf(weights, uniforms):
    if weights.sum() == 0:
        weights[-1] = 1
    probabilities = torch.from_numpy(weights / weights.sum()).expand(len(uniforms), -1)
    uniform = torch.from_numpy(uniforms)
    choices = sample_choice(probabilities, uniform)
    cumulative = probabilities[0].cumsum(0)
    # u is scaled by the float32 total, which rounding can leave a hair off 1.
    scaled = (uniform * cumulative[-1]).tolist()
    last = len(weights) - 1
    for u, choice in zip(scaled, choices.tolist(), strict=True):
        # The first index whose cumulative probability exceeds u.
        expected = next(i for i, c in enumerate(cumulative.tolist()) if c > u)
        assert choice == expected
        assert 0 <= choice <= last
        # Never an index with probability 0.
        assert float(probabilities[0, choice]) > 0


def test_sample_choice_frequencies_on_a_uniform_grid():
    probabilities = torch.tensor([[0.1, 0.0, 0.25, 0.15, 0.5]])
    n = 100_000
    uniform = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    choices = sample_choice(probabilities.expand(n, -1), uniform.float())
    frequencies = torch.bincount(choices, minlength=5).double() / n
    assert torch.allclose(frequencies, probabilities[0].double(), atol=2 / n)


def test_sample_choice_with_u_close_to_one_stays_in_range():
    # Float32 cumulative sums of these probabilities end a hair below 1.
    rng = np.random.default_rng(0)
    found_short = False
    for _ in range(200):
        probabilities = torch.softmax(torch.from_numpy(rng.normal(size=(1, 7))).float(), 1)
        found_short |= float(probabilities.cumsum(1)[0, -1]) < FLOAT32_BELOW_ONE
        choice = sample_choice(probabilities, torch.tensor([FLOAT32_BELOW_ONE]))
        assert 0 <= int(choice[0]) <= 6
    assert found_short  # the clamp was exercised


def test_sample_choice_batch_rows_are_independent():
    probabilities = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    choices = sample_choice(probabilities, torch.tensor([0.9, 0.0, 0.7]))
    assert choices.tolist() == [0, 2, 1]


@settings(max_examples=50, deadline=None)
@given(
    k=st.integers(2, 8),
    utility=st.floats(-3, 3),
    decay=st.floats(0.05, 2.0),
    beta=st.floats(0.1, 5.0),
    calibrated=st.integers(2, 8),
)
def test_position_bias_lowers_later_positions(k, utility, decay, beta, calibrated):
    # Fewer calibrated positions than the slate may have: the extension stays level.
    calibrated = min(calibrated, k)
    bias = Calibration(position_logits=decay_logits(decay, calibrated)).position_bias(k)
    assert bias.shape == (k,)
    assert float(bias[0]) == 0.0
    probabilities = choice_probabilities(torch.full((1, k), utility), beta, 0.0, bias)[0, :k]
    assert bool((probabilities[1:calibrated] < probabilities[: calibrated - 1]).all())
    # The ratio of neighbouring calibrated positions is exp(-decay), of later ones 1.
    ratios = probabilities[1:] / probabilities[:-1]
    expected = torch.tensor([math.exp(-decay)] * (calibrated - 1) + [1.0] * (k - calibrated))
    assert torch.allclose(ratios, expected.to(ratios.dtype), rtol=1e-4)


@pytest.mark.parametrize("logits", [(0.0,), decay_logits(0.0, 3), decay_logits(0.0, 5)])
def test_no_position_bias_treats_positions_alike(logits):
    bias = Calibration(position_logits=logits).position_bias(5)
    probabilities = choice_probabilities(torch.zeros(2, 5), 1.0, 0.0, bias)
    assert torch.allclose(probabilities, torch.full((2, 6), 1 / 6))


def test_decay_logits():
    assert decay_logits(0.5, 4) == pytest.approx((0.0, -0.5, -1.0, -1.5))
    assert decay_logits(0.3, 1) == (0.0,)


def test_position_bias_is_cut_or_extended_level_with_the_last_position():
    calibration = Calibration(position_logits=(0.0, -0.5, -0.7))
    assert calibration.position_bias(2).tolist() == pytest.approx([0.0, -0.5])
    assert calibration.position_bias(3).tolist() == pytest.approx([0.0, -0.5, -0.7])
    assert calibration.position_bias(6).tolist() == pytest.approx([0.0, -0.5, -0.7, -0.7, -0.7, -0.7])
    assert calibration.position_bias(6).dtype == torch.float32
    # A single calibrated position: every later position stays level with it.
    assert Calibration(position_logits=(0.0,)).position_bias(4).tolist() == [0.0] * 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"position_logits": ()},
        {"position_logits": (0.0, math.nan)},
        {"position_logits": (0.0, -math.inf)},
        {"beta": math.inf},
        {"no_click_utility": math.nan},
    ],
)
def test_calibration_constants_must_be_finite(kwargs):
    with pytest.raises(ConfigError, match="finite"):
        Calibration(**kwargs)


def test_higher_utility_raises_its_probability_and_the_click_probability():
    bias = Calibration().position_bias(3)
    low = torch.tensor([[0.0, 0.0, 0.0]])
    high = torch.tensor([[0.0, 1.0, 0.0]])
    p_low, p_high = (choice_probabilities(u, 1.5, 0.5, bias) for u in (low, high))
    assert float(p_high[0, 1]) > float(p_low[0, 1])
    assert float(p_high[0, 0]) < float(p_low[0, 0])
    assert float(click_probability(high, 1.5, 0.5, bias)) > float(click_probability(low, 1.5, 0.5, bias))
