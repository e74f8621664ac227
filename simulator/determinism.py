"""Bit-for-bit reproducible training: the same seed gives the same numbers on the same device."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

# cuBLAS is deterministic only with a fixed workspace, read when CUDA first starts,
# so it is set when shopgym.simulator is imported (before any CUDA work).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Run the block with torch's deterministic kernels, then restore the previous setting.

    Without them, the backward pass of embedding lookups accumulates gradients in a
    thread-dependent order on CPU (and with atomics on CUDA), so two fits with one
    seed differ in the last bits and the World's hash changes.
    """
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def derived_seeds(seed: int, count: int) -> list[int]:
    """``count`` independent seeds from one, for separate random streams (NumPy's SeedSequence)."""
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(count)]
