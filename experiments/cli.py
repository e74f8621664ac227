"""The ``shopgym`` command: ``run`` agents on a preset, ``compare`` them as an experiment file says,
``plot`` and ``report`` a result, list ``agents`` and ``envs``."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import tyro

from shopgym.experiments.benchmark import BenchmarkConfig, run_benchmark
from shopgym.experiments.compare import CompareConfig, compare
from shopgym.experiments.fit_benchmark import FitBenchmarkConfig, run_fit_benchmark
from shopgym.experiments.fit_world import FitWorldConfig, fit_world
from shopgym.experiments.plots import PlotConfig, plot_command
from shopgym.experiments.report import ReportConfig, report_command
from shopgym.experiments.runner import RunConfig, agent_hyperparameters, run_experiment
from shopgym.simulator.errors import ConfigError, ShopgymError


@dataclass(frozen=True)
class ListAgents:
    """List the agent names that --agents accepts, with their hyperparameters (--agent-options)."""

    name: Annotated[str | None, tyro.conf.Positional, tyro.conf.arg(metavar="[NAME]")] = None
    """Print this agent's whole documentation (default: every agent, in brief)."""


@dataclass(frozen=True)
class ListEnvs:
    """List the registered environment IDs that --env accepts."""


def hyperparameter_lines(agent_class) -> list[str]:
    """Indented ``PARAM=DEFAULT`` lines of an agent's hyperparameters (see ``--agent-options``)."""
    parameters, takes_others = agent_hyperparameters(agent_class)
    lines = []
    if agent_class.trains_before_evaluation:
        lines.append(f"    train_slates={RunConfig.train_slates}  (the run's --train-slates unless set)")
    lines += [
        f"    {name}" if parameter.default is inspect.Parameter.empty else f"    {name}={parameter.default!r}"
        for name, parameter in parameters.items()
    ]
    if takes_others:
        algorithm = getattr(agent_class, "algorithm", None)
        target = f"{algorithm.__name__}'s" if algorithm is not None else "the agent's"
        lines.append(f"    and keyword arguments of {target} constructor; the agent's defaults of those:")
        lines += [f"      {name}={value!r}" for name, value in getattr(agent_class, "defaults", {}).items()]
    return lines


def list_agents(name: str | None = None) -> str:
    """Every agent's one-line description and hyperparameters with their defaults; or
    agent ``name``'s whole docstring and hyperparameters."""
    from shopgym.agents import AGENTS

    if name is not None:
        if name not in AGENTS:
            raise ConfigError(f"unknown agent {name!r}; available: {', '.join(AGENTS)}")
        agent_class = AGENTS[name]
        lines = [name, "", inspect.getdoc(agent_class) or "", "", "Hyperparameters (defaults):"]
        return "\n".join([*lines, *(hyperparameter_lines(agent_class) or ["    none"])])
    lines = []
    for agent_name, agent_class in AGENTS.items():
        summary = (inspect.getdoc(agent_class) or "").partition("\n")[0]
        lines.append(f"{agent_name:16s} {summary}")
        lines += hyperparameter_lines(agent_class)
    lines += [
        "",
        "Set them with: shopgym run --agent-options AGENT.PARAM=VALUE ...",
        "One agent's documentation: shopgym agents NAME",
    ]
    return "\n".join(lines)


def list_envs() -> str:
    import gymnasium as gym

    from shopgym.envs.presets import DESCRIPTIONS

    ids = sorted(env_id for env_id in gym.registry if env_id.startswith("shopgym/"))
    return "\n".join(f"{env_id:30s} {DESCRIPTIONS.get(env_id, '')}" for env_id in ids)


def main(argv: Sequence[str] | None = None) -> int:
    handlers = {
        RunConfig: run_experiment,
        CompareConfig: compare,
        PlotConfig: plot_command,
        ReportConfig: report_command,
        FitWorldConfig: fit_world,
        BenchmarkConfig: run_benchmark,
        FitBenchmarkConfig: run_fit_benchmark,
        ListAgents: lambda command: print(list_agents(command.name)),
        ListEnvs: lambda _: print(list_envs()),
    }
    try:
        # Configs check themselves when built, so parsing is inside the error handling too.
        command = tyro.extras.subcommand_cli_from_dict(
            {
                "run": RunConfig,
                "compare": CompareConfig,
                "plot": PlotConfig,
                "report": ReportConfig,
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
