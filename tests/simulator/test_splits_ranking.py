"""Leave-last-out splits by time, and full-ranking HR@k / NDCG@k."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from shopgym.simulator.errors import DataError
from shopgym.simulator.interactions import Interactions
from shopgym.simulator.ranking import full_ranking_metrics, popularity_scorer
from shopgym.simulator.splits import leave_last_out


def interactions(users, items, times) -> Interactions:
    frame = pd.DataFrame(
        {
            "user": np.asarray(users, dtype=np.int64),
            "item": np.asarray(items, dtype=np.int64),
            "value": np.ones(len(users)),
            "time": np.asarray(times, dtype=np.int64),
        }
    )
    return Interactions(frame=frame, source="test-table", sha256="-")


def original_pairs(split, pairs: np.ndarray) -> list[tuple[int, int]]:
    return [(int(split.user_ids[u]), int(split.item_ids[i])) for u, i in pairs]


# ----------------------------------------------------------------------------- splits
def test_leave_last_out_hand_example():
    # user 10: five events in shuffled time order; user 20: two events (train only);
    # user 30: three events, the last two at the same time (file order decides).
    table = interactions(
        users=[10, 20, 10, 30, 10, 30, 10, 30, 20, 10],
        items=[101, 201, 102, 301, 103, 302, 104, 303, 202, 105],
        times=[50, 1, 10, 5, 40, 9, 30, 9, 2, 20],
    )
    split = leave_last_out(table)
    assert split.user_ids.tolist() == [10, 20, 30]
    assert split.item_ids.tolist() == sorted(set(table.frame["item"]))
    assert original_pairs(split, split.test) == [(10, 101), (30, 303)]
    assert original_pairs(split, split.valid) == [(10, 103), (30, 302)]
    assert sorted(original_pairs(split, split.train)) == [
        (10, 102),
        (10, 104),
        (10, 105),
        (20, 201),
        (20, 202),
        (30, 301),
    ]
    assert split.describe()["train_events"] == 6
    assert split.describe()["test_events"] == 2
    assert split.num_users == 3
    assert split.num_items == 10


def reference_split(frame: pd.DataFrame):
    """Per user, order events by (time, file order); last -> test, second last -> valid."""
    train, valid, test = [], {}, {}
    for user, events in frame.groupby("user", sort=True):
        ordered = events.sort_values("time", kind="stable")
        pairs = list(zip(ordered["user"], ordered["item"], strict=True))
        if len(pairs) >= 3:
            test[user], valid[user] = pairs[-1], pairs[-2]
            pairs = pairs[:-2]
        train.extend(pairs)
    return train, valid, test


@pytest.mark.parametrize("seed", range(5))
def test_leave_last_out_matches_reference_on_random_tables(seed):
    rng = np.random.default_rng(seed)
    n = 400
    # Few distinct times, so many ties; some users with 1 or 2 events.
    table = interactions(
        users=rng.integers(0, 60, n) * 7 + 3,
        items=rng.integers(0, 80, n) * 5 - 11,
        times=rng.integers(0, 6, n),
    )
    split = leave_last_out(table)
    train, valid, test = reference_split(table.frame)

    assert Counter(original_pairs(split, split.train)) == Counter(train)
    assert original_pairs(split, split.valid) == [valid[u] for u in sorted(valid)]
    assert original_pairs(split, split.test) == [test[u] for u in sorted(test)]
    # Nothing lost or duplicated.
    everything = Counter(zip(table.frame["user"], table.frame["item"], strict=True))
    got = Counter(original_pairs(split, np.concatenate([split.train, split.valid, split.test])))
    assert got == everything
    # Held out exactly for the users with >= 3 events, one event each.
    counts = table.frame["user"].value_counts()
    held_users = sorted(counts[counts >= 3].index)
    assert [split.user_ids[u] for u in split.test[:, 0]] == held_users
    assert [split.user_ids[u] for u in split.valid[:, 0]] == held_users
    assert split.train.dtype == np.int64
    assert split.train.shape[1] == split.valid.shape[1] == split.test.shape[1] == 2


def test_leave_last_out_test_is_latest_and_valid_second_latest():
    rng = np.random.default_rng(7)
    n = 300
    users = rng.integers(0, 20, n)
    times = rng.permutation(n)  # distinct times
    table = interactions(users, np.arange(n), times)
    split = leave_last_out(table)
    time_of_item = dict(zip(np.arange(n), times, strict=True))
    for (u, t_item), (u2, v_item) in zip(split.test, split.valid, strict=True):
        assert u == u2
        user = split.user_ids[u]
        user_times = sorted(times[users == user])
        assert time_of_item[split.item_ids[t_item]] == user_times[-1]
        assert time_of_item[split.item_ids[v_item]] == user_times[-2]


def test_leave_last_out_all_users_too_short_leaves_only_training():
    split = leave_last_out(interactions([1, 1, 2], [5, 6, 5], [0, 1, 2]))
    assert len(split.train) == 3
    assert split.valid.shape == (0, 2)
    assert split.test.shape == (0, 2)


def test_leave_last_out_items_only_held_out_are_indexed():
    split = leave_last_out(interactions([1, 1, 1, 1], [5, 5, 6, 7], [0, 1, 2, 3]))
    assert split.item_ids.tolist() == [5, 6, 7]
    assert original_pairs(split, split.test) == [(1, 7)]
    assert original_pairs(split, split.valid) == [(1, 6)]


def test_leave_last_out_of_an_empty_table_is_a_data_error():
    # A user with >= 3 events keeps >= 1 in training, so only an empty table has none.
    with pytest.raises(DataError, match="test-table: no training events"):
        leave_last_out(interactions([], [], []))


# ----------------------------------------------------------------------------- ranking
SCORES = torch.tensor(
    [
        [0.9, 0.1, 0.5, 0.3, 0.7],
        [0.2, 0.8, 0.6, 0.4, 0.0],
        [0.1, 0.2, 0.3, 0.4, 0.5],
    ]
)
HELD_OUT = np.array([[0, 4], [1, 0], [2, 1]])
SEEN = np.array([[0, 0], [1, 1], [1, 2]])


def table_scorer(table: torch.Tensor):
    return lambda users: table[users]


def test_full_ranking_hand_example():
    # Ranks among unseen items (0-based): user 0 -> 0 (item 0 is seen), user 1 -> 1 (only
    # item 3 is above, items 1 and 2 are seen), user 2 -> 3 (nothing seen).
    scorer = table_scorer(SCORES)
    at2 = full_ranking_metrics(scorer, HELD_OUT, SEEN, num_items=5, k=2)
    assert at2["hr@2"] == pytest.approx(2 / 3)
    assert at2["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    at4 = full_ranking_metrics(scorer, HELD_OUT, SEEN, num_items=5, k=4)
    assert at4["hr@4"] == pytest.approx(1.0)
    assert at4["ndcg@4"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(5)) / 3)
    at1 = full_ranking_metrics(scorer, HELD_OUT, SEEN, num_items=5, k=1)
    assert at1 == pytest.approx({"hr@1": 1 / 3, "ndcg@1": 1 / 3})


def test_full_ranking_without_exclusion_ranks_seen_items_too():
    # Without the seen items masked: user 0 -> rank 1, user 1 -> rank 3, user 2 -> rank 3.
    nothing_seen = np.zeros((0, 2), dtype=np.int64)
    metrics = full_ranking_metrics(table_scorer(SCORES), HELD_OUT, nothing_seen, 5, k=2)
    assert metrics["hr@2"] == pytest.approx(1 / 3)
    assert metrics["ndcg@2"] == pytest.approx(1 / math.log2(3) / 3)


def test_full_ranking_is_independent_of_batch_size():
    rng = np.random.default_rng(0)
    num_users, num_items = 50, 30
    table = torch.as_tensor(rng.normal(size=(num_users, num_items)), dtype=torch.float32)
    table = table.round(decimals=1)  # plenty of ties
    held = np.stack([rng.permutation(num_users), rng.integers(0, num_items, num_users)], 1)
    seen = np.stack([rng.integers(0, num_users, 300), rng.integers(0, num_items, 300)], 1)
    seen = seen[~np.isin(seen[:, 0] * 1000 + seen[:, 1], held[:, 0] * 1000 + held[:, 1])]
    results = [
        full_ranking_metrics(table_scorer(table), held, seen, num_items, k=5, batch_size=b)
        for b in (1, 7, 50, 1024)
    ]
    for result in results[1:]:
        assert result == results[0]


def test_constant_scorer_gets_random_ranking_metrics():
    rng = np.random.default_rng(1)
    num_users, num_items, num_seen, k = 3000, 200, 100, 10
    seen, held = [], []
    for user in range(num_users):
        items = rng.permutation(num_items)
        seen.extend((user, item) for item in items[:num_seen])
        held.append((user, items[num_seen]))
    constant = lambda users: torch.zeros(len(users), num_items)  # noqa: E731
    metrics = full_ranking_metrics(constant, np.array(held), np.array(seen), num_items, k=k)
    unseen = num_items - num_seen
    expected_hr = k / unseen
    expected_ndcg = sum(1 / math.log2(r + 2) for r in range(k)) / unseen
    standard_error = math.sqrt(expected_hr * (1 - expected_hr) / num_users)
    assert metrics["hr@10"] == pytest.approx(expected_hr, abs=4 * standard_error)
    assert metrics["ndcg@10"] == pytest.approx(expected_ndcg, abs=4 * standard_error)


@pytest.mark.parametrize("tie_seed", [0, 3, 11])
def test_constant_scorer_ties_follow_one_fixed_order(tie_seed):
    """With every item the target of one user, a fixed tie order puts the targets at
    ranks 0..M-1, each once, whatever the order: the metrics are exact."""
    num_items = 7
    held = np.array([[u, u] for u in range(num_items)])
    nothing_seen = np.zeros((0, 2), dtype=np.int64)
    constant = lambda users: torch.ones(len(users), num_items)  # noqa: E731
    at3 = full_ranking_metrics(constant, held, nothing_seen, num_items, k=3, tie_seed=tie_seed)
    assert at3["hr@3"] == pytest.approx(3 / num_items)
    assert at3["ndcg@3"] == pytest.approx(sum(1 / math.log2(r + 2) for r in range(3)) / num_items)
    at7 = full_ranking_metrics(constant, held, nothing_seen, num_items, k=7, tie_seed=tie_seed)
    assert at7["hr@7"] == 1.0
    assert at7["ndcg@7"] == pytest.approx(sum(1 / math.log2(r + 2) for r in range(7)) / 7)
    # A single user's rank does depend on the order, and is reproducible from the seed.
    one = held[:1]
    first = full_ranking_metrics(constant, one, nothing_seen, num_items, k=7, tie_seed=tie_seed)
    again = full_ranking_metrics(constant, one, nothing_seen, num_items, k=7, tie_seed=tie_seed)
    assert first == again


def test_popularity_scorer_counts_training_events():
    train = np.array([[0, 3], [1, 3], [2, 3], [0, 0], [1, 0], [2, 1], [3, 3], [3, 0], [4, 3]])
    scorer = popularity_scorer(train, num_items=5)
    scores = scorer(torch.tensor([0, 4, 2]))
    expected = torch.tensor([3.0, 1.0, 0.0, 5.0, 0.0])
    assert torch.equal(scores, expected.expand(3, -1))
    # The scorer's output can be modified without changing later scores.
    scores[:] = -1
    assert torch.equal(scorer(torch.tensor([1])), expected[None])
    # Ranking by counts: item 3 first, then 0, then 1.
    held = np.array([[5, 3], [6, 0], [7, 1]])
    nothing_seen = np.zeros((0, 2), dtype=np.int64)
    metrics = full_ranking_metrics(scorer, held, nothing_seen, 5, k=1)
    assert metrics["hr@1"] == pytest.approx(1 / 3)
    metrics = full_ranking_metrics(scorer, held, nothing_seen, 5, k=2)
    assert metrics["hr@2"] == pytest.approx(2 / 3)
    assert metrics["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 3)


def test_full_ranking_leaves_the_scorers_tensor_alone():
    table = SCORES.clone()
    metrics = full_ranking_metrics(lambda users: table, HELD_OUT, SEEN, num_items=5, k=2)
    assert metrics["hr@2"] == pytest.approx(2 / 3)
    assert torch.equal(table, SCORES)
