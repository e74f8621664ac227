"""BPR matrix factorisation (``fit_model`` with ``FitConfig(model="bpr")``) on a small
low-rank data set whose truth is known."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from shopgym.simulator.errors import ConfigError
from shopgym.simulator.interactions import Interactions
from shopgym.simulator.models import (
    MODEL_DEFAULTS,
    FitConfig,
    MatrixFactorization,
    PreferenceModel,
    fit_model,
)
from shopgym.simulator.ranking import full_ranking_metrics, popularity_scorer
from shopgym.simulator.splits import Split, leave_last_out

NUM_USERS, NUM_ITEMS, TRUE_DIM, POSITIVES = 100, 60, 4, 12
FAST = FitConfig(model="bpr", dim=4, epochs=30, batch_size=256, lr=0.05, weight_decay=1e-3, patience=100)


def low_rank_data(seed: int = 0):
    """Each user's positives are their top items under a true rank-4 score, logged in a
    random time order (so the held-out events are random positives)."""
    rng = np.random.default_rng(seed)
    user_vectors = rng.normal(size=(NUM_USERS, TRUE_DIM))
    item_vectors = rng.normal(size=(NUM_ITEMS, TRUE_DIM))
    true_scores = user_vectors @ item_vectors.T
    top = np.argsort(-true_scores, axis=1)[:, :POSITIVES]
    users = np.repeat(np.arange(NUM_USERS), POSITIVES)
    frame = pd.DataFrame(
        {
            "user": users,
            "item": top.ravel(),
            "value": 1.0,
            "time": rng.permutation(len(users)),
        }
    )
    return Interactions(frame, source="low-rank", sha256="-"), true_scores


def spearman_per_row(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    rank_a = a.argsort(1).argsort(1).double()
    rank_b = b.argsort(1).argsort(1).double()
    rank_a -= rank_a.mean(1, keepdim=True)
    rank_b -= rank_b.mean(1, keepdim=True)
    return (rank_a * rank_b).sum(1) / (rank_a.norm(dim=1) * rank_b.norm(dim=1))


@pytest.fixture(scope="module")
def low_rank():
    table, true_scores = low_rank_data()
    split = leave_last_out(table)
    return split, true_scores, fit_model(split, FAST, progress=False)


def test_split_of_the_low_rank_data(low_rank):
    split, _, _ = low_rank
    assert split.num_users == NUM_USERS
    assert len(split.test) == len(split.valid) == NUM_USERS
    assert len(split.train) == NUM_USERS * (POSITIVES - 2)


def test_bpr_beats_popularity_on_held_out_events(low_rank):
    split, _, fit = low_rank
    seen = split.consumed_before_test()
    bpr = full_ranking_metrics(fit.model.score_all, split.test, seen, split.num_items)
    popularity = full_ranking_metrics(
        popularity_scorer(split.train, split.num_items), split.test, seen, split.num_items
    )
    random_hr = 10 / (split.num_items - (POSITIVES - 1))
    assert bpr["ndcg@10"] > popularity["ndcg@10"] + 0.2
    assert bpr["hr@10"] > 2 * random_hr


def test_bpr_recovers_the_true_ranking(low_rank):
    split, true_scores, fit = low_rank
    with torch.no_grad():
        fitted = fit.model.score_all(torch.arange(split.num_users))
    truth = torch.as_tensor(true_scores[np.ix_(split.user_ids, split.item_ids)])
    rho = spearman_per_row(fitted, truth)
    # Reaches about 0.75 on average; random scores would give about 0.
    assert rho.mean() > 0.6
    assert (rho > 0).float().mean() > 0.95


def test_best_epoch_parameters_are_kept(low_rank):
    split, _, fit = low_rank
    assert len(fit.history) == FAST.epochs  # patience is larger than the epochs
    assert [h["epoch"] for h in fit.history] == list(range(1, FAST.epochs + 1))
    best = max(fit.history, key=lambda h: h["ndcg@10"])
    assert fit.best_epoch == best["epoch"]
    again = full_ranking_metrics(fit.model.score_all, split.valid, split.train, split.num_items)
    assert again["ndcg@10"] == pytest.approx(best["ndcg@10"], abs=1e-6)
    assert fit.history[0]["loss"] > fit.history[-1]["loss"]
    assert fit.wall_time_s > 0
    assert fit.config == FAST.resolved()
    assert fit.pretrained == {}
    assert isinstance(fit.model, MatrixFactorization)
    assert not fit.model.training


@pytest.mark.parametrize("patience", [1, 2])
def test_early_stopping_after_patience_epochs(patience):
    table, _ = low_rank_data(3)
    split = leave_last_out(table)
    config = replace(FAST, epochs=40, patience=patience)
    fit = fit_model(split, config, progress=False)
    stopped = len(fit.history)
    ndcg = [h["ndcg@10"] for h in fit.history]
    # The best epoch is the first one reaching the maximum validation NDCG@10 ...
    assert fit.best_epoch == 1 + ndcg.index(max(ndcg))
    # ... and training stopped exactly `patience` epochs after it (validation NDCG
    # is noisy on 100 users, so 40 epochs of strict improvement do not happen).
    assert stopped < config.epochs
    assert stopped == fit.best_epoch + patience


def parameters(fit) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in fit.model.named_parameters()}


def test_same_seed_same_parameters_different_seed_different():
    table, _ = low_rank_data(2)
    split = leave_last_out(table)
    config = replace(FAST, epochs=3, weight_decay=None, seed=5)
    first = parameters(fit_model(split, config, progress=False))
    second = parameters(fit_model(split, config, progress=False))
    other = parameters(fit_model(split, replace(config, seed=6), progress=False))
    assert (
        first.keys()
        == second.keys()
        == {"user_embedding", "item_embedding", "user_bias", "item_bias", "global_bias"}
    )
    for name in first:
        assert torch.equal(first[name], second[name])
    assert not torch.allclose(first["user_embedding"], other["user_embedding"])
    assert not torch.allclose(first["item_embedding"], other["item_embedding"])


def test_matrix_factorization_scores():
    model = MatrixFactorization(3, 4, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.item_bias.copy_(torch.tensor([0.0, 1.0, -1.0, 2.0]))
        model.user_bias.copy_(torch.tensor([0.5, -0.25, 1.5]))
        model.global_bias.fill_(0.75)
        users = torch.tensor([2, 0])
        everything = model.score_all(users)
        expected = (
            model.user_embedding[users] @ model.item_embedding.T
            + model.item_bias
            + model.user_bias[users][:, None]
            + 0.75
        )
        assert torch.allclose(everything, expected)
        # The generic chunked score_all of every preference model gives the same.
        assert torch.allclose(PreferenceModel.score_all(model, users, pairs_per_pass=3), everything)
        grid = torch.tensor([[0, 1, 2], [3, 2, 1]])
        assert torch.allclose(model(users, grid), everything.gather(1, grid))
        pairs = model(users, torch.tensor([[1], [3]]))
        assert torch.allclose(pairs[:, 0], everything[[0, 1], [1, 3]])
    assert model.hyperparameters() == {"dim": 2}
    representation = model.item_representation()
    assert representation.shape == (4, 3)
    assert torch.equal(representation[:, -1], model.item_bias.detach())


def test_fit_config_resolves_the_model_defaults():
    resolved = FitConfig(model="bpr", dim=8).resolved()
    assert resolved.dim == 8
    for name, value in MODEL_DEFAULTS["bpr"].items():
        if name != "dim":
            assert getattr(resolved, name) == value, name
    assert resolved.resolved() == resolved


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dim", 0, "dim"),
        ("epochs", 0, "epochs"),
        ("batch_size", -1, "batch-size"),
        ("patience", 0, "patience"),
        ("negatives", 0, "negatives"),
        ("lr", 0.0, "lr"),
        ("lr", math.nan, "lr"),
        ("weight_decay", -0.1, "weight-decay"),
        ("layers", (63, 8), "layers"),
        ("layers", (64,), "layers"),
        ("model", "svd", "model"),
    ],
)
def test_fit_config_rejects_bad_values(field, value, message):
    config = FitConfig(**{field: value})  # validated when resolved, not when built
    with pytest.raises(ConfigError, match=message):
        config.resolved()


def test_fit_model_validates_its_config(low_rank):
    split, _, _ = low_rank
    with pytest.raises(ConfigError, match="dim"):
        fit_model(split, replace(FAST, dim=0), progress=False)


def test_consumed_before_test_is_train_then_valid():
    split = Split(
        user_ids=np.arange(2),
        item_ids=np.arange(6),
        train=np.array([[0, 1], [1, 2]]),
        valid=np.array([[0, 3]]),
        test=np.array([[0, 4]]),
    )
    assert split.consumed_before_test().tolist() == [[0, 1], [1, 2], [0, 3]]


def test_fit_without_validation_events_is_a_clear_error():
    from shopgym.simulator.errors import ShopgymError

    frame = pd.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 3], "value": 1.0, "time": 0})
    split = leave_last_out(Interactions(frame, source="tiny", sha256="-"))
    assert len(split.valid) == 0
    with pytest.raises(ShopgymError):
        fit_model(split, FitConfig(model="bpr", dim=2, epochs=1), progress=False)


_FIT_AND_HASH = """
import hashlib, sys
import torch
from shopgym.simulator.interactions import load_ratings
from shopgym.simulator.models import FitConfig, fit_model
from shopgym.simulator.splits import leave_last_out
if len(sys.argv) > 1:
    torch.set_num_threads(int(sys.argv[1]))
fit = fit_model(leave_last_out(load_ratings()), FitConfig(model="bpr", epochs=1), progress=False)
digest = hashlib.sha256()
for name, value in sorted(fit.model.state_dict().items()):
    digest.update(name.encode() + value.numpy().tobytes())
print(digest.hexdigest())
"""


def test_fit_is_bit_reproducible_across_processes():
    # Thread-dependent gradient accumulation once made fits differ in the last bits
    # between processes (and so the World's hash); each process here starts afresh.
    # The last runs on one thread: the parameters must not depend on the thread count.
    outputs = [
        subprocess.run(
            [sys.executable, "-c", _FIT_AND_HASH, *threads], capture_output=True, text=True, check=True
        ).stdout
        for threads in ([], [], ["1"])
    ]
    assert len(set(outputs)) == 1 and len(outputs[0].strip()) == 64
