"""Fixtures of the experiment tests: one tiny synthetic run shared by several tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import TINY_RUN, run_cli


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The run directory of ``shopgym run`` on the synthetic env: every default agent,
    2 seeds x 20 episodes, 5 parallel shoppers, 200 training slates. Read-only: copy it
    before changing anything."""
    out = tmp_path_factory.mktemp("tiny-run") / "run"
    assert run_cli([*TINY_RUN, "--out", str(out)]) == 0
    return out
