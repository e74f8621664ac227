"""``top_k``: the k best scores per row, best first, ties broken at random."""

from __future__ import annotations

import numpy as np

from shopgym.agents.base import top_k


def test_returns_the_best_k_best_first():
    scores = np.random.default_rng(0).normal(size=(50, 20))
    chosen = top_k(scores, 5, np.random.default_rng(1))
    assert chosen.dtype == np.int64
    assert chosen.shape == (50, 5)
    np.testing.assert_array_equal(chosen, np.argsort(-scores, axis=1)[:, :5])


def test_k_equal_to_n_is_a_descending_permutation():
    scores = np.array([[0.3, -1.0, 2.0, 0.5]])
    np.testing.assert_array_equal(top_k(scores, 4, np.random.default_rng(0)), [[2, 3, 0, 1]])


def test_rows_are_ranked_independently():
    scores = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    np.testing.assert_array_equal(top_k(scores, 2, np.random.default_rng(0)), [[2, 1], [0, 1]])


def test_ties_are_broken_among_tied_items_only_and_differently_under_different_rngs():
    scores = np.array([[0.0, 5.0, 5.0, 5.0, 1.0, 5.0]])
    tied = {1, 2, 3, 5}
    picks = [tuple(top_k(scores, 2, np.random.default_rng(seed))[0]) for seed in range(200)]
    for pick in picks:
        assert set(pick) <= tied and len(set(pick)) == 2
    # Every tied item is shown first under some rng, and many orders occur.
    assert {pick[0] for pick in picks} == tied
    assert len(set(picks)) == 12  # all ordered pairs of 4 tied items


def test_ties_at_the_boundary_keep_the_strictly_better_item_first():
    scores = np.array([[9.0, 5.0, 5.0, 5.0, 1.0]])
    seconds = set()
    for seed in range(100):
        first, second = top_k(scores, 2, np.random.default_rng(seed))[0]
        assert first == 0
        seconds.add(int(second))
    assert seconds == {1, 2, 3}


def test_tie_breaking_is_roughly_uniform():
    scores = np.zeros((4000, 4))
    counts = np.bincount(top_k(scores, 1, np.random.default_rng(0))[:, 0], minlength=4)
    assert np.all(np.abs(counts - 1000) < 120), counts


def test_same_rng_seed_gives_same_result():
    scores = np.round(np.random.default_rng(3).normal(size=(30, 10)))  # many ties
    np.testing.assert_array_equal(
        top_k(scores, 4, np.random.default_rng(7)), top_k(scores, 4, np.random.default_rng(7))
    )
    assert not np.array_equal(
        top_k(scores, 4, np.random.default_rng(7)), top_k(scores, 4, np.random.default_rng(8))
    )
