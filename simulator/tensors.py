"""Tensor helpers shared by the simulators' hot paths."""

from __future__ import annotations

import torch


def rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for a (M, F) table and an int64 index of any shape -> (*index.shape, F).

    The same values as advanced indexing, gathered 2-4x faster on CPU at the batch sizes
    the simulators step (``embedding`` is a plain row gather in the forward pass).
    """
    return torch.nn.functional.embedding(index, table)
