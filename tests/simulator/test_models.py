"""Preference models (MF, BPR-MF, GMF, MLP, NeuMF): fitting on a small low-rank data
set whose truth is known, exact rebuilding and resuming, seeds, configs, NeuMF's
pretrained start, sampled ranking, and the fit benchmark."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from shopgym.experiments.fit_benchmark import METRICS, FitBenchmarkConfig, run_fit_benchmark
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.interactions import Interactions
from shopgym.simulator.models import (
    GMF,
    MLP,
    MODEL_DEFAULTS,
    FitConfig,
    NeuMF,
    build_model,
    fit_model,
    training,
)
from shopgym.simulator.models.base import PreferenceModel
from shopgym.simulator.ranking import full_ranking_metrics, popularity_scorer, ranking_report, sampled_ranks
from shopgym.simulator.splits import Split, leave_last_out

NUM_USERS, NUM_ITEMS, TRUE_RANK, EVENTS_PER_USER = 120, 80, 4, 12
ALL_MODELS = ("mf", "bpr", "gmf", "mlp", "neumf")
IMPLICIT_MODELS = ("bpr", "gmf", "mlp", "neumf")
# Small models and many small batches: the defaults are sized for MovieLens, where an
# epoch has 48 batches; here one has 10.
FAST = {
    "mf": FitConfig(model="mf", dim=8, epochs=25, batch_size=128, lr=0.02, weight_decay=0.01, patience=100),
    "bpr": FitConfig(model="bpr", dim=8, epochs=25, batch_size=128, lr=0.02, weight_decay=1e-3, patience=100),
    "gmf": FitConfig(model="gmf", dim=8, epochs=25, batch_size=128, lr=0.02, weight_decay=0.0, patience=100),
    "mlp": FitConfig(model="mlp", layers=(32, 16, 8), epochs=40, batch_size=128, lr=0.02, patience=100),
    "neumf": FitConfig(
        # lr and epochs differ from the GMF and MLP defaults, which its pre-training must use.
        model="neumf",
        dim=8,
        layers=(32, 16, 8),
        epochs=10,
        batch_size=128,
        lr=0.004,
        patience=100,
    ),
}


def low_rank_split(seed: int = 0, values: str = "ones") -> tuple[Split, np.ndarray]:
    """Each user's events are their top items under a true rank-4 score, logged in a
    random time order (so the held-out events are random top items).

    Returns:
        the leave-last-out split, and (U, M) the true scores in the split's index order.
    """
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(NUM_USERS, TRUE_RANK)) @ rng.normal(size=(TRUE_RANK, NUM_ITEMS))
    top = np.argsort(-truth, axis=1)[:, :EVENTS_PER_USER]
    users = np.repeat(np.arange(NUM_USERS), EVENTS_PER_USER)
    items = top.ravel()
    frame = pd.DataFrame(
        {
            "user": users,
            "item": items,
            # "ratings": the true score, so explicit MF has something to regress.
            "value": truth[users, items] if values == "truth" else 1.0,
            "time": np.concatenate([rng.permutation(EVENTS_PER_USER) for _ in range(NUM_USERS)]),
        }
    )
    split = leave_last_out(Interactions(frame=frame, source="low-rank", sha256="-"))
    return split, truth[np.ix_(split.user_ids, split.item_ids)]


@pytest.fixture(scope="module")
def low_rank() -> tuple[Split, np.ndarray]:
    return low_rank_split(values="truth")


@pytest.fixture(scope="module")
def fitted(low_rank):
    """Each model fitted once with its FAST config (on first use)."""
    split, _ = low_rank
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = fit_model(split, FAST[name], progress=False)
        return cache[name]

    return get


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


# ----------------------------------------------------------------------------- fitting
@pytest.mark.parametrize("name", IMPLICIT_MODELS)
def test_model_beats_popularity_on_held_out_events(name, low_rank, fitted):
    split, _ = low_rank
    fit = fitted(name)
    model = ranking_report(fit.model.score_all, split)
    popularity = ranking_report(popularity_scorer(split.train, split.num_items), split)
    # Popularity reaches about 0.15 here; the models about 0.6 to 0.7.
    assert model["ndcg@10"] > popularity["ndcg@10"] + 0.25, (model, popularity)
    assert model["recall@20"] > popularity["recall@20"]
    assert fit.best_epoch == 1 + np.argmax([h["ndcg@10"] for h in fit.history])
    assert not fit.model.training


def test_mf_fits_the_explicit_ratings(low_rank, fitted):
    split, truth = low_rank
    fit = fitted("mf")
    with torch.no_grad():
        predicted = fit.model(
            torch.as_tensor(split.train[:, 0]), torch.as_tensor(split.train[:, 1:])
        ).squeeze(1)
    error = predicted.double().numpy() - split.train_values
    # Far below predicting the mean rating (the ratings' standard deviation).
    assert np.sqrt(np.mean(error**2)) < 0.5 * split.train_values.std()
    # And it generalises: held-out ratings are predicted in the right order.
    held = split.test
    with torch.no_grad():
        held_predicted = fit.model(torch.as_tensor(held[:, 0]), torch.as_tensor(held[:, 1:])).squeeze(1)
    assert np.corrcoef(held_predicted.numpy(), truth[held[:, 0], held[:, 1]])[0, 1] > 0.7


def test_neumf_pretraining_fits_gmf_and_mlp_first(fitted):
    fit = fitted("neumf")
    assert fit.config.pretrain  # the NeuMF default
    assert set(fit.pretrained) == {"gmf", "mlp"}
    assert fit.pretrained["gmf"].config.dim == fit.config.dim
    assert fit.pretrained["mlp"].config.layers == fit.config.layers
    # The pretrained parts use their own defaults for the optimiser and the epoch budget.
    for part in ("gmf", "mlp"):
        assert fit.pretrained[part].config.lr == MODEL_DEFAULTS[part]["lr"] != fit.config.lr
        assert fit.pretrained[part].config.epochs == MODEL_DEFAULTS[part]["epochs"] != fit.config.epochs


# ----------------------------------------------------------------------------- rebuilding, seeds, resuming
@pytest.mark.parametrize("name", ALL_MODELS)
def test_a_rebuilt_model_scores_identically(name, low_rank, fitted):
    split, _ = low_rank
    model = fitted(name).model
    rebuilt = build_model(name, split.num_users, split.num_items, model.hyperparameters(), seed=123)
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    users = torch.arange(split.num_users)
    with torch.no_grad():
        assert torch.equal(rebuilt.score_all(users), model.score_all(users))
    assert type(rebuilt) is type(model)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_score_all_matches_forward_on_every_pair(name, low_rank, fitted):
    # GMF, NeuMF and MF score all items with matrix products instead of forward().
    split, _ = low_rank
    model = fitted(name).model
    users = torch.tensor([5, 0, 77])
    with torch.no_grad():
        everything = model.score_all(users)
        assert everything.shape == (3, split.num_items)
        pairs = model(users, torch.arange(split.num_items).expand(3, -1))
        assert torch.allclose(everything, pairs, atol=1e-6)
        for chunked in (PreferenceModel.score_all(model, users, 7), model.score_all(users, 7)):
            assert torch.allclose(chunked, everything, atol=1e-6)


@pytest.mark.parametrize("name", IMPLICIT_MODELS)
def test_same_seed_same_parameters_different_seed_different(name):
    split, _ = low_rank_split(seed=1)
    config = replace(FAST[name], epochs=2, seed=5)
    first = parameters(fit_model(split, config, progress=False).model)
    second = parameters(fit_model(split, config, progress=False).model)
    other = parameters(fit_model(split, replace(config, seed=6), progress=False).model)
    assert first.keys() == second.keys() == other.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    embeddings = [key for key in first if key.endswith("item_embedding")]
    assert embeddings
    for key in embeddings:
        assert not torch.allclose(first[key], other[key]), key


@pytest.mark.parametrize("name", ["bpr", "mlp", "neumf"])
def test_an_interrupted_fit_resumes_exactly(name, tmp_path):
    split, _ = low_rank_split(seed=2)
    config = replace(FAST[name], epochs=6)
    checkpoint = tmp_path / "fit.pt"
    # Interrupted: a fit that stops after 2 epochs, continued with the full budget.
    fit_model(split, replace(config, epochs=2), progress=False, checkpoint=checkpoint)
    resumed = fit_model(split, config, progress=False, checkpoint=checkpoint)
    uninterrupted = fit_model(split, config, progress=False)
    assert [h["epoch"] for h in resumed.history] == list(range(1, 7))
    assert resumed.history == uninterrupted.history
    assert resumed.best_epoch == uninterrupted.best_epoch
    expected = parameters(uninterrupted.model)
    for key, value in parameters(resumed.model).items():
        assert torch.equal(value, expected[key]), key


def test_resuming_on_other_data_is_refused(tmp_path):
    checkpoint = tmp_path / "fit.pt"
    first = low_rank_split(seed=2)[0]
    fit_model(first, replace(FAST["bpr"], epochs=1), progress=False, checkpoint=checkpoint)
    with pytest.raises(ConfigError, match="other data"):
        fit_model(low_rank_split(seed=3)[0], FAST["bpr"], progress=False, checkpoint=checkpoint)


def test_a_diverged_fit_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(training, "_train_epoch", lambda *args: math.nan)
    with pytest.raises(ConfigError, match=r"diverged at epoch 1 .*lower --lr"):
        fit_model(low_rank_split()[0], FAST["bpr"], progress=False)


def test_negatives_are_items_the_user_has_no_training_event_with():
    # User 0 consumed items 0..19, user 1 items 10..29: two thirds of the first draws clash.
    num_items = 30
    train = np.array([(user, item) for user in (0, 1) for item in range(10 * user, 10 * user + 20)])
    keys = training._pair_keys(torch.as_tensor(train), num_items).unique()
    generator = torch.Generator().manual_seed(0)
    users = np.repeat([0, 1], 50)
    negatives = training._sample_negatives(users, keys, num_items, FAST["bpr"].resolved(), generator)
    assert negatives.shape == (100, MODEL_DEFAULTS["bpr"]["negatives"])
    assert set(negatives[:50].flatten().tolist()) == set(range(20, 30))
    assert set(negatives[50:].flatten().tolist()) == set(range(10))


def test_resuming_with_other_settings_is_refused(tmp_path):
    split, _ = low_rank_split(seed=2)
    checkpoint = tmp_path / "fit.pt"
    fit_model(split, replace(FAST["bpr"], epochs=1), progress=False, checkpoint=checkpoint)
    with pytest.raises(ConfigError, match="other settings"):
        fit_model(split, replace(FAST["bpr"], epochs=2, lr=0.5), progress=False, checkpoint=checkpoint)


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", ALL_MODELS)
def test_fit_config_fills_the_model_defaults(name):
    resolved = FitConfig(model=name, lr=0.123).resolved()
    assert resolved.lr == 0.123
    for key, value in MODEL_DEFAULTS[name].items():
        if key != "lr":
            assert getattr(resolved, key) == value, key
    assert resolved.resolved() == resolved


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("model", "svd", "--model"),
        ("batch_size", 0, "--batch-size"),
        ("negatives", -1, "--negatives"),
        ("lr", math.nan, "--lr"),
        ("weight_decay", -1.0, "--weight-decay"),
        ("layers", (15, 8), "--layers"),
    ],
)
def test_fit_config_rejects_bad_values_naming_the_flag(field, value, flag):
    with pytest.raises(ConfigError, match=flag):
        FitConfig(**{"model": "neumf", field: value}).resolved()


# ----------------------------------------------------------------------------- NeuMF's start
@pytest.mark.parametrize("alpha", [0.5, 0.3])
def test_neumf_from_pretrained_is_the_alpha_weighted_sum(alpha):
    gmf = GMF(10, 12, 4, generator=torch.Generator().manual_seed(0))
    mlp = MLP(10, 12, (8, 6, 4), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # non-zero output biases, so their weighting is checked too
        gmf.output.bias.fill_(0.7)
        mlp.output.bias.fill_(-0.4)
    neumf = NeuMF.from_pretrained(gmf, mlp, alpha)
    users = torch.tensor([0, 3, 9])
    items = torch.tensor([[0, 5], [11, 2], [7, 7]])
    with torch.no_grad():
        expected = alpha * gmf(users, items) + (1 - alpha) * mlp(users, items)
        assert torch.allclose(neumf(users, items), expected, atol=1e-6)
        all_expected = alpha * gmf.score_all(users) + (1 - alpha) * mlp.score_all(users)
        assert torch.allclose(neumf.score_all(users), all_expected, atol=1e-6)
    assert neumf.hyperparameters() == {"dim": 4, "layers": [8, 6, 4]}


# ----------------------------------------------------------------------------- ranking
def table_scorer(table: torch.Tensor):
    return lambda users: table[users]


def test_sampled_ranks_hand_example():
    # 6 items; user 0 interacted with 0, 1 and its held-out 2; user 1 with 4, 5 and its
    # held-out 3. Three negatives leave each user exactly their three other items.
    scores = torch.tensor([[9.0, 9.0, 0.5, 0.9, 0.1, 0.5], [0.0, 0.2, 0.3, 0.8, 9.0, 9.0]])
    held_out = np.array([[0, 2], [1, 3]])
    interacted = np.array([[0, 0], [0, 1], [0, 2], [1, 4], [1, 5], [1, 3]])
    ranks = sampled_ranks(table_scorer(scores), held_out, interacted, num_items=6, num_negatives=3)
    # User 0: item 3 scores higher and item 5 ties (ties count against): rank 2. User 1: rank 0.
    assert ranks.tolist() == [2, 0]
    with pytest.raises(ValueError, match="fewer than 4 items"):
        sampled_ranks(table_scorer(scores), held_out, interacted, num_items=6, num_negatives=4)


def test_ranking_report_hand_example():
    # 30 items; each user consumed 16 in training and 1 in validation, so 13 remain for
    # the test ranking (the held-out item and 12 others), and the sampled ranking draws
    # min(100, 30 - 18) = 12 negatives: exactly those 12 others.
    num_items = 30
    train = np.array([[user, item] for user in (0, 1) for item in range(16)])
    split = Split(
        user_ids=np.arange(2),
        item_ids=np.arange(num_items),
        train=train,
        valid=np.array([[0, 16], [1, 16]]),
        test=np.array([[0, 17], [1, 17]]),
        train_values=np.ones(len(train)),
    )
    scores = torch.zeros(2, num_items)
    scores[:, :17] = 100.0  # consumed items score high, but they are excluded
    scores[0, 18:] = torch.arange(12) / 100.0  # user 0: the held-out item ties with item 18 ...
    scores[0, 17] = 0.0  # ... at 0, below the 11 others: full rank 11 or 12 by the fixed tie order
    scores[1, 17] = 1.0  # user 1: above all 12 others: rank 0
    report = ranking_report(table_scorer(scores), split)
    order = torch.randperm(num_items, generator=torch.Generator().manual_seed(0))
    user0_rank = 11 + int(order[18] < order[17])
    assert report["sampled_negatives"] == 12
    assert report["hr@10"] == pytest.approx(0.5)
    assert report["ndcg@10"] == pytest.approx(0.5)
    assert report["recall@20"] == pytest.approx(1.0)
    assert report["sampled_hr@10"] == pytest.approx(0.5)  # sampled: user 0 at rank 12 (tie against)
    assert report["sampled_ndcg@10"] == pytest.approx(0.5)
    full = full_ranking_metrics(
        table_scorer(scores), split.test, split.consumed_before_test(), num_items, k=13
    )
    assert full["ndcg@13"] == pytest.approx((1 + 1 / math.log2(user0_rank + 2)) / 2)
    # Repeated events do not count as more consumed items: the same 12 negatives remain.
    repeated = replace(split, train=np.concatenate([train, train]), train_values=np.ones(2 * len(train)))
    assert ranking_report(table_scorer(scores), repeated) == report


def test_nan_scores_are_refused_not_ranked_first():
    split, _ = low_rank_split()
    nan_scorer = table_scorer(torch.full((split.num_users, split.num_items), math.nan))
    with pytest.raises(ValueError, match="NaN"):
        full_ranking_metrics(nan_scorer, split.test, split.consumed_before_test(), split.num_items)
    with pytest.raises(ValueError, match="NaN"):
        sampled_ranks(nan_scorer, split.test, split.consumed_before_test(), split.num_items, 10)


# ----------------------------------------------------------------------------- the fit benchmark
def test_fit_benchmark_on_a_small_split(capsys):
    split, _ = low_rank_split(seed=3)
    config = FitBenchmarkConfig(models=("bpr", "gmf"), seeds=2, library=False)
    table = run_fit_benchmark(config, split)
    assert table["model"].tolist() == ["popularity", "bpr", "gmf"]
    assert table["seeds"].tolist() == [1, 2, 2]
    for metric in (*METRICS, "ndcg@10_vs_popularity"):
        assert (table[f"{metric}_low"] <= table[metric] + 1e-12).all(), metric
        assert (table[metric] <= table[f"{metric}_high"] + 1e-12).all(), metric
    popularity, bpr = table.iloc[0], table.iloc[1]
    assert popularity["ndcg@10_vs_popularity"] == 0.0
    assert math.isnan(popularity["fit_s"])
    assert bpr["fit_s"] > 0 and bpr["epochs"] >= bpr["best_epoch"] >= 1
    assert bpr["ndcg@10_vs_popularity"] == pytest.approx(bpr["ndcg@10"] - popularity["ndcg@10"])
    printed = capsys.readouterr().out
    assert "NDCG@10 vs pop" in printed and "gmf" in printed and "implicit" not in printed


@pytest.mark.parametrize(
    ("arguments", "flag"),
    [({"models": ("svd",)}, "--models"), ({"models": ()}, "--models"), ({"seeds": 0}, "--seeds")],
)
def test_fit_benchmark_config_rejects_bad_values(arguments, flag):
    with pytest.raises(ConfigError, match=flag):
        FitBenchmarkConfig(**arguments)


def test_fit_benchmark_with_implicit_on_a_small_split(capsys):
    bpr = pytest.importorskip(
        "implicit.cpu.bpr", reason="the library reference needs `pip install 'shopgym[bench]'`"
    )
    from shopgym.experiments.fit_benchmark import fit_implicit

    split, _ = low_rank_split(seed=3)
    table = run_fit_benchmark(FitBenchmarkConfig(models=("bpr",), seeds=1), split)
    assert table["model"].tolist() == ["popularity", "bpr", "implicit-bpr", "implicit-als"]
    assert table["fit_s"].iloc[2:].gt(0).all()
    assert "implicit-als" in capsys.readouterr().out
    # BPR's factors carry the item bias in their last column, against a user column of ones.
    scorer, _ = fit_implicit("implicit-bpr", split, seed=0)
    model = bpr.BayesianPersonalizedRanking(factors=4, iterations=1, random_state=0, num_threads=1)
    model.fit(split_matrix(split), show_progress=False)
    assert model.item_factors.shape == (split.num_items, 5)
    assert np.all(model.user_factors[:, -1] == 1.0)
    assert scorer(torch.arange(3)).shape == (3, split.num_items)


def split_matrix(split: Split):
    import scipy.sparse

    ones = np.ones(len(split.train), dtype=np.float32)
    return scipy.sparse.csr_matrix(
        (ones, (split.train[:, 0], split.train[:, 1])), (split.num_users, split.num_items)
    )
