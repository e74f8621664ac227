"""Experiment files: TOML that names agents (with hyperparameters), presets (with
environment options), seeds and budgets, read into frozen dataclasses and expanded
into runs (preset x agent x seed).

A file (the shipped ones are in ``experiments/configs/``)::

    name = "rl-vs-static"
    description = "What the comparison answers."
    seeds = 10                # 0 .. 9; or a list such as [0, 1, 5]
    episodes = 500            # evaluation episodes (held-out shoppers) per run
    train_slates = 40000      # budget of agents that train first, unless an agent sets its own
    curve_points = 5

    [[presets]]
    env = "shopgym/Shopper-v1"
    label = "shopper"                     # default: the ID without "shopgym/"
    options = { money = 10.0 }            # ShopperConfig fields over the preset's
    sweep = { boredom_weight = [0.0, 1.5] }   # one preset per value (product of several)

    [[agents]]
    name = "ppo"
    train_slates = 100000
    options = { n_epochs = 8 }
    sweep = { learning_rate = [1e-3, 3e-4] }  # one agent per value

    [smoke]                               # what --smoke changes: a quick version of the file
    seeds = 2
    episodes = 50
    train_slates = 2000                   # every agent's budget in the smoke version
    agents = ["random", "ppo"]            # optional: the labels kept

Every key of the file is a field of :class:`ExperimentConfig`, :class:`PresetSpec`,
:class:`AgentSpec` or :class:`SmokeSpec` (their docstrings document them); an unknown
key, a value of the wrong type or an unknown agent, environment or option is a
:class:`ConfigError` naming the file and the key.
"""

from __future__ import annotations

import ast
import itertools
import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import gymnasium as gym

from shopgym.agents import AGENTS
from shopgym.experiments.agent_run import MAX_SEED, AgentRun, check_seed
from shopgym.experiments.runner import checked_agent_option, shopper_config
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError


@dataclass(frozen=True)
class PresetSpec:
    """An environment preset with options: one ``[[presets]]`` table."""

    env: str
    """Registered environment ID (``shopgym envs`` lists them)."""
    label: str = ""
    """Its name in results (default: the ID without ``shopgym/``, and the swept values)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Environment options (ShopperConfig fields) over the preset's."""
    sweep: dict[str, list] = field(default_factory=dict)
    """Options to sweep: one preset per combination of their values."""


@dataclass(frozen=True)
class AgentSpec:
    """An agent with hyperparameters: one ``[[agents]]`` table."""

    name: str
    """Agent name (``shopgym agents`` lists them)."""
    label: str = ""
    """Its name in results (default: the name, and the swept values); unique in a file."""
    train_slates: int | None = None
    """Its training budget in slates (default: the file's ``train_slates``)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Constructor hyperparameters (``shopgym agents NAME`` lists them)."""
    sweep: dict[str, list] = field(default_factory=dict)
    """Hyperparameters to sweep: one agent per combination of their values."""


@dataclass(frozen=True)
class SmokeSpec:
    """The ``[smoke]`` table: what ``--smoke`` changes, for a run of a minute or two."""

    seeds: int | list[int] = 2
    """Seeds of the smoke version: a count or a list."""
    episodes: int = 50
    """Evaluation episodes per run."""
    train_slates: int = 2_000
    """Every agent's training budget in the smoke version (agents' own budgets are dropped)."""
    curve_points: int = 2
    """Learning-curve points of agents that train first (0: none)."""
    curve_episodes: int = 50
    """Held-out episodes per learning-curve point."""
    agents: list[str] = field(default_factory=list)
    """Labels of the agents kept (default: all)."""


@dataclass(frozen=True)
class ExperimentConfig:
    """An experiment: presets x agents x seeds, each run trained on train shoppers and
    evaluated on held-out ones."""

    presets: list[PresetSpec]
    """The environments (``[[presets]]`` tables)."""
    agents: list[AgentSpec]
    """The agents (``[[agents]]`` tables)."""
    name: str = "experiment"
    """A short name (the default output folder is ``runs/compare/<name>``)."""
    description: str = ""
    """What the experiment answers (the report's first paragraph)."""
    seeds: int | list[int] = 10
    """Seeds: a count n (0 .. n-1) or a list; each below 10,000."""
    episodes: int = 500
    """Evaluation episodes (sessions of held-out shoppers) per run."""
    train_slates: int = 40_000
    """Training budget in slates of agents that train before evaluation."""
    num_envs: int = 50
    """Shoppers simulated in parallel."""
    curve_points: int = 5
    """Learning-curve points of agents that train first (0: none)."""
    curve_episodes: int = 100
    """Held-out episodes per learning-curve point."""
    device: str = "auto"
    """Torch device: auto (cuda if available), cpu or cuda."""
    world: str | None = None
    """A saved World folder, "default" or "synthetic", instead of each preset's own."""
    threads: int = 1
    """Torch intra-op threads per worker."""
    smoke: SmokeSpec = field(default_factory=SmokeSpec)
    """The quick version (``--smoke``)."""

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def smoke_version(self) -> ExperimentConfig:
        """This experiment with the ``[smoke]`` table's settings."""
        smoke = self.smoke
        agents = [replace(agent, train_slates=None) for agent in self.agents]
        if smoke.agents:
            known = {agent.label for agent in expand_agents(self.agents)}
            unknown = sorted(set(smoke.agents) - known)
            if unknown:
                raise ConfigError(
                    f"smoke.agents: {unknown} are not agent labels of the file ({sorted(known)})"
                )
            agents = [a for a in expand_agents(agents) if a.label in smoke.agents]
        return replace(
            self,
            name=f"{self.name}-smoke",
            agents=agents,
            seeds=smoke.seeds,
            episodes=smoke.episodes,
            train_slates=smoke.train_slates,
            curve_points=smoke.curve_points,
            curve_episodes=smoke.curve_episodes,
        )


@dataclass(frozen=True)
class RunSpec:
    """One run of an experiment: a preset, an agent and a seed."""

    preset: str
    """The preset's label."""
    agent: str
    """The agent's label."""
    run: AgentRun

    @property
    def name(self) -> str:
        """The run's folder name: ``<preset>__<agent>__seed<s>``."""
        return f"{self.preset}__{self.agent}__seed{self.run.seed}"


CONFIGS = Path(__file__).parent / "configs"


def experiment_path(name: str | Path) -> Path:
    """``name`` as a path when it is a file, else a shipped experiment's file when it is
    a bare name of one (``smoke`` is ``experiments/configs/smoke.toml``, even where a
    folder ``smoke`` exists, such as the output of ``--out smoke``)."""
    path = Path(name)
    shipped = CONFIGS / f"{path.name.removesuffix('.toml')}.toml"
    return shipped if not path.is_file() and path.parent == Path() and shipped.is_file() else path


def load_experiment(path: str | Path, smoke: bool = False, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The checked ExperimentConfig of a TOML file (its smoke version with ``smoke``),
    with ``overrides`` (``KEY=VALUE`` entries, :func:`apply_overrides`) applied last."""
    path = experiment_path(path)
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such experiment file") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable TOML file ({exc})") from exc
    config = _build(ExperimentConfig, document, f"{path}")
    config = config.smoke_version() if smoke else config
    check_experiment(config, str(path))
    if overrides:
        config = apply_overrides(config, overrides)
        check_experiment(config, f"{path} with --set")
    return config


def apply_overrides(config: ExperimentConfig, entries: Sequence[str]) -> ExperimentConfig:
    """``config`` with ``KEY=VALUE`` entries for its top-level settings, each value a
    Python literal (``seeds=3``, ``seeds=[0, 5]``, ``world=None``) or else a string,
    checked as the file's values are."""
    hints = typing.get_type_hints(ExperimentConfig)
    settable = [name for name in hints if name not in ("presets", "agents", "smoke")]
    changes = {}
    for entry in entries:
        key, equals, text = (part.strip() for part in entry.partition("="))
        if not equals or key not in settable:
            raise ConfigError(f"--set {entry!r}: give KEY=VALUE with KEY one of {', '.join(settable)}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        changes[key] = _convert(hints[key], value, f"--set {key}")
    return replace(config, **changes)


def check_experiment(config: ExperimentConfig, where: str) -> None:
    """A ConfigError naming ``where`` and the key for anything a run would reject."""
    if not config.presets or not config.agents:
        raise ConfigError(f"{where}: an experiment needs at least one [[presets]] and one [[agents]] table")
    if isinstance(config.seeds, int) and config.seeds < 1:
        raise ConfigError(f"{where}: seeds: a count of seeds must be >= 1, got {config.seeds}")
    seeds = config.seed_list()
    if not seeds:
        raise ConfigError(f"{where}: seeds: give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}: seeds: {seeds} names a seed twice")
    if isinstance(config.seeds, int) and config.seeds > MAX_SEED:
        raise ConfigError(f"{where}: seeds: at most {MAX_SEED}, got {config.seeds}")
    for seed in seeds:
        check_seed(seed, f"{where}: seeds")
    for key in ("episodes", "train_slates", "num_envs", "curve_episodes", "threads"):
        if getattr(config, key) < 1:
            raise ConfigError(f"{where}: {key} must be >= 1, got {getattr(config, key)}")
    if config.curve_points < 0:
        raise ConfigError(f"{where}: curve_points must be >= 0, got {config.curve_points}")
    try:
        resolve_device(config.device)
    except ConfigError as exc:
        raise ConfigError(f"{where}: device: {str(exc).removeprefix('--device: ')}") from exc
    presets = expand_presets(config.presets, where)
    agents = expand_agents(config.agents, where)
    for kind, labels in (("preset", [p.label for p in presets]), ("agent", [a.label for a in agents])):
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ConfigError(f"{where}: {kind} labels {twice} are used twice; give each a distinct label")
        bad = [label for label in labels if not label or "__" in label or "/" in label]
        if bad:
            raise ConfigError(f"{where}: {kind} labels {bad} may not be empty or hold '__' or '/'")


def expand_presets(presets: list[PresetSpec], where: str = "presets") -> list[PresetSpec]:
    """Each preset once per combination of its swept options (labels name the values),
    its environment and options checked."""
    expanded = []
    for index, preset in enumerate(presets):
        key = f"{where}: presets[{index}]"
        if preset.env not in gym.registry:
            known = sorted(env_id for env_id in gym.registry if env_id.startswith("shopgym/"))
            raise ConfigError(f"{key}.env: unknown environment {preset.env!r}; available: {', '.join(known)}")
        if not str(gym.spec(preset.env).entry_point).startswith("shopgym.envs.shopper:"):
            raise ConfigError(f"{key}.env: {preset.env} is not a shopper preset (the runner evaluates those)")
        base = preset.label or preset.env.removeprefix("shopgym/")
        for combination in _combinations(preset.sweep, f"{key}.sweep"):
            options = {**preset.options, **combination}
            shopper_config(preset.env, options, f"{key}.options")
            label = base + "".join(f"[{k}={v}]" for k, v in combination.items())
            expanded.append(replace(preset, label=label, options=options, sweep={}))
    return expanded


def expand_agents(agents: list[AgentSpec], where: str = "agents") -> list[AgentSpec]:
    """Each agent once per combination of its swept hyperparameters, checked against
    its constructor's signature."""
    expanded = []
    for index, agent in enumerate(agents):
        key = f"{where}: agents[{index}]"
        if agent.name not in AGENTS:
            raise ConfigError(f"{key}.name: unknown agent {agent.name!r}; available: {', '.join(AGENTS)}")
        if agent.train_slates is not None:
            if not AGENTS[agent.name].trains_before_evaluation:
                raise ConfigError(f"{key}.train_slates: {agent.name} does not train before evaluation")
            if agent.train_slates < 1:
                raise ConfigError(f"{key}.train_slates must be >= 1, got {agent.train_slates}")
        base = agent.label or agent.name
        for combination in _combinations(agent.sweep, f"{key}.sweep"):
            options = {**agent.options, **combination}
            for parameter, value in options.items():
                entry = f"{key}.options.{parameter} = {value!r}"
                options[parameter] = checked_agent_option(entry, agent.name, parameter, value)
            label = base + "".join(f"[{k}={v}]" for k, v in combination.items())
            expanded.append(replace(agent, label=label, options=options, sweep={}))
    return expanded


def expand_runs(config: ExperimentConfig) -> list[RunSpec]:
    """Every (preset, agent, seed) run, preset-major, then agent, then seed.

    The training budget and learning-curve settings of an agent that does not train
    first are 0: they do not change its numbers, so a rerun with a larger budget keeps
    its finished runs."""
    runs = []
    for preset in expand_presets(config.presets):
        for agent in expand_agents(config.agents):
            trains = AGENTS[agent.name].trains_before_evaluation
            for seed in config.seed_list():
                run = AgentRun(
                    env=preset.env,
                    agent=agent.name,
                    seed=seed,
                    episodes=config.episodes,
                    train_slates=(agent.train_slates or config.train_slates) if trains else 0,
                    num_envs=config.num_envs,
                    curve_points=config.curve_points if trains else 0,
                    curve_episodes=config.curve_episodes if trains else 0,
                    env_options=preset.options,
                    agent_options=agent.options,
                )
                runs.append(RunSpec(preset.label, agent.label, run))
    return runs


def to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The config as JSON holds it (every field, defaults filled)."""
    return asdict(config)


def _combinations(sweep: dict[str, list], where: str) -> list[dict[str, Any]]:
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.{key}: a sweep takes a non-empty list of values, got {values!r}")
    keys = list(sweep)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*sweep.values())]


def _build(cls: type, document: Any, where: str) -> Any:
    """An instance of dataclass ``cls`` from a TOML table, every key checked."""
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: expected a table, got {document!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(document) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; {cls.__name__} takes {', '.join(known)}")
    values = {}
    for name, spec in known.items():
        key = f"{where}: {name}" if ":" not in where else f"{where}.{name}"
        if name not in document:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise ConfigError(f"{key}: missing (required)")
            continue
        values[name] = _convert(hints[name], document[name], key)
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    """``value`` checked against the type ``hint`` (dataclasses, lists, dicts, unions, scalars)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return _build(hint, value, key)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _convert(option, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(hint)}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_convert(args[0], item, f"{key}[{index}]") for index, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return {k: _convert(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{key}: expected nothing, got {value!r}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {_type_name(hint)}, got {value!r}")
    return value


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
