"""Calibrating the choice model to per-position click-through targets: the random-slate
click rate of every position hits its target, in the expected-value computation on a
fresh sample and in simulated sessions; targets, intervals and invalid inputs."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from statistics import NormalDist

import numpy as np
import pytest
import torch

from shopgym.simulator.build import WorldConfig
from shopgym.simulator.calibration import (
    ClickTarget,
    calibrate,
    position_click_rates,
    random_slate_utilities,
    simulate_position_ctr,
    wilson_interval,
)
from shopgym.simulator.choice import choice_probabilities
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.shoppers import ShopperSimulator
from shopgym.simulator.world import Calibration

from .helpers import sub_catalogue

SLATE_SIZE = 5
LEVELS = [0.05, 0.15, 0.5]
DECAYS = [0.0, 0.3, 1.0]
# Fewer than build_world's default, for speed: the tolerances below scale with it.
CALIBRATION_SAMPLES = 20_000
EVALUATION_SAMPLES, EVALUATION_SEED = 50_000, 12345


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def target_of(level: float, decay: float) -> ClickTarget:
    return ClickTarget.stated(level, SLATE_SIZE, decay)


@pytest.fixture(scope="module")
def calibrations(synthetic):
    return {
        (level, decay): calibrate(
            synthetic, target_of(level, decay), beta=2.0, samples=CALIBRATION_SAMPLES, seed=0
        )
        for level in LEVELS
        for decay in DECAYS
    }


def per_sample_click_probabilities(world, calibration, k: int, samples: int, seed: int) -> torch.Tensor:
    """(samples, k) click probability of each position for random (shopper, slate) pairs."""
    utilities = random_slate_utilities(world, k, samples, seed)
    bias = calibration.position_bias(k)
    return choice_probabilities(utilities, calibration.beta, calibration.no_click_utility, bias)[:, :k]


def ctr(target: ClickTarget) -> torch.Tensor:
    return torch.tensor(target.ctr, dtype=torch.float64)


# ----------------------------------------------------------------------------- calibrate
@pytest.mark.parametrize("decay", DECAYS)
@pytest.mark.parametrize("level", LEVELS)
def test_calibration_hits_every_position_on_a_fresh_sample(synthetic, calibrations, level, decay):
    calibration, target = calibrations[level, decay], target_of(level, decay)
    assert calibration.beta == 2.0
    assert len(calibration.position_logits) == SLATE_SIZE
    assert calibration.position_logits[0] == 0.0
    assert calibration.target["ctr"] == list(target.ctr)
    assert calibration.target["source"] == target.source
    # Exact on its own sample ...
    np.testing.assert_allclose(calibration.target["fitted_rates"], target.ctr, rtol=1e-4)
    # ... and within Monte-Carlo error on another one: both samples' means of the
    # heavy-tailed per-sample probabilities err by about sd / sqrt(samples).
    rates = position_click_rates(
        synthetic, calibration, SLATE_SIZE, samples=EVALUATION_SAMPLES, seed=EVALUATION_SEED
    )
    assert rates.shape == (SLATE_SIZE,)
    probabilities = per_sample_click_probabilities(
        synthetic, calibration, SLATE_SIZE, EVALUATION_SAMPLES, EVALUATION_SEED
    )
    torch.testing.assert_close(rates, probabilities.mean(0))
    error = probabilities.double().std(0) * math.sqrt(1 / CALIBRATION_SAMPLES + 1 / EVALUATION_SAMPLES)
    assert bool(((rates.double() - ctr(target)).abs() <= 4 * error).all())
    assert float(rates.sum()) == pytest.approx(level, rel=0.05)


@pytest.mark.parametrize("level", LEVELS)
def test_position_logits_follow_the_decay(calibrations, level):
    logits = {decay: np.array(calibrations[level, decay].position_logits) for decay in DECAYS}
    # Equal targets: the positions are exchangeable, so the logits stay near 0 (up to
    # the calibration sample's noise, far below the 0.3 step of the next decay).
    assert np.abs(logits[0.0]).max() < 0.2
    for decay in DECAYS[1:]:
        assert (np.diff(logits[decay]) < 0).all()
    # A steeper decay of the targets needs steeper position logits.
    assert (logits[1.0][1:] < logits[0.3][1:]).all()


@pytest.mark.parametrize("decay", DECAYS)
def test_lower_target_needs_higher_no_click_utility(calibrations, decay):
    s0 = [calibrations[level, decay].no_click_utility for level in LEVELS]
    assert s0[0] > s0[1] > s0[2]


def test_synthetic_world_is_calibrated_to_its_config(synthetic):
    config = WorldConfig()
    target = ClickTarget.stated(0.15, config.slate_size, config.position_decay)
    assert config.target() == target
    assert synthetic.calibration.beta == config.beta
    assert synthetic.calibration.target["ctr"] == list(target.ctr)
    rates = position_click_rates(synthetic, synthetic.calibration, config.slate_size, samples=20_000, seed=7)
    assert float(rates.sum()) == pytest.approx(0.15, abs=0.01)
    np.testing.assert_allclose(rates.numpy(), target.ctr, rtol=0.2)


def test_calibration_is_deterministic(synthetic, calibrations):
    target = target_of(0.15, 0.3)
    again = calibrate(synthetic, target, beta=2.0, samples=CALIBRATION_SAMPLES, seed=0)
    assert again == calibrations[0.15, 0.3]
    other = calibrate(synthetic, target, beta=2.0, samples=CALIBRATION_SAMPLES, seed=1)
    assert other != again  # another sample, slightly other constants


def test_position_click_rates_are_per_impression_rates(synthetic, calibrations):
    """The expected rates match a direct average, are reproducible and sum to the
    random-slate click probability."""
    calibration = calibrations[0.5, 1.0]
    rates = position_click_rates(synthetic, calibration, SLATE_SIZE, samples=5000, seed=3)
    assert torch.equal(rates, position_click_rates(synthetic, calibration, SLATE_SIZE, samples=5000, seed=3))
    assert not torch.equal(rates, position_click_rates(synthetic, calibration, SLATE_SIZE, 5000, seed=4))
    utilities = random_slate_utilities(synthetic, SLATE_SIZE, 5000, 3)
    assert utilities.shape == (5000, SLATE_SIZE)
    logits = calibration.beta * utilities.double() + calibration.position_bias(SLATE_SIZE).double()
    no_click = calibration.beta * calibration.no_click_utility
    direct = (logits.exp() / (logits.exp().sum(1, keepdim=True) + math.exp(no_click))).mean(0)
    torch.testing.assert_close(rates.double(), direct, rtol=1e-5, atol=1e-7)
    # A longer slate keeps the last position's logit for the extra positions.
    longer = position_click_rates(synthetic, calibration, SLATE_SIZE + 2, samples=5000, seed=3)
    assert longer.shape == (SLATE_SIZE + 2,)
    bias = calibration.position_bias(SLATE_SIZE + 2)
    assert bias[SLATE_SIZE:].tolist() == pytest.approx([calibration.position_logits[-1]] * 2)


# ----------------------------------------------------------------------------- simulation
def random_slates(generator: torch.Generator, batch: int, k: int, n: int) -> torch.Tensor:
    return torch.rand(batch, n, generator=generator).argsort(1)[:, :k]


@pytest.mark.parametrize(("level", "decay"), [(0.05, 0.3), (0.15, 1.0), (0.5, 0.0)])
def test_simulated_ctr_per_position_under_random_slates_matches_target(synthetic, calibrations, level, decay):
    """Every step is a new session (max_steps=1), so each step is one uniformly drawn
    shopper shown one uniformly random slate: the quantity that was calibrated."""
    calibration, target = calibrations[level, decay], target_of(level, decay)
    world = replace(synthetic, calibration=calibration)
    config = ShopperConfig(slate_size=SLATE_SIZE, num_candidates=20, max_steps=1)
    batch, steps = 8000, 5
    simulator = ShopperSimulator(world, config, batch, shoppers="all", device="cpu", seed=3)
    simulator.reset()
    slates = torch.Generator().manual_seed(4)
    clicks = torch.zeros(SLATE_SIZE, dtype=torch.float64)
    for _ in range(steps):
        outcome = simulator.step(random_slates(slates, batch, SLATE_SIZE, config.num_candidates))
        assert bool(outcome.truncated.all())
        assert bool((outcome.clicks.sum(1) <= 1).all())  # one choice per slate
        clicks += outcome.clicks.sum(0).double()
    impressions = batch * steps
    simulated = clicks / impressions
    # Against the calibrated model's expected rates: binomial error, plus the error
    # of the expected rates' own sample.
    probabilities = per_sample_click_probabilities(
        world, calibration, SLATE_SIZE, EVALUATION_SAMPLES, EVALUATION_SEED
    ).double()
    expected = probabilities.mean(0)
    binomial = (expected * (1 - expected) / impressions).sqrt()
    sample = probabilities.std(0) / math.sqrt(EVALUATION_SAMPLES)
    assert bool(((simulated - expected).abs() <= 4 * (binomial**2 + sample**2).sqrt()).all())
    # Against the target: the calibration sample's error adds to the binomial one.
    calibration_error = probabilities.std(0) / math.sqrt(CALIBRATION_SAMPLES)
    assert bool(((simulated - ctr(target)).abs() <= 4 * (binomial**2 + calibration_error**2).sqrt()).all())
    if decay > 0:
        assert bool((simulated.diff() < 0).all())


def test_simulate_position_ctr_table(synthetic, calibrations):
    world = replace(synthetic, calibration=calibrations[0.5, 1.0])
    table = simulate_position_ctr(world, SLATE_SIZE, slates=20_000, seed=1)
    assert list(table.columns) == ["impressions", "clicks", "ctr", "low", "high"]
    assert len(table) == SLATE_SIZE
    assert (table["impressions"] == 20_000).all()
    np.testing.assert_allclose(table["ctr"], table["clicks"] / table["impressions"])
    assert (table["low"] < table["ctr"]).all() and (table["ctr"] < table["high"]).all()
    expected = position_click_rates(world, world.calibration, SLATE_SIZE, samples=EVALUATION_SAMPLES, seed=5)
    # Wide 95% intervals around 20k impressions per position; allow for the expected
    # rates' own sample error too.
    assert (table["ctr"] - expected.numpy()).abs().max() < 0.01
    assert (np.diff(table["ctr"]) < 0).all()


# ----------------------------------------------------------------------------- targets
def test_stated_target_splits_the_level_over_positions():
    target = ClickTarget.stated(0.2, 4, decay=0.5)
    assert target.slate_size == 4
    assert sum(target.ctr) == pytest.approx(0.2)
    ratios = np.array(target.ctr[1:]) / np.array(target.ctr[:-1])
    np.testing.assert_allclose(ratios, math.exp(-0.5))
    assert target.source.startswith("stated")
    assert target.low is target.high is target.clicks is target.impressions is None
    flat = ClickTarget.stated(0.3, 3, decay=0.0)
    np.testing.assert_allclose(flat.ctr, [0.1, 0.1, 0.1])
    assert ClickTarget.stated(0.15, 5) == ClickTarget.stated(0.15, 5, 0.2)  # the default decay


def test_target_from_counts():
    clicks, impressions = np.array([30, 20, 10]), np.array([1000, 1000, 2000])
    target = ClickTarget.from_counts(clicks, impressions, source="a log")
    assert target.ctr == pytest.approx((0.03, 0.02, 0.005))
    assert target.clicks == (30, 20, 10) and target.impressions == (1000, 1000, 2000)
    low, high = wilson_interval(clicks, impressions)
    assert target.low == pytest.approx(tuple(low)) and target.high == pytest.approx(tuple(high))
    assert all(lo < rate < hi for lo, rate, hi in zip(target.low, target.ctr, target.high, strict=True))
    assert target.source == "a log"
    saved = json.loads(json.dumps(target.to_dict()))
    assert saved["ctr"] == list(target.ctr) and saved["clicks"] == [30, 20, 10]


def test_at_level_keeps_the_relative_position_effects():
    target = ClickTarget.from_counts(np.array([40, 25, 30]), np.array([10_000] * 3), source="a log")
    rescaled = target.at_level(0.15)
    assert sum(rescaled.ctr) == pytest.approx(0.15)
    np.testing.assert_allclose(
        np.array(rescaled.ctr) / sum(rescaled.ctr), np.array(target.ctr) / sum(target.ctr)
    )
    assert rescaled.source.startswith("a log") and "relative position effects" in rescaled.source
    # The log's counts and intervals describe the log's level, not the rescaled one.
    assert rescaled.low is rescaled.clicks is None
    assert target.at_level(sum(target.ctr)).ctr == pytest.approx(target.ctr)
    for bad in (0.0, 1.0, -0.1, math.nan):
        with pytest.raises(ConfigError, match="click-rate"):
            target.at_level(bad)


@pytest.mark.parametrize(
    "rates",
    [(), (0.0,), (1.0,), (-0.1, 0.2), (0.1, math.nan), (0.1, math.inf), (0.5, 0.5), (0.6, 0.3, 0.2)],
    ids=["empty", "zero", "one", "negative", "nan", "inf", "sum-one", "sum-above-one"],
)
def test_click_target_rejects_invalid_rates(rates):
    with pytest.raises(ConfigError, match="click targets"):
        ClickTarget(ctr=rates, source="bad")


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_stated_target_rejects_invalid_levels(rate):
    with pytest.raises(ConfigError, match="click-rate"):
        ClickTarget.stated(rate, SLATE_SIZE)


def test_stated_target_rejects_an_empty_slate():
    with pytest.raises(ConfigError, match="slate size"):
        ClickTarget.stated(0.1, 0)


def test_world_config_validates_its_target():
    with pytest.raises(ConfigError, match="click-target"):
        WorldConfig(click_target="bandit")
    with pytest.raises(ConfigError, match="click-rate"):
        WorldConfig(click_rate=1.5).target()
    with pytest.raises(ConfigError, match="slate_size"):
        WorldConfig(slate_size=0)
    assert WorldConfig(click_rate=0.3, slate_size=3, position_decay=0.5).target() == ClickTarget.stated(
        0.3, 3, 0.5
    )


# ----------------------------------------------------------------------------- Wilson intervals
def test_wilson_interval_by_hand():
    # 10 clicks in 100 trials at 95%: p = 0.1, z = 1.959964.
    z = NormalDist().inv_cdf(0.975)
    centre = (0.1 + z**2 / 200) / (1 + z**2 / 100)
    half = z / (1 + z**2 / 100) * math.sqrt(0.1 * 0.9 / 100 + z**2 / 40_000)
    low, high = wilson_interval(10, 100)
    assert float(low) == pytest.approx(centre - half, abs=1e-12)
    assert float(high) == pytest.approx(centre + half, abs=1e-12)
    assert (float(low), float(high)) == pytest.approx((0.0552291, 0.1743657), abs=1e-7)
    # At 0 clicks (or 0 misses) the interval reaches exactly 0 (or 1); upper end z²/(n + z²).
    lows, highs = wilson_interval(np.array([0, 100, 10]), np.array([100, 100, 100]))
    assert lows[0] == 0.0 and highs[1] == 1.0
    assert highs[0] == pytest.approx(z**2 / (100 + z**2), abs=1e-12)
    assert lows[1] == pytest.approx(100 / (100 + z**2), abs=1e-12)
    assert (lows[2], highs[2]) == (float(low), float(high))
    # A higher confidence widens the interval.
    wide_low, wide_high = wilson_interval(10, 100, confidence=0.99)
    assert wide_low < low and wide_high > high


@pytest.mark.parametrize(
    ("clicks", "trials", "confidence"),
    [(1, 0, 0.95), (-1, 10, 0.95), (11, 10, 0.95), (1, 10, 0.0), (1, 10, 1.0)],
)
def test_wilson_interval_rejects_bad_input(clicks, trials, confidence):
    with pytest.raises(ConfigError):
        wilson_interval(clicks, trials, confidence)


# ----------------------------------------------------------------------------- invalid calibrations
@pytest.mark.parametrize("beta", [0.0, -1.0, math.nan, math.inf])
def test_invalid_beta(synthetic, beta):
    with pytest.raises(ConfigError, match="beta"):
        calibrate(synthetic, target_of(0.1, 0.2), beta=beta, samples=100)


def test_a_slate_longer_than_the_catalogue_is_unreachable(synthetic):
    keep = torch.arange(6)
    small = sub_catalogue(synthetic, keep)
    with pytest.raises(ConfigError, match="does not fit a catalogue of 6"):
        calibrate(small, ClickTarget.stated(0.1, 7), samples=100)
    calibrate(small, ClickTarget.stated(0.1, 6), samples=100)  # a slate of all 6 items fits


def test_a_target_off_the_sample_grid_is_unreachable(synthetic):
    """Utilities a million times more spread make every choice deterministic (one-hot
    softmax), so the rates on a sample of 1000 are multiples of 1/1000 whatever the
    constants: 0.12345 cannot be hit, and calibrate says so instead of returning
    constants that miss."""
    steep = replace(synthetic, utility_scale=synthetic.utility_scale * 1e-6)
    # A thousand tiny iterations: threads only add overhead.
    with torch_threads(1), pytest.raises(ConfigError, match="the target"):
        calibrate(steep, ClickTarget(ctr=(0.12345,), source="off the grid"), samples=1000)


def test_calibration_round_trips_through_its_dict(calibrations):
    calibration = calibrations[0.15, 0.3]
    saved = json.loads(json.dumps(calibration.to_dict()))
    again = Calibration(
        beta=saved["beta"],
        no_click_utility=saved["no_click_utility"],
        position_logits=tuple(saved["position_logits"]),
        target=saved["target"],
    )
    assert again == calibration


def test_calibration_recovers_the_constants_behind_a_synthetic_random_policy_log(synthetic):
    # A log whose truth is known: the simulator itself, with known position logits and
    # no-click utility, shown uniformly random slates; calibrating to that log's counts
    # must recover the constants within the log's sampling error.
    truth = calibrate(synthetic, ClickTarget.stated(0.3, 3, decay=0.5), seed=1)
    log = simulate_position_ctr(replace(synthetic, calibration=truth), 3, slates=200_000, seed=2)
    target = ClickTarget.from_counts(log["clicks"].to_numpy(), log["impressions"].to_numpy(), "synthetic log")
    fitted = calibrate(synthetic, target, seed=3)
    print(f"\ntrue {truth.position_logits}, {truth.no_click_utility}")
    print(f"fitted {fitted.position_logits}, {fitted.no_click_utility}")
    np.testing.assert_allclose(fitted.position_logits, truth.position_logits, atol=0.05)
    assert fitted.no_click_utility == pytest.approx(truth.no_click_utility, abs=0.05)
    assert fitted.target["source"] == "synthetic log"
