"""Calibrating the click level: the random-slate click rate hits the target, in the
expected-value computation and in simulated sessions."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from shopgym.simulator.calibration import calibrate_click_level, random_slate_click_rate
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.shoppers import ShopperSimulator

SLATE_SIZE = 5
TARGETS = [0.05, 0.15, 0.5]


@pytest.fixture(scope="module")
def calibrations(synthetic):
    return {
        target: calibrate_click_level(
            synthetic, target, SLATE_SIZE, beta=2.0, position_decay=0.3, samples=10_000, seed=0
        )
        for target in TARGETS
    }


@pytest.mark.parametrize("target", TARGETS)
def test_calibration_hits_the_target_on_a_fresh_sample(synthetic, calibrations, target):
    calibration = calibrations[target]
    assert calibration.beta == 2.0
    assert calibration.position_decay == 0.3
    assert calibration.target["value"] == target
    assert calibration.target["slate_size"] == SLATE_SIZE
    assert calibration.target["achieved"] == pytest.approx(target, abs=1e-4)
    rate = random_slate_click_rate(synthetic, calibration, SLATE_SIZE, samples=20_000, seed=12345)
    assert rate == pytest.approx(target, abs=0.01)


def test_lower_target_needs_higher_no_click_utility(calibrations):
    s0 = [calibrations[t].no_click_utility for t in TARGETS]
    assert s0[0] > s0[1] > s0[2]


def test_synthetic_world_is_calibrated_to_its_config(synthetic):
    assert synthetic.calibration.target["value"] == 0.15
    rate = random_slate_click_rate(synthetic, synthetic.calibration, 5, samples=20_000, seed=7)
    assert rate == pytest.approx(0.15, abs=0.01)


def test_calibration_is_deterministic(synthetic, calibrations):
    again = calibrate_click_level(
        synthetic, 0.15, SLATE_SIZE, beta=2.0, position_decay=0.3, samples=10_000, seed=0
    )
    assert again == calibrations[0.15]


def random_slates(generator: torch.Generator, batch: int, k: int, n: int) -> torch.Tensor:
    return torch.rand(batch, n, generator=generator).argsort(1)[:, :k]


@pytest.mark.parametrize("target", TARGETS)
def test_simulated_click_rate_under_random_slates_matches_target(synthetic, calibrations, target):
    """Every step is a new session (max_steps=1), so each step is one uniformly drawn
    shopper shown one uniformly random slate: the quantity that was calibrated."""
    world = replace(synthetic, calibration=calibrations[target])
    config = ShopperConfig(slate_size=SLATE_SIZE, num_candidates=20, max_steps=1)
    batch, steps = 4000, 5
    simulator = ShopperSimulator(world, config, batch, shoppers="all", device="cpu", seed=3)
    simulator.reset()
    slates = torch.Generator().manual_seed(4)
    clicks = 0
    for _ in range(steps):
        outcome = simulator.step(random_slates(slates, batch, SLATE_SIZE, config.num_candidates))
        assert bool(outcome.truncated.all())
        clicks += int(outcome.clicks.any(1).sum())
    rate = clicks / (batch * steps)
    tolerance = 4 * math.sqrt(target * (1 - target) / (batch * steps)) + 0.005
    assert rate == pytest.approx(target, abs=tolerance)


@pytest.mark.parametrize("target", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_invalid_targets(synthetic, target):
    with pytest.raises(ConfigError, match="target click rate"):
        calibrate_click_level(synthetic, target, SLATE_SIZE, samples=100)


@pytest.mark.parametrize("beta", [0.0, -1.0])
def test_invalid_beta(synthetic, beta):
    with pytest.raises(ConfigError, match="beta"):
        calibrate_click_level(synthetic, 0.1, SLATE_SIZE, beta=beta, samples=100)


def test_nan_beta_is_rejected(synthetic):
    with pytest.raises(ConfigError, match="beta"):
        calibrate_click_level(synthetic, 0.1, SLATE_SIZE, beta=math.nan, samples=100)
