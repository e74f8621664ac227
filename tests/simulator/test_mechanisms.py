"""The shopper mechanisms of ``simulator/parts``: each equation checked against a
reference computed here, and switching each off restores the simpler behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shopgym.simulator.build import synthetic_world
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.shoppers import ShopperSimulator

CLICKY = -5.0  # a no-click utility this low makes (almost) every slate clicked


@pytest.fixture(scope="module")
def world():
    return synthetic_world()


def make(world, config, batch=16, seed=0):
    sim = ShopperSimulator(world, config, batch, device="cpu", seed=seed)
    sim.reset()
    return sim


def random_slates(rng: np.random.Generator, batch: int, k: int, n: int) -> torch.Tensor:
    return torch.from_numpy(rng.random((batch, n)).argsort(1)[:, :k].astype(np.int64))


def parts_term(sim, items):
    """What the parts add to the World's utility of (B, n) items."""
    return sim.utilities(items) - sim.world.utilities(sim.shopper, items)


# ------------------------------------------------------------------- drift
@pytest.mark.parametrize("rate", [0.3, -0.4])
def test_drift_after_one_click(world, rate):
    config = ShopperConfig(drift_rate=rate, drift_weight=2.0, no_click_utility=CLICKY)
    sim = make(world, config)
    assert torch.all(sim.drift.state["drift"] == 0)
    slates = random_slates(np.random.default_rng(0), 16, config.slate_size, config.num_candidates)
    items = sim.candidates.gather(1, slates)
    outcome = sim.step(slates)
    assert not outcome.done.any()
    assert outcome.clicks.sum(1).max() == 1 and outcome.clicks.any()
    unit = sim.unit_item_vectors
    clicked_item = (items * outcome.clicks).sum(1)
    expected = torch.where(outcome.clicks.any(1)[:, None], rate * unit[clicked_item], 0.0)
    torch.testing.assert_close(sim.drift.state["drift"], expected)
    # The utility term: drift_weight * d . e_j, for every catalogue item.
    everything = torch.arange(world.num_items).expand(16, -1)
    term = parts_term(sim, everything)
    torch.testing.assert_close(term, 2.0 * expected @ unit.T, atol=1e-5, rtol=1e-5)
    # The clicked item itself gains rate * drift_weight (|e| = 1): negative rates push away.
    clicked_term = term.gather(1, clicked_item[:, None])[:, 0][outcome.clicks.any(1)]
    torch.testing.assert_close(clicked_term, torch.full_like(clicked_term, 2.0 * rate), atol=1e-5, rtol=1e-5)
    assert torch.all(clicked_term > 0) if rate > 0 else torch.all(clicked_term < 0)


def test_drift_persists_within_a_lifetime_and_resets_at_a_new_one(world):
    rate = 0.25
    config = ShopperConfig(
        drift_rate=rate,
        no_click_utility=CLICKY,
        patience=2.0,
        no_click_cost=0.0,
        purchase_refund=0.0,
        lifetime_days=6,
        return_bias=2.0,
    )
    batch = 16
    sim = make(world, config, batch)
    rng = np.random.default_rng(1)
    unit = sim.unit_item_vectors
    reference = torch.zeros_like(sim.drift.state["drift"])
    returned = reset = False
    for _ in range(25):
        before = sim.observe()["session"][:, 0]
        slates = random_slates(rng, batch, config.slate_size, config.num_candidates)
        items = sim.candidates.gather(1, slates)
        outcome = sim.step(slates)
        clicked = outcome.clicks.any(1)
        e = unit[(items * outcome.clicks).sum(1)]
        reference = torch.where(clicked[:, None], (1 - rate) * reference + rate * e, reference)
        reference = torch.where(outcome.done[:, None], 0.0, reference)
        torch.testing.assert_close(sim.drift.state["drift"], reference)
        now = sim.observe()["session"][:, 0]
        returned |= bool(((now > before) & ~outcome.done & (reference.norm(dim=1) > 0)).any())
        reset |= bool(outcome.done.any())
    assert returned and reset


def test_drift_off_leaves_the_world_utility(world):
    sim = make(world, ShopperConfig(drift_rate=0.0, drift_weight=5.0, no_click_utility=CLICKY))
    assert sim.drift is None
    slates = random_slates(np.random.default_rng(0), 16, 5, 20)
    sim.step(slates)
    items = torch.arange(world.num_items).expand(16, -1)
    assert torch.all(parts_term(sim, items) == 0)


# ----------------------------------------------------------------- boredom
def test_boredom_update_and_utility(world):
    weight, decay = 0.6, 0.7
    config = ShopperConfig(boredom_weight=weight, boredom_decay=decay, no_click_utility=CLICKY)
    batch = 16
    sim = make(world, config, batch)
    category = world.item_category.float()
    w = category / category.sum(1, keepdim=True).clamp(min=1)
    reference = torch.zeros(batch, category.shape[1])
    rng = np.random.default_rng(2)
    everything = torch.arange(world.num_items).expand(batch, -1)
    for _ in range(4):
        slates = random_slates(rng, batch, config.slate_size, config.num_candidates)
        items = sim.candidates.gather(1, slates)
        outcome = sim.step(slates)
        assert not outcome.done.any()
        reference = decay * reference + torch.einsum("bk,bkc->bc", outcome.clicks.float(), w[items])
        torch.testing.assert_close(sim.boredom.state["boredom"], reference)
        torch.testing.assert_close(
            parts_term(sim, everything), -weight * reference @ w.T, atol=1e-5, rtol=1e-5
        )
    assert reference.sum() > 0
    days = torch.arange(batch) % 4
    sim.boredom.rest(days)
    torch.testing.assert_close(sim.boredom.state["boredom"], reference * (decay ** days.float())[:, None])


def test_boredom_off_leaves_the_world_utility(world):
    sim = make(world, ShopperConfig(boredom_weight=0.0, boredom_decay=0.1, no_click_utility=CLICKY))
    assert sim.boredom is None
    rng = np.random.default_rng(2)
    for _ in range(3):
        sim.step(random_slates(rng, 16, 5, 20))
    items = torch.arange(world.num_items).expand(16, -1)
    assert torch.all(parts_term(sim, items) == 0)


# ------------------------------------------------------------------ budget
def expected_patience(config, before, outcome, worth):
    """The documented patience update, with (B, k) ``worth`` the clicked items' experience."""
    clicks, purchases = outcome.clicks.float(), outcome.purchases.float()
    return (
        before
        - config.step_cost
        - config.no_click_cost * (1 - clicks.amax(1))
        - config.click_cost * clicks.sum(1)
        + config.purchase_refund * purchases.sum(1)
        + config.utility_refill * (clicks * worth.clamp(min=0)).sum(1)
    )


@pytest.mark.parametrize("model", ["mnl", "pbm"])
def test_patience_equation(world, model):
    config = ShopperConfig(
        choice_model=model,
        patience=4.0,
        step_cost=1.0,
        no_click_cost=1.5,
        click_cost=0.5,
        purchase_refund=0.7,
        utility_refill=0.3,
        purchase_bias=0.5,
    )
    batch = 32
    sim = make(world, config, batch)
    rng = np.random.default_rng(3)
    seen_end = False
    for _ in range(8):
        before = sim.patience.clone()
        slates = random_slates(rng, batch, config.slate_size, config.num_candidates)
        items = sim.candidates.gather(1, slates)
        utility = sim.utilities(items)
        outcome = sim.step(slates)
        expected = expected_patience(config, before, outcome, utility)
        ended = expected <= 0
        assert torch.equal(outcome.terminated, ended)
        live = ~outcome.done
        torch.testing.assert_close(sim.patience[live], expected[live])
        assert torch.all(sim.patience[live] > 0)
        assert torch.all(sim.patience[outcome.done] == config.patience)
        seen_end |= bool(ended.any())
    assert seen_end


def test_patience_stays_positive_while_the_session_continues(world):
    config = ShopperConfig(no_click_utility=1.0)
    batch = 64
    sim = make(world, config, batch)
    rng = np.random.default_rng(4)
    for _ in range(15):
        outcome = sim.step(random_slates(rng, batch, config.slate_size, config.num_candidates))
        assert torch.all(sim.patience[~outcome.done] > 0)
        assert torch.all(sim.patience > 0)


@pytest.mark.parametrize("leave", [0, 1, 3])
def test_leave_after_unsatisfying(world, leave):
    config = ShopperConfig(no_click_utility=50.0, patience=100.0, leave_after_unsatisfying=leave)
    batch = 16
    sim = make(world, config, batch)
    rng = np.random.default_rng(5)
    for step in range(1, 6):
        outcome = sim.step(random_slates(rng, batch, config.slate_size, config.num_candidates))
        assert not outcome.clicks.any()
        if leave and step % leave == 0:
            assert outcome.terminated.all()
        else:
            assert not outcome.done.any()


# ---------------------------------------------------- quality and experience
def with_quality(world, value=None, seed=0):
    """``world`` with item quality: ``value`` for every item, or standard normal draws."""
    import dataclasses

    quality = (
        torch.randn(world.num_items, generator=torch.Generator().manual_seed(seed))
        if value is None
        else torch.full((world.num_items,), float(value))
    )
    return dataclasses.replace(world, item_quality=quality)


@pytest.mark.parametrize("weight", [0.0, 0.6, 1.0])
def test_experience_mixes_utility_and_quality_and_refills_patience(world, weight):
    world = with_quality(world)
    config = ShopperConfig(
        quality_weight=weight, utility_refill=0.8, click_cost=0.5, patience=50.0, no_click_utility=CLICKY
    )
    batch = 32
    sim = make(world, config, batch)
    rng = np.random.default_rng(11)
    for _ in range(4):
        before = sim.patience.clone()
        slates = random_slates(rng, batch, config.slate_size, config.num_candidates)
        items = sim.candidates.gather(1, slates)
        utility = sim.utilities(items)
        experience = (1 - weight) * utility + weight * world.item_quality[items]
        torch.testing.assert_close(sim.experience(items, utility), experience)
        outcome = sim.step(slates)
        expected = expected_patience(config, before, outcome, experience)
        live = ~outcome.done
        torch.testing.assert_close(sim.patience[live], expected[live])
    if weight == 0.0:  # off: the experience is the utility itself
        assert torch.equal(sim.experience(items, utility), utility)


def test_quality_needs_a_world_with_item_quality(world):
    from shopgym.simulator.errors import ConfigError

    assert world.item_quality is None
    with pytest.raises(ConfigError, match="item quality"):
        make(world, ShopperConfig(quality_weight=0.5))


@pytest.mark.parametrize("quality", [-1.0, 1.0])
def test_a_disappointing_click_is_an_unsatisfying_slate(world, quality):
    config = ShopperConfig(
        quality_weight=1.0, no_click_utility=CLICKY, patience=100.0, leave_after_unsatisfying=2
    )
    sim = make(with_quality(world, quality), config, 16)
    rng = np.random.default_rng(12)
    for step in range(1, 5):
        outcome = sim.step(random_slates(rng, 16, config.slate_size, config.num_candidates))
        assert outcome.clicks.any(1).all()
        # Clicked, but only what disappointed (quality -1): the shopper still leaves.
        if quality < 0:
            assert bool(outcome.terminated.all()) == (step % 2 == 0)
        else:
            assert not outcome.done.any()


def test_without_quality_a_click_of_negative_utility_is_unsatisfying(world):
    config = ShopperConfig(no_click_utility=CLICKY, patience=100.0, leave_after_unsatisfying=2)
    batch = 64
    sim = make(world, config, batch)
    rng = np.random.default_rng(13)
    unsatisfied = torch.zeros(batch)
    seen = {"clicked but left": False, "stayed": False}
    for _ in range(6):
        slates = random_slates(rng, batch, config.slate_size, config.num_candidates)
        utility = sim.utilities(sim.candidates.gather(1, slates))
        outcome = sim.step(slates)
        satisfied = (outcome.clicks & (utility > 0)).any(1)
        unsatisfied = torch.where(satisfied, 0.0, unsatisfied + 1)
        leaves = unsatisfied >= 2
        assert torch.equal(outcome.terminated, leaves)
        seen["clicked but left"] |= bool((leaves & outcome.clicks.any(1)).any())
        seen["stayed"] |= bool((~leaves).any())
        unsatisfied = torch.where(outcome.done, 0.0, unsatisfied)
    assert all(seen.values())


def test_session_satisfaction_is_the_experience_of_what_was_clicked(world):
    world = with_quality(world)
    config = ShopperConfig(
        quality_weight=0.8,
        lifetime_days=10,
        satisfaction_purchase_weight=0.7,
        satisfaction_no_click_penalty=1.3,
        patience=50.0,
        purchase_bias=1.0,
    )
    batch = 64
    sim = make(world, config, batch)
    rng = np.random.default_rng(14)
    total = torch.zeros(batch)
    for _ in range(3):
        slates = random_slates(rng, batch, config.slate_size, config.num_candidates)
        items = sim.candidates.gather(1, slates)
        experience = 0.2 * sim.utilities(items) + 0.8 * world.item_quality[items]
        outcome = sim.step(slates)
        clicks = outcome.clicks.float()
        total = total + (
            (clicks * experience).sum(1) + 0.7 * outcome.purchases.sum(1) - 1.3 * (1 - clicks.amax(1))
        )
        assert not outcome.done.any()
    torch.testing.assert_close(sim.returns.state["satisfaction"], total)
    assert torch.all(sim.returns.state["slates"] == 3)


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_quality_weight_must_be_a_share(weight):
    from shopgym.simulator.errors import ConfigError

    with pytest.raises(ConfigError, match="quality_weight"):
        ShopperConfig(quality_weight=weight)


# --------------------------------------------------------------- purchases
def test_money_budget_is_never_overspent(world):
    money = 2.0
    config = ShopperConfig(
        choice_model="pbm",
        money=money,
        purchase_bias=6.0,
        purchase_price_weight=0.0,
        no_click_utility=CLICKY,
        reward="revenue",
    )
    batch = 32
    sim = make(world, config, batch)
    relative = sim.purchases.relative_price
    torch.testing.assert_close(relative, world.item_price / world.item_price.median())
    paid = torch.zeros(batch)
    rng = np.random.default_rng(6)
    bought = 0
    for _ in range(10):
        slates = random_slates(rng, batch, config.slate_size, config.num_candidates)
        items = sim.candidates.gather(1, slates)
        outcome = sim.step(slates)
        spent = (outcome.purchases * relative[items]).sum(1)
        torch.testing.assert_close(outcome.info["revenue"], spent)
        torch.testing.assert_close(outcome.reward, spent)
        paid = paid + spent
        bought += int(outcome.purchases.sum())
        assert torch.all(paid <= money + 1e-5)
        live = ~outcome.done
        torch.testing.assert_close(sim.purchases.state["money"][live], money - paid[live])
        assert torch.all(sim.purchases.state["money"] >= -1e-6)
        paid = torch.where(outcome.done, 0.0, paid)
    assert bought > 0


@pytest.mark.parametrize("spread", [0.0, 0.8])
def test_price_sensitivity_spread(world, spread):
    sim = make(world, ShopperConfig(purchase_price_weight=1.7, price_sensitivity_spread=spread), 64)
    sensitivity = sim.purchases.state["price_sensitivity"]
    if spread == 0:
        assert torch.all(sensitivity == 1.7)
    else:
        assert sensitivity.std() > 0.1 and torch.all(sensitivity > 0)
        torch.testing.assert_close(
            sensitivity.log().median(), torch.tensor(np.log(1.7)).float(), atol=0.4, rtol=0
        )


@settings(max_examples=30, deadline=None)
@given(
    bias=st.floats(-3.0, 3.0),
    weight=st.floats(0.0, 3.0),
    price_weight=st.floats(0.0, 3.0),
    spread=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_purchase_probability_formula(world, bias, weight, price_weight, spread, seed):
    config = ShopperConfig(
        purchase_bias=bias,
        purchase_utility_weight=weight,
        purchase_price_weight=price_weight,
        price_sensitivity_spread=spread,
    )
    sim = make(world, config, 8, seed=seed)
    items = sim.candidates[:, :5]
    utility = sim.utilities(items)
    sensitivity = sim.purchases.state["price_sensitivity"][:, None]
    relative = world.item_price[items] / world.item_price.median()
    expected = torch.sigmoid(bias + weight * utility - sensitivity * relative.log())
    torch.testing.assert_close(sim.purchases.probability(items, utility), expected)


@pytest.mark.parametrize("reward", ["clicks", "purchases", "revenue", "engagement"])
def test_reward_settings(world, reward):
    config = ShopperConfig(
        choice_model="pbm",
        reward=reward,
        click_reward=0.5,
        purchase_reward=3.0,
        purchase_bias=1.0,
        no_click_utility=-1.0,
    )
    batch = 32
    sim = make(world, config, batch)
    rng = np.random.default_rng(7)
    for _ in range(3):
        slates = random_slates(rng, batch, config.slate_size, config.num_candidates)
        items = sim.candidates.gather(1, slates)
        outcome = sim.step(slates)
        clicks, purchases = outcome.clicks.float().sum(1), outcome.purchases.float().sum(1)
        revenue = (outcome.purchases * sim.purchases.relative_price[items]).sum(1)
        torch.testing.assert_close(outcome.info["revenue"], revenue)
        expected = {
            "clicks": clicks,
            "purchases": purchases,
            "revenue": revenue,
            "engagement": 0.5 * clicks + 3.0 * purchases,
        }[reward]
        torch.testing.assert_close(outcome.reward, expected)
        assert torch.all(outcome.purchases <= outcome.clicks)


# ----------------------------------------------------------------- returns
SHORT_SESSIONS = {"patience": 3.0, "no_click_cost": 0.0, "purchase_refund": 0.0}  # 3 slates a session


def test_episodes_span_several_sessions(world):
    config = ShopperConfig(**SHORT_SESSIONS, lifetime_days=20, return_bias=2.0)
    batch = 32
    sim = make(world, config, batch)
    rng = np.random.default_rng(8)
    sessions_seen = 0.0
    saw_terminated = False
    for _ in range(30):
        before = sim.observe()["session"][:, 0]
        outcome = sim.step(random_slates(rng, batch, config.slate_size, config.num_candidates))
        final = sim.observe(outcome.final_state)
        session_ended = final["step"][:, 0] == 3
        # Terminated only when a session ends (and the shopper does not come back).
        assert not (outcome.terminated & ~session_ended).any()
        now = sim.observe()
        back = ~outcome.done & (now["session"][:, 0] > before)
        assert torch.equal(back, ~outcome.done & session_ended)
        assert torch.all(now["session"][back, 0] == before[back] + 1)
        assert torch.all(now["days_away"][back, 0] >= 1)
        assert torch.all(now["step"][back, 0] == 0)
        assert torch.all(now["session"][outcome.done, 0] == 0)
        sessions_seen = max(sessions_seen, float(now["session"].max()))
        saw_terminated |= bool(outcome.terminated.any())
    assert sessions_seen >= 2 and saw_terminated


def test_never_coming_back_is_one_session(world):
    gone = make(world, ShopperConfig(**SHORT_SESSIONS, lifetime_days=20, return_bias=-50.0), 16, seed=9)
    single = make(world, ShopperConfig(**SHORT_SESSIONS), 16, seed=9)
    rng = np.random.default_rng(9)
    ended = 0
    for _ in range(10):
        slates = random_slates(rng, 16, 5, 20)
        a, b = gone.step(slates), single.step(slates)
        assert torch.equal(a.terminated, b.terminated)
        assert not a.truncated.any() and not b.truncated.any()
        # The returns part draws from its own stream only: the other parts see the
        # same draws, so the shoppers, clicks and rewards are the same at every step.
        assert torch.equal(a.clicks, b.clicks) and torch.equal(a.reward, b.reward)
        ended += int(a.done.sum())
        assert torch.all(gone.observe()["session"] == 0)
    assert ended > 0


def test_lifetime_cuts_episodes_as_truncated(world):
    config = ShopperConfig(**SHORT_SESSIONS, lifetime_days=3, return_bias=50.0)
    batch = 16
    sim = make(world, config, batch)
    rng = np.random.default_rng(10)
    truncated = 0
    for _ in range(20):
        outcome = sim.step(random_slates(rng, batch, config.slate_size, config.num_candidates))
        assert not outcome.terminated.any()
        final = sim.observe(outcome.final_state)
        assert torch.all(final["step"][outcome.truncated, 0] == 3)
        truncated += int(outcome.truncated.sum())
    assert truncated > 0


# ------------------------------------------------------- everything off
def rollout(world, config, seed=11, steps=20, batch=16):
    sim = make(world, config, batch, seed=seed)
    rng = np.random.default_rng(seed)
    tensors = [sim.observe()]
    for _ in range(steps):
        outcome = sim.step(random_slates(rng, batch, config.slate_size, config.num_candidates))
        tensors.append(
            {
                "reward": outcome.reward,
                "clicks": outcome.clicks,
                "purchases": outcome.purchases,
                "terminated": outcome.terminated,
                "truncated": outcome.truncated,
                "revenue": outcome.info["revenue"],
                **{f"final_{key}": value for key, value in sim.observe(outcome.final_state).items()},
                **sim.observe(),
            }
        )
    return tensors


def test_defaults_equal_mechanisms_switched_off(world):
    off = ShopperConfig(
        drift_rate=0.0,
        boredom_weight=0.0,
        lifetime_days=0,
        money=0.0,
        click_cost=0.0,
        utility_refill=0.0,
        leave_after_unsatisfying=0,
        # Parameters of mechanisms that are off must not matter either.
        drift_weight=3.0,
        boredom_decay=0.1,
        return_bias=5.0,
        return_delay_days=7.0,
    )
    default, explicit = rollout(world, ShopperConfig()), rollout(world, off)
    for a, b in zip(default, explicit, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
    assert any(bool(step["terminated"].any()) for step in default[1:])


# ------------------------------------------------------- snapshot/restore
EVERYTHING = ShopperConfig(
    choice_model="pbm",
    drift_rate=0.2,
    boredom_weight=0.5,
    lifetime_days=5,
    money=3.0,
    click_cost=0.2,
    utility_refill=0.1,
    leave_after_unsatisfying=2,
    price_sensitivity_spread=0.5,
    patience=4.0,
)


def test_restore_replays_the_same_outcomes(world):
    batch = 16
    sim = make(world, EVERYTHING, batch, seed=12)
    rng = np.random.default_rng(12)
    for _ in range(3):
        sim.step(random_slates(rng, batch, 5, 20))
    snapshot = sim.snapshot()
    slates = [random_slates(rng, batch, 5, 20) for _ in range(6)]
    first = [sim.step(s) for s in slates]
    sim.restore(snapshot)
    again = [sim.step(s) for s in slates]
    for a, b in zip(first, again, strict=True):
        for key in ("reward", "clicks", "purchases", "terminated", "truncated"):
            assert torch.equal(getattr(a, key), getattr(b, key)), key
        for key in a.final_state:
            assert torch.equal(a.final_state[key], b.final_state[key]), key
    assert any(bool(o.clicks.any()) for o in first)


def test_load_rows_repeats_every_state_row(world):
    batch, repeats = 4, 3
    small = make(world, EVERYTHING, batch, seed=13)
    rng = np.random.default_rng(13)
    for _ in range(3):
        small.step(random_slates(rng, batch, 5, 20))
    snapshot = small.snapshot()
    big = make(world, EVERYTHING, batch * repeats, seed=14)
    big.load_rows(snapshot, repeats=repeats)
    assert torch.equal(big.episode_steps, snapshot["episode_steps"].repeat_interleave(repeats, 0))
    checked = 0
    for part in big.parts:
        saved = snapshot["parts"][part.name]
        assert part.state.keys() == saved.keys()
        for key, value in saved.items():
            for row in range(batch * repeats):
                assert torch.equal(part.state[key][row], value[row // repeats]), (part.name, key)
            checked += 1
    assert checked >= 10
