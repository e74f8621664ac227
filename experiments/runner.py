"""Experiments: every (agent, seed) pair trained on train shoppers, evaluated on
held-out shoppers, recorded episode by episode in a run directory.

Run directory layout::

    config.json              the run's configuration, the World's hash and card summary
    records/<agent>__seed<s>.csv   per-episode records of one (agent, seed), written atomically
    records/<agent>__seed<s>.json  what that agent was trained on, wall time
    records/<agent>__seed<s>.curve.csv  learning curve of an agent that trains first:
                             mean return on held-out shoppers at points of training
    records/<agent>__seed<s>.training.csv  the agent's training log (losses along training)
    episodes.csv             all records (agent, seed, episode, return, clicks, ...)
    curves.csv               all learning-curve records (agent, seed, steps, wall time, return, CI)
    summary.csv              per agent: mean and 95% CI of return, CTR, purchases per session
    reward_curve.png         return vs evaluation episode with 95% bands
    learning_curve.png       return on held-out shoppers vs training slates, 95% bands over seeds

An interrupted run resumes: finished (agent, seed) records are kept and skipped.
Agents take hyperparameters and their own training budget from ``--agent-options
AGENT.PARAM=VALUE ...``; config.json records each agent's, and a resumed run must give
an agent that already has records the same ones.
Environment options (``--env-options KEY=VALUE``, fields of
:class:`~shopgym.simulator.config.ShopperConfig`) change the preset's shoppers; config.json
records them, and a resumed run must give the same ones. Seeds: see
:mod:`shopgym.experiments.agent_run` (seeds are below 10,000).
config.json describes the last invocation (its ``run``) and keeps the earlier ones
under ``history``; each (agent, seed) ``.json`` holds the code version that made it, and a
resumed run refuses records of other code (``--allow-code-change`` takes them).
"""

from __future__ import annotations

import ast
import inspect
import json
import platform
import re
import sys
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
import pandas as pd
import torch
from tqdm.auto import tqdm

from shopgym.agents import AGENTS, Agent, make_agent
from shopgym.envs.core import CONFIG_FIELDS
from shopgym.experiments.agent_run import (
    CURVE_COLUMNS,
    CURVE_SEED_OFFSET,
    MAX_SEED,
    TRAIN_SEED_OFFSET,
    AgentRun,
    make_env,
    run_agent,
)
from shopgym.experiments.atomic import atomic_write
from shopgym.experiments.evaluation import RECORD_COLUMNS
from shopgym.experiments.plots import plot_learning_curves, plot_reward_curves
from shopgym.experiments.provenance import code_version, device_name
from shopgym.experiments.stats import format_table, summarize
from shopgym.simulator.build import resolve_world
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError, DataError
from shopgym.simulator.world import World


@dataclass(frozen=True)
class RunConfig:
    """Evaluate agents on held-out shoppers over several seeds."""

    env: str = "shopgym/Shopper-v1"
    """Registered environment ID (see ``shopgym envs``)."""
    agents: str = "random,popularity,linucb,bpr-mf,ppo,myopic-oracle,planning-oracle"
    """Comma-separated agent names (see ``shopgym agents``)."""
    seeds: int = 10
    """Number of seeds (0 .. seeds-1) per agent."""
    episodes: int = 500
    """Evaluation episodes (shopper sessions) per agent and seed."""
    train_slates: int = 40_000
    """Training budget of agents that train before evaluation, in slates shown to train shoppers."""
    num_envs: int = 50
    """Shoppers simulated in parallel (evaluation rounds = episodes / num_envs)."""
    curve_points: int = 5
    """Points of training at which agents that train first are evaluated (0: no learning curves)."""
    curve_episodes: int = 100
    """Held-out episodes per learning-curve point."""
    out: Path | None = None
    """Run directory (default: runs/<env>__<time>). An existing one is resumed."""
    device: str = "auto"
    """Torch device: auto (cuda if available), cpu or cuda."""
    world: str | None = None
    """A saved World folder (or "synthetic") instead of the environment's own."""
    progress: bool = True
    """Show progress bars."""
    threads: int = 1
    """Torch intra-op threads during the run (0: torch's default). One is fastest at the
    default batch of 50 shoppers, and far faster than two on a busy 2-core machine."""
    agent_options: tuple[str, ...] = ()
    """Agent hyperparameters AGENT.PARAM=VALUE ... (see shopgym agents); AGENT.train_slates=N: its budget."""
    env_options: tuple[str, ...] = ()
    """Environment options KEY=VALUE ... over the preset's (ShopperConfig fields, e.g. slate_size=3)."""
    allow_code_change: bool = False
    """Resume a run directory whose records other code made (config.json's history says so)."""

    def agent_names(self) -> list[str]:
        names = [name.strip() for name in self.agents.split(",") if name.strip()]
        if not names:
            raise ConfigError("--agents: give at least one agent name")
        unknown = [name for name in names if name not in AGENTS]
        if unknown:
            raise ConfigError(f"--agents: unknown agent(s) {unknown}; available: {', '.join(AGENTS)}")
        if len(set(names)) != len(names):
            raise ConfigError(f"--agents: an agent is named twice in {names}")
        return names

    def validate(self) -> None:
        if self.threads < 0:
            raise ConfigError(f"--threads must be >= 0, got {self.threads}")
        if self.seeds > MAX_SEED:
            raise ConfigError(
                f"--seeds must be <= {MAX_SEED} (seeds are 0 .. {MAX_SEED - 1}), got {self.seeds}"
            )
        for name in ("seeds", "episodes", "num_envs", "train_slates", "curve_episodes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.curve_points < 0:
            raise ConfigError(f"--curve-points must be >= 0, got {self.curve_points}")
        if self.env not in gym.registry:
            shopgym_ids = sorted(env_id for env_id in gym.registry if env_id.startswith("shopgym/"))
            raise ConfigError(f"--env: unknown environment {self.env!r}; available: {', '.join(shopgym_ids)}")
        if not str(gym.spec(self.env).entry_point).startswith("shopgym.envs.shopper:"):
            raise ConfigError(
                f"--env: shopgym run evaluates the shopper presets; {self.env} is not one (for "
                "InterestEvolution-v0 see experiments/interest_evolution_check.py)"
            )
        self.agent_names()
        self.options()
        self.environment_options()
        resolve_device(self.device)

    def environment_options(self) -> dict[str, Any]:
        """``--env-options`` as ShopperConfig fields, checked by building the preset's config."""
        options = parse_env_options(self.env_options, "--env-options")
        shopper_config(self.env, options, "--env-options")
        return options

    def options(self) -> dict[str, dict[str, Any]]:
        """``--agent-options`` per agent of ``--agents`` (``{}`` for one without), checked
        against the agents' constructors' signatures (not yet by building them:
        :func:`check_agent_options` does)."""
        names = self.agent_names()
        options: dict[str, dict[str, Any]] = {name: {} for name in names}
        for entry in self.agent_options:
            key, equals, text = entry.partition("=")
            name, dot, parameter = key.strip().partition(".")
            name, parameter, text = name.strip(), parameter.strip(), text.strip()
            if not (equals and dot and name and parameter.isidentifier() and text):
                raise ConfigError(f"--agent-options: {entry!r} is not AGENT.PARAM=VALUE (as ppo.n_epochs=8)")
            if name not in options:
                known = "" if name in AGENTS else f" (nor is it an agent; available: {', '.join(AGENTS)})"
                raise ConfigError(
                    f"--agent-options {entry!r}: {name!r} is not among --agents ({', '.join(names)}){known}"
                )
            if parameter in options[name]:
                raise ConfigError(f"--agent-options {entry!r}: {name}.{parameter} is given twice")
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                value = text
            options[name][parameter] = checked_agent_option(
                f"--agent-options {entry!r}", name, parameter, value
            )
        return options

    def agent_kwargs(self, name: str) -> dict[str, Any]:
        """The keyword arguments that build agent ``name`` (its options but the budget)."""
        return {key: value for key, value in self.options()[name].items() if key != "train_slates"}

    def train_budget(self, name: str) -> int:
        """Agent ``name``'s training budget in slates: its train_slates option, else --train-slates."""
        return self.options()[name].get("train_slates", self.train_slates)


# Constructor arguments that the runner sets itself, not hyperparameters.
_RUNNER_ARGUMENTS = ("self", "observation_space", "action_space", "seed", "device")


def agent_hyperparameters(agent_class: type[Agent]) -> tuple[dict[str, inspect.Parameter], bool]:
    """The hyperparameters of ``agent_class``: the keyword parameters of its ``__init__``
    (those the runner sets left out), with those of the base classes that its
    ``**kwargs`` go on to; and whether it takes other keywords still (the SB3 agents pass
    them to the SB3 algorithm). A base ``__init__`` without hyperparameters of its own
    (:class:`Agent`'s) ends the chain: ``**kwargs`` stop short of it."""
    parameters: dict[str, inspect.Parameter] = {}
    inits = [vars(klass)["__init__"] for klass in agent_class.__mro__[:-1] if "__init__" in vars(klass)]
    for position, init in enumerate(inits):
        signature = inspect.signature(init).parameters.values()
        own = [
            parameter
            for parameter in signature
            if parameter.name not in _RUNNER_ARGUMENTS
            and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        if position and not own:
            return parameters, True
        for parameter in own:
            parameters.setdefault(parameter.name, parameter)  # a subclass's default wins
        if not any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in signature):
            return parameters, False
    return parameters, True


def checked_agent_option(entry: str, name: str, parameter: str, value: Any) -> Any:
    """``value`` for ``name``'s ``parameter`` (a list made a tuple where the default is
    one), or a ConfigError naming ``entry``."""
    agent_class = AGENTS[name]
    if parameter == "train_slates":
        if not agent_class.trains_before_evaluation:
            raise ConfigError(f"{entry}: {name} does not train before evaluation (it has no train_slates)")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{entry}: train_slates must be an int >= 1, got {value!r}")
        return value
    accepted, takes_others = agent_hyperparameters(agent_class)
    if parameter not in accepted:
        if takes_others and parameter not in _RUNNER_ARGUMENTS:
            return value  # checked when the agent is built (check_agent_options)
        names = [*accepted, *(["train_slates"] if agent_class.trains_before_evaluation else [])]
        takes = ", ".join(names) if names else "no hyperparameters"
        set_by_runner = " (the runner sets it: --seeds, --device)" if parameter in _RUNNER_ARGUMENTS else ""
        raise ConfigError(f"{entry}: {name} does not take {parameter!r}{set_by_runner}; it takes {takes}")
    default = accepted[parameter].default
    if default is inspect.Parameter.empty or default is None:
        return value
    if value is None and "None" in str(accepted[parameter].annotation):
        return value
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "True or False"
    elif isinstance(default, int):
        ok, kind = number and isinstance(value, int), "an int"
    elif isinstance(default, float):
        ok, kind = number, "a number"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "a string"
    elif isinstance(default, tuple):
        ok, kind = isinstance(value, tuple | list), "a tuple, e.g. (1, 2)"
        value = tuple(value) if ok else value
    else:
        ok, kind = True, ""
    if not ok:
        raise ConfigError(f"{entry}: {name}.{parameter} takes {kind} (default {default!r}), got {value!r}")
    return value


def parse_env_options(entries: tuple[str, ...] | list[str], where: str) -> dict[str, Any]:
    """``KEY=VALUE`` entries as a dict of values (Python literals, else strings); each
    key must be a ShopperConfig field."""
    options: dict[str, Any] = {}
    for entry in entries:
        key, equals, text = (part.strip() for part in entry.partition("="))
        if not (equals and key.isidentifier() and text):
            raise ConfigError(f"{where}: {entry!r} is not KEY=VALUE (as slate_size=3)")
        if key not in CONFIG_FIELDS:
            raise ConfigError(
                f"{where} {entry!r}: {key!r} is not an environment option; "
                f"options: {', '.join(CONFIG_FIELDS)}"
            )
        if key in options:
            raise ConfigError(f"{where} {entry!r}: {key} is given twice")
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            options[key] = text
    return options


def shopper_config(env: str, options: dict[str, Any], where: str) -> ShopperConfig:
    """The ShopperConfig of preset ``env`` with ``options`` over its own (a ConfigError
    naming ``where`` for an unknown field or a value the config rejects)."""
    unknown = sorted(set(options) - set(CONFIG_FIELDS))
    if unknown:
        raise ConfigError(
            f"{where}: {unknown} are not environment options; options: {', '.join(CONFIG_FIELDS)}"
        )
    spec_options = gym.spec(env).kwargs
    merged = {key: spec_options[key] for key in CONFIG_FIELDS if key in spec_options} | options
    if isinstance(merged.get("position_logits"), list):
        merged["position_logits"] = tuple(merged["position_logits"])
    try:
        return ShopperConfig(**merged)
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {env} rejects these options ({' '.join(str(exc).split())})") from exc


def check_agent_options(config: RunConfig, world: World, device: torch.device) -> None:
    """Build every agent that has options once, so that a value its constructor rejects
    is an error before anything runs (a ConfigError naming the entries)."""
    for name in config.agent_names():
        kwargs = config.agent_kwargs(name)
        if not kwargs:
            continue
        env = make_env(_agent_run(config, name, 0), world, device, "test", AGENTS[name].needs_oracle)
        try:
            with torch.random.fork_rng(devices=[]):
                make_agent(name, env.single_observation_space, env.single_action_space, 0, device, **kwargs)
        except (ConfigError, TypeError, ValueError) as exc:
            entries = " ".join(repr(e) for e in config.agent_options if e.strip().startswith(f"{name}."))
            detail = " ".join(str(exc).split())  # one line
            raise ConfigError(f"--agent-options {entries}: {name} rejects these settings ({detail})") from exc


def run_experiment(config: RunConfig) -> Path:
    """Run (or resume) the experiment; returns the run directory."""
    config.validate()
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _run_experiment(config)
    finally:
        torch.set_num_threads(threads)


def _run_experiment(config: RunConfig) -> Path:
    names = config.agent_names()
    device = resolve_device(config.device)
    world = _world_for(config, device)
    check_agent_options(config, world, device)
    out = config.out or Path("runs") / f"{config.env.replace('/', '-')}__{datetime.now():%Y%m%d-%H%M%S}"
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} exists and is not a directory")
    try:
        (out / "records").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out: cannot create {out} ({exc})") from exc
    _write_or_check_config(out, config, names, world, device)
    _print(f"World {world.card.get('name', '?')} (hash {world.hash}); run directory {out}")

    pending = [(n, s) for n in names for s in range(config.seeds) if not _record_path(out, n, s).is_file()]
    if len(pending) < len(names) * config.seeds:
        done = len(names) * config.seeds - len(pending)
        _print(f"resuming: {done} (agent, seed) runs already recorded")
    bar = tqdm(pending, desc="runs", disable=not config.progress, file=sys.stderr)
    for name, seed in bar:
        bar.set_postfix_str(f"{name} seed {seed}")
        _run_one(config, world, device, name, seed, out)

    episodes = pd.concat(
        [_read_records(_record_path(out, n, s)) for n in names for s in range(config.seeds)],
        ignore_index=True,
    )
    _atomic_csv(episodes, out / "episodes.csv")
    summary = summarize(episodes)
    _atomic_csv(summary, out / "summary.csv")
    plot_reward_curves(episodes, out / "reward_curve.png")
    written = [out / "episodes.csv", out / "summary.csv", out / "reward_curve.png"]
    curve_paths = [_curve_path(out, n, s) for n in names for s in range(config.seeds)]
    curves = [_read_curve(path) for path in curve_paths if path.is_file()]
    if curves:
        curves = pd.concat(curves, ignore_index=True)
        _atomic_csv(curves, out / "curves.csv")
        plot_learning_curves(curves, out / "learning_curve.png")
        written += [out / "curves.csv", out / "learning_curve.png"]
    features = json.loads((out / "config.json").read_text())["shopper_config"]["item_features"]
    _print(
        f"\n{config.env} (item features: {features}), {config.seeds} seeds x {config.episodes} episodes "
        "on held-out shoppers (mean and 95% Student-t interval over seeds)\n"
    )
    _print(format_table(summary))
    _print(f"\nwrote {', '.join(str(path) for path in written)}")
    return out


def _world_for(config: RunConfig, device: torch.device) -> World:
    preset = gym.spec(config.env).kwargs.get("world")
    if config.world is None:
        return resolve_world(preset, device, progress=config.progress)
    try:
        return resolve_world(config.world, device, progress=config.progress)
    except DataError as exc:
        raise ConfigError(f"--world: {exc}") from exc


def _agent_run(config: RunConfig, name: str, seed: int) -> AgentRun:
    """What the run of agent ``name`` for ``seed`` does."""
    return AgentRun(
        env=config.env,
        agent=name,
        seed=seed,
        episodes=config.episodes,
        train_slates=config.train_budget(name),
        num_envs=config.num_envs,
        curve_points=config.curve_points,
        curve_episodes=config.curve_episodes,
        env_options=config.environment_options(),
        agent_options=config.agent_kwargs(name),
    )


def _run_one(config: RunConfig, world: World, device: torch.device, name: str, seed: int, out: Path) -> None:
    progress = sys.stderr if config.progress else None
    result = run_agent(_agent_run(config, name, seed), world, device, progress=progress)
    meta = {
        "agent": result.meta["agent"],
        "seed": seed,
        "options": _jsonable(config.options()[name]),
        "code": code_version(),
        **{key: value for key, value in result.meta.items() if key != "agent"},
    }
    records = result.records
    records.insert(0, "seed", seed)
    records.insert(0, "agent", name)
    # The .json and the curve first: a records .csv marks the (agent, seed) done, so it is
    # written last.
    atomic_write(_record_path(out, name, seed).with_suffix(".json"), json.dumps(meta, indent=2))
    if result.curve is not None:
        curve = result.curve
        curve.insert(0, "seed", seed)
        curve.insert(0, "agent", name)
        _atomic_csv(curve, _curve_path(out, name, seed))
    if result.training is not None:
        _atomic_csv(result.training, _record_path(out, name, seed).with_suffix(".training.csv"))
    _atomic_csv(records, _record_path(out, name, seed))


def _read_records(path: Path) -> pd.DataFrame:
    try:
        records = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable records ({exc}); delete it to rerun that (agent, seed)") from exc
    missing = sorted({"agent", "seed", "episode", "round", *RECORD_COLUMNS} - set(records.columns))
    if missing:
        raise DataError(f"{path}: records lack columns {missing}; delete it to rerun that (agent, seed)")
    return records


def _has_records(out: Path, name: str) -> bool:
    """Whether ``out`` holds finished records of agent ``name`` (of any seed)."""
    pattern = re.compile(rf"{re.escape(name)}__seed\d+\.csv")
    return any(pattern.fullmatch(path.name) for path in (out / "records").iterdir())


def _record_path(out: Path, name: str, seed: int) -> Path:
    return out / "records" / f"{name}__seed{seed}.csv"


def _curve_path(out: Path, name: str, seed: int) -> Path:
    return out / "records" / f"{name}__seed{seed}.curve.csv"


def _read_curve(path: Path) -> pd.DataFrame:
    try:
        curve = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable learning curve ({exc}); delete it and its records") from exc
    missing = sorted({"agent", "seed", *CURVE_COLUMNS} - set(curve.columns))
    if missing:
        raise DataError(f"{path}: learning curve lacks columns {missing}")
    return curve


# Options that change what a recorded episode means; a resumed run must match them.
# The agents' options (--agent-options) too, per agent: config.json's "agent_options"
# holds those of every agent run in the directory.
_RESUME_KEYS = (
    "env",
    "episodes",
    "train_slates",
    "num_envs",
    "world",
    "curve_points",
    "curve_episodes",
    "env_options",
)


def _jsonable(value: Any) -> Any:
    """``value`` as config.json holds it (tuples as lists), for comparisons with it."""
    return json.loads(json.dumps(value, default=str))


def _settings(name: str, options: dict[str, Any], config: RunConfig) -> dict[str, Any]:
    """Agent ``name``'s ``options`` with the defaults of the others (an option given its
    default value changes nothing), as config.json holds them."""
    parameters, _ = agent_hyperparameters(AGENTS[name])
    defaults = {key: p.default for key, p in parameters.items() if p.default is not inspect.Parameter.empty}
    if AGENTS[name].trains_before_evaluation:
        defaults["train_slates"] = config.train_slates
    return _jsonable(defaults | options)


def _format_options(options: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in options.items()) or "none (the defaults)"


def _write_or_check_config(
    out: Path, config: RunConfig, names: list[str], world: World, device: torch.device
) -> None:
    """Write config.json, or check that a resumed run's records mean what the new ones
    would, then rewrite it to describe this invocation (the earlier ones under ``history``)."""
    path = out / "config.json"
    options = _jsonable({name: config.options()[name] for name in names})
    document = {
        "run": _jsonable({k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}),
        "world": {
            "hash": world.hash,
            "name": world.card.get("name"),
            "data": world.card.get("data"),
            "fit_test_metrics": world.card.get("fit", {}).get("test_metrics"),
            "calibration": world.ground_truth()["calibration"],
        },
        "shopper_config": shopper_config(config.env, config.environment_options(), "--env-options").to_dict(),
        "env_options": _jsonable(config.environment_options()),
        "agent_options": options,
        "evaluation": {"shoppers": "test (held out from training)", "train_shoppers": "train"},
        "seeding": {
            "agent": "s",
            "evaluation_env": "s",
            "training_env": f"{TRAIN_SEED_OFFSET} + s",
            "learning_curve_env": f"{CURVE_SEED_OFFSET} + s",
        },
        "device": device_name(device),
        "code": code_version(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "gymnasium": gym.__version__,
        },
        "command": sys.argv,
        "written": datetime.now().isoformat(timespec="seconds"),
    }
    if not path.is_file():
        if any((out / "records").glob("*.csv")):
            raise ConfigError(f"{out} holds records but no config.json; choose another --out")
        atomic_write(path, json.dumps(document, indent=2, default=str))
        return
    # Resuming: the recorded episodes must mean the same as the new ones would.
    try:
        previous = json.loads(path.read_text())
        # A key that an older run did not record had its default then.
        defaults = _jsonable(asdict(RunConfig()))
        recorded = {key: previous["run"].get(key, defaults[key]) for key in _RESUME_KEYS}
        recorded_world = previous["world"]["hash"]
        recorded_device = device_name(previous["device"])
        # An older run had no agent options: its agents ran with their defaults.
        recorded_options = dict(previous.get("agent_options", {}))
        recorded_code = previous.get("code", {}).get("source")
        history = [*previous.get("history", []), {k: v for k, v in previous.items() if k != "history"}]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); choose another --out") from exc
    for key in _RESUME_KEYS:
        if recorded[key] != document["run"][key]:
            raise ConfigError(
                f"{out} holds a run with {key}={recorded[key]!r}, not {document['run'][key]!r}; "
                "choose another --out to keep both"
            )
    if recorded_world != world.hash:
        raise ConfigError(f"{out} was recorded on World {recorded_world}, not {world.hash}")
    if recorded_device != document["device"]:
        # Random streams differ between devices, so records would not be comparable.
        raise ConfigError(f"{out} was recorded on device {recorded_device}, not {document['device']}")
    if recorded_code != document["code"]["source"] and not config.allow_code_change:
        raise ConfigError(
            f"{out} holds records of other code (source {recorded_code}, this is "
            f"{document['code']['source']}); choose another --out, or resume with --allow-code-change "
            "(config.json's history then says which records came from which code)"
        )
    for name in names:
        recorded = recorded_options.get(name, {})
        # Only records make a difference: an agent without any takes the new options.
        changed = _settings(name, recorded, config) != _settings(name, options[name], config)
        if changed and _has_records(out, name):
            raise ConfigError(
                f"{out} holds {name} records with agent options {_format_options(recorded)}, not "
                f"{_format_options(options[name])}; choose another --out to keep both"
            )
    # The options of every agent run in the directory (those of agents not run now kept).
    document["agent_options"] = recorded_options | options
    atomic_write(path, json.dumps(document | {"history": history}, indent=2, default=str))


def _atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, frame.to_csv(index=False))


def _print(text: str) -> None:
    print(text, flush=True)
