"""Checking that slates are valid: k distinct candidate indices per shopper."""

from __future__ import annotations

import torch

from shopgym.simulator.errors import SlateError


def check_slates(slates: torch.Tensor, num_shoppers: int, slate_size: int, num_candidates: int) -> None:
    """Raise :class:`SlateError` unless ``slates`` is (B, k) integers in ``[0, N)`` with no
    repeats in a row. The message names the first bad row and what is wrong with it."""
    shape = tuple(slates.shape)
    if shape != (num_shoppers, slate_size):
        raise SlateError(f"slate must have shape {(num_shoppers, slate_size)}, got {shape}")
    if torch.is_floating_point(slates) or slates.dtype == torch.bool or slates.is_complex():
        raise SlateError(f"slate must hold integer candidate indices, got dtype {slates.dtype}")
    out_of_range = ((slates < 0) | (slates >= num_candidates)).any(1)
    ordered = slates.sort(1).values
    repeated = (ordered[:, 1:] == ordered[:, :-1]).any(1)
    # One read-back from the device for a valid batch; which problem it was only on failure.
    if not bool((out_of_range | repeated).any()):
        return
    problems = (
        (out_of_range, f"is out of range [0, {num_candidates})"),
        (repeated, "repeats an item"),
    )
    for rows, problem in problems:
        if bool(rows.any()):
            row = int(rows.nonzero()[0, 0])
            raise SlateError(f"slate of shopper {row} {problem}: {slates[row].tolist()}")
