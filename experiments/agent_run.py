"""One agent on one preset for one seed: trained on train shoppers (if it trains first),
evaluated on held-out shoppers, with its learning curve. The unit of work that
``shopgym run`` and ``shopgym compare`` repeat over agents, presets and seeds.

Seeds: seed ``s`` seeds the agent and the evaluation environment with ``s``, the
training environment with ``TRAIN_SEED_OFFSET + s`` and the learning-curve evaluations
with ``CURVE_SEED_OFFSET + s`` (the same held-out draws at every point of a curve).
Seeds are below ``MAX_SEED`` (= ``TRAIN_SEED_OFFSET``), so that none of these streams
is another seed's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import pandas as pd
import torch
from tqdm.auto import tqdm

from shopgym.agents import AGENTS, make_agent
from shopgym.envs import make_torch_env
from shopgym.experiments.evaluation import evaluate, evaluate_detailed
from shopgym.experiments.stats import mean_ci
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.world import World

TRAIN_SEED_OFFSET = 10_000
CURVE_SEED_OFFSET = 20_000
MAX_SEED = TRAIN_SEED_OFFSET
CURVE_COLUMNS = ("steps", "episodes", "return", "return_low", "return_high")


def check_seed(seed: int, where: str) -> None:
    """A ConfigError naming ``where`` unless ``0 <= seed < MAX_SEED``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < MAX_SEED:
        raise ConfigError(
            f"{where}: seeds are integers in [0, {MAX_SEED}) (the training and learning-curve "
            f"environments use {TRAIN_SEED_OFFSET} + s and {CURVE_SEED_OFFSET} + s), got {seed!r}"
        )


@dataclass(frozen=True)
class AgentRun:
    """What one (agent, preset, seed) run does; everything its numbers depend on."""

    env: str
    """Registered environment ID."""
    agent: str
    """Agent name (a key of ``AGENTS``)."""
    seed: int
    """Seeds the agent and the evaluation (see the module docstring for the other streams)."""
    episodes: int
    """Evaluation episodes on held-out shoppers."""
    train_slates: int
    """Training budget (slates shown to train shoppers) if the agent trains first."""
    num_envs: int = 50
    """Shoppers simulated in parallel (at most ``episodes`` in evaluation)."""
    curve_points: int = 0
    """Learning-curve points along training (0: none)."""
    curve_episodes: int = 100
    """Held-out episodes per learning-curve point."""
    env_options: dict[str, Any] = field(default_factory=dict)
    """Environment options (:class:`~shopgym.simulator.config.ShopperConfig` fields)
    over the registration's."""
    agent_options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the agent's constructor."""
    details: bool = True
    """Record the slate metrics (NDCG, diversity, novelty, per-position clicks) and the
    items shown (:func:`~shopgym.experiments.evaluation.evaluate_detailed`)."""


@dataclass
class AgentResult:
    """What a run produced: per-episode ``records``, ``items`` shown (with details),
    the learning ``curve`` (agents that train first, with curve points), the agent's
    ``training`` log (its ``training_log``: losses and statistics along training, for
    agents that train first) and ``meta`` (the agent's description, its training
    data, wall times)."""

    records: pd.DataFrame
    items: pd.DataFrame | None
    curve: pd.DataFrame | None
    training: pd.DataFrame | None
    meta: dict[str, Any]


def make_env(
    run: AgentRun,
    world: World,
    device: torch.device,
    shoppers: str,
    oracle: bool,
    episodes: int | None = None,
):
    """The torch env of ``shoppers`` (``train`` or ``test``); a test env for ``episodes``
    (default: the evaluation's) has at most that many parallel shoppers."""
    episodes = run.episodes if episodes is None else episodes
    return make_torch_env(
        run.env,
        num_envs=min(run.num_envs, episodes) if shoppers == "test" else run.num_envs,
        world=world,
        shoppers=shoppers,
        device=device,
        oracle_info=oracle,
        **run.env_options,
    )


def run_agent(
    run: AgentRun, world: World, device: torch.device, progress: TextIO | None = None
) -> AgentResult:
    """Train (if the agent trains first) and evaluate one agent for one seed; with a
    ``progress`` stream, a progress bar of training slates is drawn on it."""
    check_seed(run.seed, "seed")
    started = time.perf_counter()
    agent_class = AGENTS[run.agent]
    test_env = make_env(run, world, device, "test", agent_class.needs_oracle)
    space = (test_env.single_observation_space, test_env.single_action_space)
    agent = make_agent(run.agent, *space, run.seed, device, **run.agent_options)
    meta: dict[str, Any] = {"world_hash": world.hash}
    curve: list[dict] = []
    if agent_class.trains_before_evaluation:
        train_env = make_env(run, world, device, "train", False)
        with tqdm(
            total=run.train_slates,
            desc=f"{run.agent} seed {run.seed}",
            unit="slate",
            leave=False,
            file=progress,
            disable=progress is None,
        ) as bar:
            checkpoint = _checkpoint(run, world, device, agent, curve, bar)
            agent.fit(train_env, run.train_slates, seed=TRAIN_SEED_OFFSET + run.seed, checkpoint=checkpoint)
        meta["training_env"] = {
            "shoppers": "train",
            "seed": TRAIN_SEED_OFFSET + run.seed,
            "budget_slates": run.train_slates,
        }
    trained = time.perf_counter()
    items = None
    if run.details:
        evaluation = evaluate_detailed(agent, test_env, run.episodes, seed=run.seed)
        records, items = evaluation.records, evaluation.items
    else:
        records = evaluate(agent, test_env, run.episodes, seed=run.seed)
    curve_seconds = [record.pop("curve_eval_s") for record in curve]
    meta |= {
        "agent": agent.describe(),
        "evaluation_env": {"shoppers": "test", "seed": run.seed, "episodes": run.episodes},
        "catalogue_size": len(world.catalogue),
        "slate_size": int(test_env.single_action_space.shape[0]),
        "train_wall_time_s": round(trained - started - sum(curve_seconds), 3),
        "curve_wall_time_s": round(sum(curve_seconds), 3),
        "curve_points_wall_time_s": [record.pop("wall_time_s") for record in curve],
        "eval_wall_time_s": round(time.perf_counter() - trained, 3),
    }
    frame = pd.DataFrame(curve, columns=list(CURVE_COLUMNS)) if curve else None
    training = None
    if agent_class.trains_before_evaluation:  # a header alone where the log is empty
        training = pd.DataFrame(agent.training_log) if agent.training_log else pd.DataFrame(columns=["steps"])
    return AgentResult(records, items, frame, training, meta)


def _checkpoint(
    run: AgentRun, world: World, device: torch.device, agent, curve: list, bar: tqdm
) -> Callable[[int], None] | None:
    """The callback an agent calls at points of training (``None`` if it has nothing to
    do): it evaluates the current policy on ``curve_episodes`` held-out episodes and
    appends a learning-curve record, with the training time so far (the evaluations
    left out); its ``progress`` moves the bar.

    The agent's random stream is put back after each evaluation, so that a run with
    learning curves trains and evaluates exactly as one without."""
    if not run.curve_points and bar.disable:
        return None
    env = (
        make_env(run, world, device, "test", False, episodes=run.curve_episodes) if run.curve_points else None
    )
    started = time.perf_counter()

    def checkpoint(steps: int) -> None:
        if env is None:  # offline learners call it once, after training
            return
        now = time.perf_counter()
        state = agent.generator.get_state()
        returns = evaluate(agent, env, run.curve_episodes, seed=CURVE_SEED_OFFSET + run.seed)["return"]
        agent.generator.set_state(state)
        low, high = mean_ci(returns.to_numpy())
        curve.append(
            {
                "steps": steps,
                "episodes": len(returns),
                "return": float(returns.mean()),
                "return_low": low,
                "return_high": high,
                "wall_time_s": round(now - started - sum(record["curve_eval_s"] for record in curve), 3),
                "curve_eval_s": time.perf_counter() - now,
            }
        )

    checkpoint.points = run.curve_points  # how many points CurvePoints spaces out
    checkpoint.progress = lambda steps: bar.update(min(steps, bar.total) - bar.n)
    return checkpoint
