"""Leave-last-out splits of an interaction table, by time."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shopgym.simulator.errors import DataError
from shopgym.simulator.interactions import Interactions


@dataclass(frozen=True)
class Split:
    """Users' interactions split by time: each user's last one is the test event,
    the one before it the validation event, the rest training.

    Users and items are re-indexed to ``0..U-1`` and ``0..M-1``; every item of the
    table is in the index, even one seen only in a held-out event.

    Attributes:
        user_ids: (U,) original user ID of each user index.
        item_ids: (M,) original item ID of each item index.
        train: (n_train, 2) int64 ``[user, item]`` index pairs.
        train_values: (n_train,) float64 the events' values (ratings, or 1.0 for implicit feedback).
        valid: (U_held, 2) one held-out validation pair per user with >= 3 events.
        test: (U_held, 2) one held-out test pair per such user.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    train_values: np.ndarray | None = None

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def consumed_before_test(self) -> np.ndarray:
        """(n, 2) training and validation pairs: what a test ranking excludes."""
        return np.concatenate([self.train, self.valid])

    def describe(self) -> dict:
        return {
            "protocol": "leave-last-out by time (last event test, second-last validation)",
            "users": self.num_users,
            "items": self.num_items,
            "train_events": len(self.train),
            "valid_events": len(self.valid),
            "test_events": len(self.test),
        }


def leave_last_out(interactions: Interactions) -> Split:
    """Split each user's events by time (ties keep file order); users with fewer than
    three events stay entirely in training."""
    frame = interactions.frame
    user_ids, users = np.unique(frame["user"].to_numpy(), return_inverse=True)
    item_ids, items = np.unique(frame["item"].to_numpy(), return_inverse=True)
    times = frame["time"].to_numpy()
    # Stable sort by (user, time) keeps the file order among equal timestamps.
    order = np.lexsort((np.arange(len(frame)), times, users))
    users, items = users[order], items[order]
    values = frame["value"].to_numpy(dtype=np.float64)[order]
    counts = np.bincount(users, minlength=len(user_ids))
    ends = np.cumsum(counts)
    held = counts >= 3
    test_rows = ends[held] - 1
    valid_rows = ends[held] - 2
    is_train = np.ones(len(users), dtype=bool)
    is_train[test_rows] = False
    is_train[valid_rows] = False
    if not is_train.any():
        raise DataError(f"{interactions.source}: no training events left after the split")
    pairs = np.stack([users, items], axis=1).astype(np.int64)
    return Split(
        user_ids=user_ids,
        item_ids=item_ids,
        train=pairs[is_train],
        valid=pairs[valid_rows],
        test=pairs[test_rows],
        train_values=values[is_train],
    )
