"""Training throughput of every agent: environment steps (slates shown to shoppers) per second.

Each agent runs on one environment (default ``shopgym/Shopper-v1``) with B shoppers
stepped together (default: the runner's ``--num-envs``), on one device, as
``shopgym run`` runs it:

- agents that train before evaluation (``trains_before_evaluation``: the static
  recommenders, which log slates with a logging policy and then fit; SlateQ; PPO; the
  SB3 agents): the wall time of ``fit(train_env, budget, ...)`` on train shoppers, and
  steps/s = the slates it showed (the budget; on-policy SB3 rounds up to whole
  rollouts) / that time. With ``--eval-steps`` > 0 also the act+step throughput of the
  trained policy on test shoppers (as evaluation runs it);
- online learners (``learns_online``: the bandits): the act+step+observe loop of the
  evaluation over the same number of slates;
- agents that do not learn (random, popularity, the oracles): the act+step loop.
  ``attach`` (the planning oracle tunes its base policy there, once per process) is
  timed apart, as setup, and left out of the rate.

Environments are built before the clock starts (their construction is not timed).
It prints a Markdown table and writes a JSON file::

    OMP_NUM_THREADS=1 python -m shopgym.experiments.agent_throughput --budget 20000
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import tyro

import shopgym.envs  # noqa: F401  (registers the environments)
from shopgym.agents import AGENTS, Agent, Transition, make_agent
from shopgym.envs import make_torch_env
from shopgym.experiments.runner import TRAIN_SEED_OFFSET, RunConfig
from shopgym.simulator.build import resolve_world
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError, ShopgymError

COLUMNS = (
    "agent",
    "kind",
    "budget",
    "steps",
    "setup s",
    "wall s",
    "env-steps/s",
    "eval env-steps/s",
    "device",
)


@dataclass(frozen=True)
class AgentThroughputConfig:
    """Measure every agent's training throughput (environment steps per second)."""

    env: str = "shopgym/Shopper-v1"
    """Registered shopper environment ID."""
    agents: str = ",".join(AGENTS)
    """Comma-separated agent names (default: every registered agent)."""
    budget: int = 20_000
    """Shopper-steps (slates shown, summed over the batch) per agent: the fit budget of
    agents that train first, the length of the act+step loop of the others."""
    num_envs: int = RunConfig.num_envs
    """Shoppers stepped together (B)."""
    eval_steps: int = 5_000
    """Shopper-steps of act+step of each trained agent on test shoppers (0: skip)."""
    agent_steps: tuple[str, ...] = ()
    """NAME=STEPS ...: a smaller step count for agents far slower than the others (the planning
    oracle with ``rollouts`` > 0 would be; with its default, 0, it is as fast as the myopic one)."""
    device: str = "cpu"
    """Torch device: cpu, cuda or auto."""
    threads: int = 1
    """Torch threads (torch.set_num_threads)."""
    seed: int = 0
    """Seeds the agents, the environments and the global generators."""
    out: Path | None = None
    """JSON file to write (default: runs/agent_throughput__<time>.json)."""

    def agent_names(self) -> list[str]:
        names = [name.strip() for name in self.agents.split(",") if name.strip()]
        unknown = [name for name in names if name not in AGENTS]
        if not names or unknown:
            raise ConfigError(f"--agents: unknown or no agent(s) {unknown}; available: {', '.join(AGENTS)}")
        return names

    def steps_of(self, name: str) -> int:
        """Agent ``name``'s step count: its ``--agent-steps`` entry, else ``--budget``."""
        for entry in self.agent_steps:
            key, _, value = entry.partition("=")
            if key.strip() == name:
                if not value.strip().isdigit() or int(value) < 1:
                    raise ConfigError(f"--agent-steps: {entry!r} is not NAME=STEPS with STEPS >= 1")
                return int(value)
        return self.budget

    def validate(self) -> None:
        if min(self.budget, self.num_envs, self.threads) < 1 or self.eval_steps < 0:
            raise ConfigError("--budget, --num-envs and --threads must be >= 1, --eval-steps >= 0")
        if self.env not in gym.registry:
            raise ConfigError(f"--env: unknown environment {self.env!r}")
        for name in self.agent_names():
            self.steps_of(name)


def kind_of(agent_class: type[Agent]) -> str:
    """How the agent learns: ``fit`` (trains first), ``online`` (bandits) or ``none``."""
    if agent_class.trains_before_evaluation:
        return "fit"
    return "online" if agent_class.learns_online else "none"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def act_step_loop(agent: Agent, env: Any, steps: int, seed: int) -> tuple[int, float]:
    """Run ``agent`` on ``env`` as :func:`~shopgym.experiments.evaluation.evaluate` does
    (act, step, and observe for online learners) until at least ``steps`` slates are
    shown; returns (slates shown, wall seconds). The env is reset first, untimed."""
    observation, _ = env.reset(seed=seed)
    shown = 0
    started = time.perf_counter()
    while shown < steps:
        action = agent.act(observation)
        step = env.step(action)
        if agent.learns_online:
            agent.observe(Transition(observation, action, step))
        observation = step.observation
        shown += env.num_envs
    if env.device.type == "cuda":
        torch.cuda.synchronize(env.device)
    return shown, time.perf_counter() - started


def measure_agent(config: AgentThroughputConfig, name: str, world: Any, device: torch.device) -> dict:
    """One row of the table: agent ``name`` trained (or run) for its step count."""
    agent_class = AGENTS[name]
    steps = config.steps_of(name)
    seed_everything(config.seed)
    test_env = make_torch_env(
        config.env,
        num_envs=config.num_envs,
        world=world,
        shoppers="test",
        device=device,
        oracle_info=agent_class.needs_oracle,
    )
    agent = make_agent(
        name, test_env.single_observation_space, test_env.single_action_space, config.seed, device
    )
    row: dict[str, Any] = {
        "agent": name,
        "kind": kind_of(agent_class),
        "budget": steps,
        "steps": None,
        "setup_s": 0.0,
        "wall_s": None,
        "steps_per_s": None,
        "eval_steps": 0,
        "eval_wall_s": None,
        "eval_steps_per_s": None,
        "device": str(device),
        "reduced": steps != config.budget,
        "error": None,
    }
    try:
        if agent_class.trains_before_evaluation:
            train_env = make_torch_env(
                config.env, num_envs=config.num_envs, world=world, shoppers="train", device=device
            )
            started = time.perf_counter()
            agent.fit(train_env, steps, seed=TRAIN_SEED_OFFSET + config.seed)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            row["wall_s"] = time.perf_counter() - started
            shown = agent.describe().get("training_data", {}).get("slates")
            row["steps"] = int(shown) if shown else steps
            if config.eval_steps:
                agent.attach(test_env)
                row["eval_steps"], row["eval_wall_s"] = act_step_loop(
                    agent, test_env, config.eval_steps, config.seed
                )
                row["eval_steps_per_s"] = row["eval_steps"] / row["eval_wall_s"]
        else:
            started = time.perf_counter()
            agent.attach(test_env)
            row["setup_s"] = time.perf_counter() - started
            row["steps"], row["wall_s"] = act_step_loop(agent, test_env, steps, config.seed)
        row["steps_per_s"] = row["steps"] / row["wall_s"]
    except (ShopgymError, RuntimeError, ValueError, TypeError) as exc:  # one agent's failure is a row
        row["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return row


def _number(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def format_table(rows: list[dict]) -> str:
    """The Markdown table of ``rows`` (a reduced step count and any failure flagged)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] + ["---:"] * 7 + ["---"]) + "|"]
    for row in rows:
        agent = row["agent"] + (" *" if row["reduced"] else "")
        if row["error"]:
            agent += f" (failed: {row['error'][:80]})"
        setup = _number(row["setup_s"], 1) if row["setup_s"] >= 0.05 else "—"
        cells = [
            agent,
            row["kind"],
            f"{row['budget']:,}",
            _number(row["steps"]),
            setup,
            _number(row["wall_s"], 2),
            _number(row["steps_per_s"]),
            _number(row["eval_steps_per_s"]),
            row["device"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def warm_up(config: AgentThroughputConfig, world: Any, device: torch.device) -> None:
    """A few untimed random slates, so that the first agent measured pays no one-off costs."""
    env = make_torch_env(config.env, num_envs=config.num_envs, world=world, shoppers="test", device=device)
    agent = make_agent("random", env.single_observation_space, env.single_action_space, config.seed, device)
    act_step_loop(agent, env, 20 * config.num_envs, config.seed)


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(config: AgentThroughputConfig, device: torch.device) -> dict[str, Any]:
    """What the measurement ran on."""
    return {
        "date": datetime.now().isoformat(timespec="seconds"),
        "env": config.env,
        "num_envs": config.num_envs,
        "budget": config.budget,
        "eval_steps": config.eval_steps,
        "seed": config.seed,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "command": sys.argv,
    }


def run_throughput(config: AgentThroughputConfig) -> dict[str, Any]:
    """Measure every agent of ``config``; print the table, write the JSON; return it."""
    config.validate()
    torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    world = resolve_world(gym.spec(config.env).kwargs.get("world"), device, progress=False)
    document: dict[str, Any] = {"config": {**asdict(config), "out": str(config.out)}}
    document["header"] = header(config, device)
    warm_up(config, world, device)
    rows = []
    for name in config.agent_names():
        row = measure_agent(config, name, world, device)
        rows.append(row)
        rate = _number(row["steps_per_s"])
        print(f"{name}: {rate} env-steps/s {row['error'] or ''}", file=sys.stderr, flush=True)
    document["header"]["load_average_end"] = [round(value, 2) for value in os.getloadavg()]
    document["rows"] = rows
    document["table"] = format_table(rows)
    head = document["header"]
    print(
        f"{config.env}, B={config.num_envs}, device {head['device']} ({head['device_name']}), "
        f"torch {head['torch']}, {head['torch_threads']} torch thread(s), OMP_NUM_THREADS="
        f"{head['omp_num_threads']}, load average {head['load_average']} -> {head['load_average_end']}\n"
    )
    print(document["table"])
    if any(row["reduced"] for row in rows):
        print("\n* a smaller step count than --budget (--agent-steps): the agent is far slower")
    out = config.out or Path("runs") / f"agent_throughput__{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str))
    print(f"\nwrote {out}")
    return document


def main(argv: list[str] | None = None) -> dict[str, Any]:
    config = tyro.cli(AgentThroughputConfig, args=argv, description=__doc__.split("\n\n")[0])
    try:
        return run_throughput(config)
    except ShopgymError as error:
        print(f"agent_throughput: error: {error}", file=sys.stderr)
        raise SystemExit(2) from error


if __name__ == "__main__":
    main()
