"""The ``shopgym`` command: ``run`` an experiment, list ``agents`` and ``envs``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import tyro

from shopgym.experiments.benchmark import BenchmarkConfig, run_benchmark
from shopgym.experiments.runner import RunConfig, run_experiment
from shopgym.simulator.errors import ShopgymError


@dataclass(frozen=True)
class ListAgents:
    """List the agent names that --agents accepts."""


@dataclass(frozen=True)
class ListEnvs:
    """List the registered environment IDs that --env accepts."""


def list_agents() -> str:
    from shopgym.agents import AGENTS

    return "\n".join(f"{name:16s} {agent.__doc__.strip().splitlines()[0]}" for name, agent in AGENTS.items())


def list_envs() -> str:
    import gymnasium as gym

    from shopgym.envs import PRESETS

    lines = []
    for env_id in PRESETS:
        options = ", ".join(f"{key}={value!r}" for key, value in gym.spec(env_id).kwargs.items())
        lines.append(f"{env_id:30s} {options or '(defaults: the embedded MovieLens World)'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    command = tyro.extras.subcommand_cli_from_dict(
        {"run": RunConfig, "agents": ListAgents, "envs": ListEnvs, "benchmark": BenchmarkConfig},
        prog="shopgym",
        description="shopgym: simulated shoppers for reinforcement learning in recommendation.",
        args=argv,
    )
    try:
        if isinstance(command, RunConfig):
            run_experiment(command)
        elif isinstance(command, BenchmarkConfig):
            run_benchmark(command)
        elif isinstance(command, ListAgents):
            print(list_agents())
        else:
            print(list_envs())
    except ShopgymError as error:
        print(f"shopgym: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "shopgym: interrupted; finished (agent, seed) records are kept, rerun to resume",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
