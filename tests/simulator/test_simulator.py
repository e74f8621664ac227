"""ShopperSimulator: step invariants checked against a reference bookkeeping of each
shopper, observations, item features, reproducibility, slate checks and config checks."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError, SlateError
from shopgym.simulator.shoppers import ShopperSimulator
from shopgym.simulator.world import decay_logits

from .helpers import same_rollouts, sub_catalogue

OBSERVATION_KEYS = {
    "candidate_ids",
    "candidate_features",
    "history_ids",
    "history_features",
    "step",
}


def random_slates(rng: np.random.Generator, batch: int, k: int, n: int) -> torch.Tensor:
    return torch.from_numpy(rng.random((batch, n)).argsort(1)[:, :k].astype(np.int64))


def simulator(world, config=ShopperConfig(), batch=8, seed=0, shoppers="train"):
    sim = ShopperSimulator(world, config, batch, shoppers=shoppers, device="cpu", seed=seed)
    sim.reset()
    return sim


# ----------------------------------------------------------------------------- step invariants
DYNAMICS = [
    ShopperConfig(),
    ShopperConfig(
        slate_size=3,
        num_candidates=6,
        history_length=3,
        max_steps=7,
        patience=4.0,
        step_cost=0.5,
        no_click_cost=1.5,
        purchase_refund=0.75,
        click_reward=0.3,
        purchase_reward=2.0,
        purchase_bias=1.0,
    ),
    ShopperConfig(slate_size=1, num_candidates=1, history_length=1, max_steps=3, patience=2.5),
    ShopperConfig(
        slate_size=10,
        num_candidates=40,
        max_steps=50,
        patience=100.0,
        candidate_sampling="popularity",
        click_reward=-1.0,
    ),
]


def check_rollout(world, config: ShopperConfig, batch: int, seed: int, steps: int) -> dict:
    """Run `steps` random slates and check every step against a reference model of the
    session bookkeeping. Returns counts of what happened, so callers can check coverage."""
    sim = simulator(world, config, batch, seed=seed, shoppers="all")
    rng = np.random.default_rng(seed)
    num_items, k, n = world.num_items, config.slate_size, config.num_candidates
    histories = [[] for _ in range(batch)]  # clicked items of the current session
    seen = {"clicks": 0, "purchases": 0, "terminated": 0, "truncated": 0}
    for _ in range(steps):
        before = {
            "patience": sim.patience.clone(),
            "steps": sim.steps.clone(),
            "shopper": sim.shopper.clone(),
            "candidates": sim.candidates.clone(),
        }
        # Candidates: N distinct catalogue items per row.
        assert before["candidates"].shape == (batch, n)
        assert bool(((before["candidates"] >= 0) & (before["candidates"] < num_items)).all())
        assert bool((before["candidates"].sort(1).values.diff(1) > 0).all())

        slates = random_slates(rng, batch, k, n)
        outcome = sim.step(slates)
        shown = before["candidates"].gather(1, slates)
        clicks, purchases = outcome.clicks, outcome.purchases
        assert clicks.shape == purchases.shape == (batch, k)
        assert clicks.dtype == purchases.dtype == torch.bool
        assert bool((clicks.sum(1) <= 1).all())
        assert bool((purchases <= clicks).all())
        clicked = clicks.any(1)
        purchased = purchases.any(1)
        expected_reward = config.click_reward * clicked.float() + (config.purchase_reward * purchased.float())
        assert torch.allclose(outcome.reward, expected_reward)
        assert outcome.reward.dtype == torch.float32

        expected_patience = (
            before["patience"]
            - config.step_cost
            - config.no_click_cost * (~clicked).float()
            + config.purchase_refund * purchased.float()
        )
        assert torch.equal(outcome.terminated, expected_patience <= 0)
        assert torch.equal(outcome.final_state["steps"], before["steps"] + 1)
        assert torch.equal(outcome.truncated, (before["steps"] + 1 >= config.max_steps) & ~outcome.terminated)
        assert not bool((outcome.terminated & outcome.truncated).any())
        assert torch.equal(outcome.done, outcome.terminated | outcome.truncated)

        for row in range(batch):
            if clicked[row]:
                position = int(clicks[row].nonzero()[0, 0])
                histories[row].append(int(shown[row, position]))
            kept = histories[row][-config.history_length :]
            padded = [num_items] * (config.history_length - len(kept)) + kept
            assert outcome.final_state["history"][row].tolist() == padded
        done = outcome.done
        for row in done.nonzero().flatten().tolist():
            histories[row] = []

        # After the step: ended sessions restart, the others carry on.
        assert bool((sim.steps[done] == 0).all())
        assert bool((sim.clicked_history[done] == num_items).all())
        assert bool((sim.patience[done] == config.patience).all())
        assert torch.equal(sim.steps[~done], before["steps"][~done] + 1)
        assert torch.allclose(sim.patience[~done], expected_patience[~done])
        assert bool((sim.patience[~done] > 0).all())
        assert torch.equal(sim.clicked_history[~done], outcome.final_state["history"][~done])
        assert torch.equal(sim.shopper[~done], before["shopper"][~done])
        assert bool((sim.steps < config.max_steps).all())

        seen["clicks"] += int(clicked.sum())
        seen["purchases"] += int(purchased.sum())
        seen["terminated"] += int(outcome.terminated.sum())
        seen["truncated"] += int(outcome.truncated.sum())
    return seen


@pytest.mark.parametrize("config", DYNAMICS, ids=["default", "small", "k1", "popular"])
def test_step_invariants(synthetic, config):
    seen = check_rollout(synthetic, config, batch=32, seed=11, steps=60)
    assert seen["clicks"] > 0
    assert seen["purchases"] > 0
    assert seen["terminated"] + seen["truncated"] > 0


def test_sessions_end_both_ways(synthetic):
    # Two slates without a click use up the patience; clicking shoppers reach max_steps.
    config = ShopperConfig(
        slate_size=3, num_candidates=6, max_steps=3, patience=4.0, step_cost=0.5, no_click_cost=1.5
    )
    seen = check_rollout(synthetic, config, batch=64, seed=5, steps=20)
    assert seen["terminated"] > 0
    assert seen["truncated"] > 0


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 9),
    k=st.integers(1, 5),
    extra=st.integers(0, 6),
    history=st.integers(1, 4),
    max_steps=st.integers(1, 12),
    patience=st.floats(0.5, 8.0),
    no_click_cost=st.floats(0.0, 2.0),
    refund=st.floats(0.0, 1.5),
)
def test_step_invariants_property(
    synthetic, seed, batch, k, extra, history, max_steps, patience, no_click_cost, refund
):
    config = ShopperConfig(
        slate_size=k,
        num_candidates=k + extra,
        history_length=history,
        max_steps=max_steps,
        patience=patience,
        no_click_cost=no_click_cost,
        purchase_refund=refund,
        click_reward=0.7,
        purchase_reward=1.9,
    )
    check_rollout(synthetic, config, batch=batch, seed=seed, steps=15)


def test_clicked_items_were_shown_and_follow_utility(synthetic):
    """Under a strongly preference-driven calibration, clicked items have higher true
    utility than the shown items that were not clicked."""
    calibration = replace(synthetic.calibration, beta=4.0, no_click_utility=-2.0)
    world = replace(synthetic, calibration=calibration)
    sim = simulator(world, ShopperConfig(slate_size=5, num_candidates=10), batch=500, seed=2)
    rng = np.random.default_rng(2)
    clicked_utility, other_utility = [], []
    for _ in range(5):
        items = sim.candidates.gather(1, slates := random_slates(rng, 500, 5, 10))
        utility = sim.utilities(items)
        outcome = sim.step(slates)
        rows = outcome.clicks.any(1)
        clicked_utility.append(utility[outcome.clicks])
        other_utility.append(utility[rows[:, None] & ~outcome.clicks])
    assert torch.cat(clicked_utility).mean() > torch.cat(other_utility).mean() + 0.5


def test_position_bias_shows_in_click_positions(synthetic):
    calibration = replace(synthetic.calibration, position_logits=decay_logits(1.0, 4), no_click_utility=-3.0)
    world = replace(synthetic, calibration=calibration)
    config = ShopperConfig(slate_size=4, num_candidates=10, max_steps=1)
    sim = simulator(world, config, batch=2000, seed=8, shoppers="all")
    rng = np.random.default_rng(8)
    per_position = torch.zeros(4)
    for _ in range(3):
        per_position += sim.step(random_slates(rng, 2000, 4, 10)).clicks.sum(0)
    assert bool((per_position[1:] < per_position[:-1]).all())


# ----------------------------------------------------------------------------- observations
def test_observation_has_no_latent_vectors(synthetic):
    config = ShopperConfig(slate_size=3, num_candidates=7, history_length=4)
    sim = simulator(synthetic, config, batch=6, seed=1)
    for _ in range(3):
        obs = sim.observe()
        assert set(obs) == OBSERVATION_KEYS
        assert obs["candidate_ids"].shape == (6, 7)
        assert obs["candidate_ids"].dtype == torch.int64
        assert obs["candidate_features"].shape == (6, 7, sim.num_features)
        assert obs["candidate_features"].dtype == torch.float32
        assert obs["history_ids"].shape == (6, 4)
        assert obs["history_features"].shape == (6, 4, sim.num_features)
        assert obs["step"].shape == (6, 1)
        assert obs["step"].dtype == torch.float32
        assert torch.equal(obs["candidate_ids"], sim.candidates)
        assert torch.equal(obs["step"][:, 0], sim.steps.float())
        assert torch.equal(obs["candidate_features"], sim.feature_table[obs["candidate_ids"]])
        empty = obs["history_ids"] == synthetic.num_items
        assert bool((obs["history_features"][empty] == 0).all())
        filled = ~empty
        assert torch.equal(obs["history_features"][filled], sim.feature_table[obs["history_ids"][filled]])
        # Nothing in the observation holds a shopper's latent vector.
        latent = synthetic.model.user_embedding[sim.shopper.cpu()]
        for value in obs.values():
            flat = value.reshape(len(latent), -1).float()
            for column in range(flat.shape[1] - latent.shape[1] + 1):
                window = flat[:, column : column + latent.shape[1]]
                assert not torch.allclose(window, latent)
        sim.step(torch.arange(3).expand(6, -1).clone())


def test_final_observation_uses_final_history(synthetic):
    config = ShopperConfig(max_steps=2)
    sim = simulator(synthetic, config, batch=5, seed=4)
    sim.step(torch.arange(5).expand(5, -1).clone())
    outcome = sim.step(torch.arange(5).expand(5, -1).clone())
    assert bool(outcome.done.all())
    final = sim.observe(outcome.final_state)
    assert torch.equal(final["history_ids"], outcome.final_state["history"])
    assert torch.equal(final["step"][:, 0], torch.full((5,), 2.0))
    assert bool((sim.observe()["step"] == 0).all())


@pytest.mark.parametrize("kind", ["exact", "noisy", "content"])
def test_feature_columns(synthetic, kind):
    sim = simulator(synthetic, ShopperConfig(item_features=kind), batch=2)
    features = sim.item_features()
    categories = synthetic.num_categories
    # The model's item representation: for MF the item vector and the item bias.
    dim = synthetic.item_representation().shape[1]
    assert dim == synthetic.model.item_embedding.shape[1] + 1
    expected_width = 2 + categories + (0 if kind == "content" else dim)
    assert features.shape == (synthetic.num_items, expected_width)
    assert sim.num_features == expected_width
    assert sim.feature_table.shape == (synthetic.num_items + 1, expected_width)
    assert bool((sim.feature_table[-1] == 0).all())
    popularity = features[:, 0]
    assert bool(((popularity >= 0) & (popularity <= 1)).all())
    assert float(popularity.max()) == pytest.approx(1.0)
    # Popularity is monotone in the interaction counts.
    order = synthetic.item_popularity.argsort()
    assert bool((popularity[order].diff() >= 0).all())
    # Price is the standardised log price; categories are copied.
    log_price = synthetic.item_price.log()
    assert torch.allclose(features[:, 1], (log_price - log_price.mean()) / log_price.std(), atol=1e-5)
    assert torch.equal(features[:, 2 : 2 + categories], synthetic.item_category)


def test_exact_features_are_the_standardised_latent_item_vectors(synthetic):
    sim = simulator(synthetic, ShopperConfig(item_features="exact"), batch=1)
    latent = sim.item_features()[:, 2 + synthetic.num_categories :]
    truth = torch.cat([synthetic.model.item_embedding, synthetic.model.item_bias[:, None]], 1)
    assert torch.equal(synthetic.item_representation(), truth[synthetic.catalogue])
    assert torch.allclose(latent, (truth - truth.mean(0)) / truth.std(0), atol=1e-5)


def test_exact_features_follow_the_catalogue(synthetic):
    """A World selling a subset of the model's items, in another order, describes each
    World item by its own model item."""
    keep = torch.arange(synthetic.num_items - 1, -1, -2)  # every other item, reversed
    world = sub_catalogue(synthetic, keep)
    sim = simulator(world, ShopperConfig(slate_size=3, num_candidates=5, item_features="exact"), batch=1)
    latent = sim.item_features()[:, 2 + world.num_categories :]
    truth = torch.cat([synthetic.model.item_embedding, synthetic.model.item_bias[:, None]], 1)[keep]
    assert torch.allclose(latent, (truth - truth.mean(0)) / truth.std(0), atol=1e-5)


def test_noisy_features_differ_from_exact_but_are_fixed(synthetic):
    exact = simulator(synthetic, ShopperConfig(item_features="exact"), batch=3, seed=0)
    noisy = simulator(synthetic, ShopperConfig(item_features="noisy"), batch=3, seed=0)
    other = simulator(synthetic, ShopperConfig(item_features="noisy"), batch=3, seed=99)
    width = 2 + synthetic.num_categories
    e, n = exact.feature_table, noisy.feature_table
    assert torch.equal(e[:, :width], n[:, :width])
    difference = (e[:-1, width:] - n[:-1, width:]).std()
    assert float(difference) == pytest.approx(noisy.config.feature_noise, rel=0.25)
    assert torch.equal(noisy.feature_table, other.feature_table)
    # Fixed across steps and resets: the features of an item never change.
    before = noisy.observe()
    noisy.step(torch.arange(5).expand(3, -1).clone())
    noisy.reset(seed=123)
    after = noisy.observe()
    for obs in (before, after):
        assert torch.equal(obs["candidate_features"], n[obs["candidate_ids"]])
    louder = simulator(synthetic, ShopperConfig(item_features="noisy", feature_noise=2.0), batch=3, seed=0)
    assert float((e[:-1, width:] - louder.feature_table[:-1, width:]).std()) > 2 * float(difference)


# ----------------------------------------------------------------------------- reproducibility
def rollout(world, seed: int, steps: int = 30, config=DYNAMICS[1], batch: int = 16):
    sim = simulator(world, config, batch, seed=seed)
    rng = np.random.default_rng(0)  # the same slates for every simulator seed
    record = [sim.observe()]
    for _ in range(steps):
        outcome = sim.step(random_slates(rng, batch, config.slate_size, config.num_candidates))
        record.append(outcome)
        record.append({"shopper": sim.shopper.clone(), **sim.observe()})
    return record


def test_same_seed_same_rollout_different_seed_different(synthetic):
    first, second, other = rollout(synthetic, 7), rollout(synthetic, 7), rollout(synthetic, 8)
    assert same_rollouts(first, second)
    assert not same_rollouts(first, other)


def test_reset_with_seed_reproduces(synthetic):
    config = DYNAMICS[1]
    sim = simulator(synthetic, config, batch=10, seed=0)
    rng = np.random.default_rng(1)
    slates = [random_slates(rng, 10, 3, 6) for _ in range(10)]

    def run():
        outcomes = [sim.step(s) for s in slates]
        return torch.stack([o.reward for o in outcomes]), sim.shopper.clone()

    sim.reset(seed=42)
    first = run()
    sim.reset(seed=42)
    second = run()
    sim.reset(seed=43)
    third = run()
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not (torch.equal(first[0], third[0]) and torch.equal(first[1], third[1]))


def test_shoppers_come_from_the_requested_part(synthetic):
    for part in ("train", "test"):
        sim = simulator(synthetic, ShopperConfig(max_steps=1), batch=64, seed=0, shoppers=part)
        allowed = set(synthetic.shopper_indices(part).tolist())
        drawn = set(sim.shopper.tolist())
        for _ in range(5):
            sim.step(torch.arange(5).expand(64, -1).clone())
            drawn |= set(sim.shopper.tolist())
        assert drawn <= allowed
        assert len(drawn) > 0.5 * len(allowed)  # 384 draws from 40 or 160 shoppers


# ----------------------------------------------------------------------------- slate checks
def test_invalid_slates_raise_naming_the_row(synthetic):
    config = ShopperConfig(slate_size=3, num_candidates=6)
    sim = simulator(synthetic, config, batch=4, seed=0)
    good = torch.tensor([[0, 1, 2], [3, 4, 5], [5, 0, 1], [2, 4, 0]])
    state = (sim.patience.clone(), sim.steps.clone(), [p.generator.get_state() for p in sim.parts])

    repeated = good.clone()
    repeated[2] = torch.tensor([1, 4, 1])
    with pytest.raises(SlateError, match=r"shopper 2 repeats an item: \[1, 4, 1\]"):
        sim.step(repeated)

    too_large = good.clone()
    too_large[1, 2] = 6
    with pytest.raises(SlateError, match=r"shopper 1 is out of range \[0, 6\)"):
        sim.step(too_large)

    negative = good.clone()
    negative[3, 0] = -1
    with pytest.raises(SlateError, match=r"shopper 3 is out of range"):
        sim.step(negative)

    with pytest.raises(SlateError, match=r"shape \(4, 3\), got \(4, 2\)"):
        sim.step(good[:, :2])
    with pytest.raises(SlateError, match=r"shape \(4, 3\), got \(3, 3\)"):
        sim.step(good[:3])
    with pytest.raises(SlateError, match=r"shape \(4, 3\), got \(12,\)"):
        sim.step(good.flatten())
    with pytest.raises(SlateError, match=r"dtype torch\.float32"):
        sim.step(good.float())
    with pytest.raises(SlateError, match=r"dtype torch\.bool"):
        sim.step(torch.ones(4, 3, dtype=torch.bool))

    # A rejected slate changes nothing.
    assert torch.equal(sim.patience, state[0])
    assert torch.equal(sim.steps, state[1])
    assert all(torch.equal(p.generator.get_state(), s) for p, s in zip(sim.parts, state[2], strict=True))
    sim.step(good.int())  # other integer dtypes are fine


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_any_valid_slate_is_accepted_and_any_repeat_rejected(synthetic, data):
    k = data.draw(st.integers(2, 5))
    n = data.draw(st.integers(k, 8))
    batch = data.draw(st.integers(1, 4))
    sim = simulator(synthetic, ShopperConfig(slate_size=k, num_candidates=n), batch=batch)
    rows = [data.draw(st.permutations(range(n)))[:k] for _ in range(batch)]
    sim.step(torch.tensor(rows))
    bad_row = data.draw(st.integers(0, batch - 1))
    i, j = data.draw(st.lists(st.integers(0, k - 1), min_size=2, max_size=2, unique=True))
    rows[bad_row][j] = rows[bad_row][i]
    with pytest.raises(SlateError, match=f"shopper {bad_row} repeats"):
        sim.step(torch.tensor(rows))


def test_unchecked_step_skips_validation(synthetic):
    sim = simulator(synthetic, ShopperConfig(slate_size=2, num_candidates=4), batch=2)
    sim.step(torch.tensor([[0, 0], [1, 1]]), check=False)  # the caller vouches for it


# ----------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"slate_size": 21}, "slate_size"),
        ({"slate_size": 0}, "slate_size"),
        ({"num_candidates": 3}, "slate_size"),
        ({"history_length": 0}, "history_length"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_steps": 2.0}, "max_steps"),
        ({"patience": 0.0}, "patience"),
        ({"patience": -1.0}, "patience"),
        ({"step_cost": -1.0}, "step_cost"),
        ({"step_cost": 0.0}, "step_cost"),
        ({"no_click_cost": -0.5}, "no_click_cost"),
        ({"purchase_refund": -1.0}, "purchase_refund"),
        ({"feature_noise": -0.1}, "feature_noise"),
        ({"click_reward": math.nan}, "click_reward"),
        ({"purchase_reward": math.inf}, "purchase_reward"),
        ({"purchase_bias": -math.inf}, "purchase_bias"),
        ({"item_features": "latent"}, "item_features"),
        ({"candidate_sampling": "random"}, "candidate_sampling"),
    ],
)
def test_shopper_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ConfigError, match=f"ShopperConfig.*{field}"):
        ShopperConfig(**kwargs)


def test_shopper_config_round_trip():
    config = DYNAMICS[1]
    assert ShopperConfig(**config.to_dict()) == config


def test_more_candidates_than_items_is_a_config_error(synthetic):
    config = ShopperConfig(num_candidates=synthetic.num_items + 1)
    with pytest.raises(ConfigError, match="num_candidates"):
        ShopperSimulator(synthetic, config, 2, device="cpu", seed=0).reset()


def test_all_items_as_candidates(synthetic):
    config = ShopperConfig(num_candidates=synthetic.num_items)
    sim = simulator(synthetic, config, batch=3)
    assert torch.equal(sim.candidates.sort(1).values, torch.arange(40).expand(3, -1))


# ----------------------------------------------------------------------------- candidates
def candidate_frequencies(world, sampling: str, batch: int = 2000) -> torch.Tensor:
    config = ShopperConfig(num_candidates=10, candidate_sampling=sampling)
    sim = simulator(world, config, batch=batch, seed=9)
    return torch.bincount(sim.candidates.flatten(), minlength=world.num_items) / batch


def test_popularity_sampling_prefers_popular_items(synthetic):
    uniform = candidate_frequencies(synthetic, "uniform")
    popular = candidate_frequencies(synthetic, "popularity")
    order = synthetic.item_popularity.argsort(descending=True)
    top, bottom = order[:10], order[-10:]
    # Uniform: every item in about N / M = 1/4 of the rows (standard error about 0.01).
    assert torch.allclose(uniform, torch.full_like(uniform, 0.25), atol=0.05)
    assert float(popular[top].mean()) > float(popular[bottom].mean()) + 0.3
    assert float(popular[top].mean()) > float(uniform[top].mean()) + 0.2
    # Frequencies rise with popularity: rank correlation clearly positive.
    rank_pop = synthetic.item_popularity.argsort().argsort().double()
    rank_freq = popular.argsort().argsort().double()
    correlation = torch.corrcoef(torch.stack([rank_pop, rank_freq]))[0, 1]
    assert float(correlation) > 0.8


# ----------------------------------------------------------------------------- device
def test_resolve_device_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda:0")


def test_resolve_device_with_cuda_reported(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("bogus", ["graphics", "cdua", "", "auto ", "cuda:x"])
def test_resolve_device_rejects_unknown_strings(bogus):
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device(bogus)


def test_resolve_device_passes_torch_devices_through():
    device = torch.device("cpu")
    assert resolve_device(device) is device


def test_simulator_asks_for_missing_cuda(synthetic, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA"):
        ShopperSimulator(synthetic, device="cuda")


@pytest.mark.gpu
def test_simulator_on_cuda_matches_invariants(synthetic):
    sim = ShopperSimulator(synthetic, DYNAMICS[1], 64, device="cuda", seed=0)
    sim.reset()
    assert sim.candidates.device.type == "cuda"
    rng = np.random.default_rng(0)
    for _ in range(20):
        outcome = sim.step(random_slates(rng, 64, 3, 6).cuda())
        assert bool((outcome.clicks.sum(1) <= 1).all())
        assert bool((outcome.purchases <= outcome.clicks).all())
