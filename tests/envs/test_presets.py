"""Every shopper preset: invariants as property tests, and calibration with dynamics on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shopgym.envs
from shopgym.envs.core import make_simulator
from shopgym.simulator.calibration import simulate_session_ctr

SHOPPER_PRESETS = sorted(shopgym.envs.PRESETS)


def _simulator(env_id: str, batch: int, seed: int):
    options = dict(shopgym.envs.PRESETS[env_id])
    world = options.pop("world", None)
    simulator = make_simulator(batch, world, "all", "cpu", None, options)
    simulator.reset(seed)
    return simulator


def _random_slates(rng: np.random.Generator, simulator) -> torch.Tensor:
    n, k = simulator.config.num_candidates, simulator.config.slate_size
    return torch.from_numpy(np.argsort(rng.random((simulator.num_shoppers, n)), axis=1)[:, :k].copy())


@pytest.mark.parametrize("env_id", SHOPPER_PRESETS)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 6))
def test_preset_invariants(env_id, seed, batch):
    simulator = _simulator(env_id, batch, seed)
    rng = np.random.default_rng(seed)
    money_budgeted = simulator.config.money > 0
    ended = 0
    for _ in range(60):
        slates = _random_slates(rng, simulator)
        shown = simulator.candidates.gather(1, slates)
        utility = simulator.utilities(shown)
        marginals = simulator.choice.marginals(utility)
        assert bool(((marginals >= 0) & (marginals <= 1)).all())
        if simulator.config.choice_model != "pbm":  # one click at most: a distribution with no-click
            assert bool((marginals.sum(1) <= 1 + 1e-5).all())
        outcome = simulator.step(slates)
        # Clicks and purchases only on shown positions (the masks are over the slate).
        assert outcome.clicks.shape == outcome.purchases.shape == slates.shape
        assert bool((outcome.purchases <= outcome.clicks).all())
        if simulator.config.choice_model != "pbm":
            assert bool((outcome.clicks.sum(1) <= 1).all())
        done = outcome.done
        assert not bool((outcome.terminated & outcome.truncated).any())
        # Budgets: a row that carries on has patience left; money is never negative.
        assert bool((simulator.patience[~done] > 0).all())
        if money_budgeted:
            assert bool((simulator.purchases.state["money"] >= -1e-5).all())
        ended += int(done.sum())
    assert ended > 0, "episodes end"


@pytest.mark.parametrize("env_id", SHOPPER_PRESETS)
def test_preset_same_seed_same_rollout(env_id):
    def rollout(seed):
        simulator = _simulator(env_id, 4, seed)
        rng = np.random.default_rng(0)
        return [simulator.step(_random_slates(rng, simulator)).reward for _ in range(30)]

    first, second, other = rollout(3), rollout(3), rollout(4)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(
    "env_id", ["shopgym/Shopper-v1", "shopgym/ShopperLongTerm-v0", "shopgym/ShopperColdStart-v0"]
)
def test_presets_click_at_the_calibrated_rates_with_their_dynamics_on(env_id):
    """Random-policy sessions (sampled clicks, another seed than the calibration's)
    click at the World's per-position target within 5%."""
    options = dict(shopgym.envs.PRESETS[env_id])
    simulator = make_simulator(1, None, "all", "cpu", None, options)
    table = simulate_session_ctr(simulator.world, simulator.config, shoppers=2048, steps=80, seed=7)
    target = np.array(simulator.world.calibration.target["ctr"])
    ratio = table["ctr"].to_numpy() / target
    assert np.all(np.abs(ratio - 1) < 0.05), ratio
