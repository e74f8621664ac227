"""The ``shopgym`` command: ``run`` an experiment, list ``agents`` and ``envs``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import tyro

from shopgym.experiments.benchmark import BenchmarkConfig, run_benchmark
from shopgym.experiments.fit_benchmark import FitBenchmarkConfig, run_fit_benchmark
from shopgym.experiments.fit_world import FitWorldConfig, fit_world
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

    from shopgym.envs.presets import DESCRIPTIONS

    ids = sorted(env_id for env_id in gym.registry if env_id.startswith("shopgym/"))
    return "\n".join(f"{env_id:30s} {DESCRIPTIONS.get(env_id, '')}" for env_id in ids)


def main(argv: Sequence[str] | None = None) -> int:
    handlers = {
        RunConfig: run_experiment,
        FitWorldConfig: fit_world,
        BenchmarkConfig: run_benchmark,
        FitBenchmarkConfig: run_fit_benchmark,
        ListAgents: lambda _: print(list_agents()),
        ListEnvs: lambda _: print(list_envs()),
    }
    try:
        # Configs check themselves when built, so parsing is inside the error handling too.
        command = tyro.extras.subcommand_cli_from_dict(
            {
                "run": RunConfig,
                "fit": FitWorldConfig,
                "agents": ListAgents,
                "envs": ListEnvs,
                "benchmark": BenchmarkConfig,
                "fit-benchmark": FitBenchmarkConfig,
            },
            prog="shopgym",
            description="shopgym: simulated shoppers for reinforcement learning in recommendation.",
            args=argv,
        )
        handlers[type(command)](command)
    except ShopgymError as error:
        print(f"shopgym: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("shopgym: interrupted; finished work is kept, rerun to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
