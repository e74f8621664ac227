"""Calibration to the Open Bandit Dataset's random-policy logs: simulated per-position
click-through lands inside the real logs' 95% intervals, for every campaign."""

from dataclasses import replace

import numpy as np
import pytest

from shopgym.simulator.build import WorldConfig
from shopgym.simulator.calibration import calibrate, simulate_position_ctr
from shopgym.simulator.obd import load_obd


@pytest.mark.parametrize("campaign", ["all", "men", "women"])
def test_simulated_ctr_per_position_lies_in_the_real_intervals(synthetic, campaign):
    target = WorldConfig(click_target=f"obd:{campaign}").target()
    real = load_obd(campaign=campaign, policy="random").position_ctr()
    assert target.slate_size == 3
    np.testing.assert_allclose(target.ctr, real["ctr"].to_numpy())
    calibration = calibrate(synthetic, target, beta=2.0)
    world = replace(synthetic, calibration=calibration)
    simulated = simulate_position_ctr(world, 3, slates=300_000, seed=1)
    assert (simulated["ctr"].to_numpy() > real["low"].to_numpy()).all()
    assert (simulated["ctr"].to_numpy() < real["high"].to_numpy()).all()
    # Not just inside wide intervals: close to the point estimates (Monte-Carlo error ~1e-4).
    np.testing.assert_allclose(simulated["ctr"].to_numpy(), target.ctr, atol=5e-4)


def test_a_stated_level_keeps_the_logs_relative_position_effects(synthetic):
    from_log = WorldConfig(click_target="obd:men").target()
    rescaled = WorldConfig(click_target="obd:men", click_rate=0.15).target()
    assert sum(rescaled.ctr) == pytest.approx(0.15)
    np.testing.assert_allclose(
        np.array(rescaled.ctr) / sum(rescaled.ctr), np.array(from_log.ctr) / sum(from_log.ctr)
    )
    assert "relative position effects" in rescaled.source
