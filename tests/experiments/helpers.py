"""Helpers shared by the experiment tests."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym

import shopgym.envs  # noqa: F401  (registers the environment IDs)
from shopgym.experiments.cli import main

SYNTHETIC_ID = "shopgym/SyntheticShopper-v0"

TINY_RUN = [
    "run",
    "--env",
    SYNTHETIC_ID,
    "--seeds",
    "2",
    "--episodes",
    "20",
    "--num-envs",
    "5",
    "--train-slates",
    "200",
    "--no-progress",
]


def run_cli(argv: Sequence[str]) -> int:
    """``shopgym.experiments.cli.main(argv)``: the exit code."""
    return main(list(argv))


def synthetic_env(num_envs: int = 8, shoppers: str = "test", oracle: bool = False, **options):
    return gym.make_vec(
        SYNTHETIC_ID,
        num_envs=num_envs,
        shoppers=shoppers,
        oracle_info=oracle,
        device="cpu",
        **options,
    )
