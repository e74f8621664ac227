"""Shared fixtures. Worlds are cached in $SHOPGYM_HOME (default ~/.cache/shopgym),
so the MovieLens World is fitted once per machine, not once per test."""

from __future__ import annotations

import pytest
import torch

from shopgym.simulator.build import default_world, synthetic_world
from shopgym.simulator.world import World

# The tests run many small tensor operations, for which torch's worker threads cost
# more than they give; on a 2-core machine with other jobs they made agent training
# in the tests 10-30 times slower. One thread keeps the suite's time predictable.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def synthetic() -> World:
    """The small synthetic World (200 shoppers, 40 items) behind SyntheticShopper-v0."""
    return synthetic_world()


@pytest.fixture(scope="session")
def movielens() -> World:
    """The default World fitted on the embedded MovieLens data (cached)."""
    return default_world(device="cpu", progress=False)
