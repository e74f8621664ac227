"""``shopgym compare FILE``: an experiment file expanded into runs (preset x agent x
seed), run in parallel worker processes (or Ray tasks), resumable, then metrics,
intervals, figures and a report from the records alone.

The experiment directory (``--out``, default ``runs/compare/<name>``)::

    experiment.toml, experiment.json   the file as given; its resolved config, the code, the device
    world.json                         the Worlds the presets ran on (hash, folder, card)
    runs/<preset>__<agent>__seed<s>/   one finished run: config.json (what it ran), records.csv
                                       (per episode), items.csv (items shown), curve.csv (learning
                                       curve), training.csv (the agent's training log: losses
                                       along training), meta.json (training data, wall times),
                                       log.txt
    episodes.csv, curves.csv, items.csv, training.csv   every run's records with preset, agent, seed
    scores.csv, summary.csv, improvement.csv   per-seed metrics, intervals, P(improvement)
    figures/, report.md, report.html

Nothing is lost or half-written: a run's folder appears whole, by a rename, only when
it has finished, and the tables are rewritten atomically from the run folders. A
rerun skips the finished runs (checking that they ran what the file asks, on the same
World, device and code), so a killed comparison resumes where it stopped. One
comparison at a time holds a directory (a lock the operating system releases when its
holder dies, even by SIGKILL); a second is refused with the holder's PID.

Workers load each World from its folder and check its hash; nothing is fitted again.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Annotated, Any, Literal

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
import tyro
from tqdm.auto import tqdm

from shopgym.agents import AGENTS, make_agent
from shopgym.experiments.agent_run import AgentRun, make_env, run_agent
from shopgym.experiments.atomic import atomic_write
from shopgym.experiments.experiment import (
    ExperimentConfig,
    RunSpec,
    expand_agents,
    expand_presets,
    expand_runs,
    experiment_path,
    load_experiment,
)
from shopgym.experiments.provenance import code_version, device_name
from shopgym.simulator.build import resolve_world, shipped_world_path
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError, DataError
from shopgym.simulator.world import World

# The tables an experiment has only with some agents or presets.
OPTIONAL_TABLES = ("items.csv", "curves.csv", "training.csv", "overall.csv")
SHIPPED = "shipped"  # the World folder of the shipped default World, wherever it is installed


@dataclass(frozen=True)
class CompareConfig:
    """Run an experiment file: every preset x agent x seed, then tables, figures and a report."""

    file: Annotated[Path, tyro.conf.Positional]
    """The experiment file (TOML), or the name of a shipped one (smoke, default, all_agents, ...)."""
    out: Path | None = None
    """Experiment directory (default: runs/compare/<name>). An existing one is resumed."""
    workers: int = 1
    """Runs in parallel: worker processes (local) or concurrent Ray tasks (ray; 0: as many as Ray runs)."""
    backend: Literal["local", "ray"] = "local"
    """Where runs execute: local processes, or Ray tasks (pip install shopgym[ray])."""
    ray_address: str | None = None
    """Ray cluster to join (as ray.init's address, e.g. ray://head:10001 or auto); default: a local Ray."""
    ray_gpus_per_run: float | None = None
    """GPUs each Ray task asks for on a CUDA device (default 0.25: four runs per GPU)."""
    smoke: bool = False
    """Run the file's [smoke] version (a quick check of the whole pipeline)."""
    set: tuple[str, ...] = ()
    """Override top-level settings of the file (of its smoke version with --smoke): KEY=VALUE ...
    (as seeds=3 episodes=100)."""
    allow_code_change: bool = False
    """Resume although finished runs were made by other code (each run's config.json says which)."""
    quiet: bool = False
    """No progress bars (for CI); results are still printed."""
    report: bool = True
    """Write figures and report.md / report.html at the end."""
    tensorboard: bool = False
    """Also write TensorBoard logs (OUT/tensorboard): learning curves and final metrics per run
    (pip install tensorboard)."""


def compare(config: CompareConfig) -> Path:
    """Run (or resume) the comparison; returns the experiment directory."""
    config = replace(config, file=experiment_path(config.file))
    experiment = load_experiment(config.file, smoke=config.smoke, overrides=config.set)
    if config.ray_gpus_per_run is not None and not config.ray_gpus_per_run > 0:
        raise ConfigError(f"--ray-gpus-per-run must be > 0, got {config.ray_gpus_per_run}")
    if config.workers < 0 or (config.workers == 0 and config.backend == "local"):
        raise ConfigError(f"--workers must be >= 1 (0 only with --backend ray), got {config.workers}")
    out = config.out or Path("runs") / "compare" / experiment.name
    try:
        (out / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out: cannot create {out} ({exc})") from exc
    with directory_lock(out):
        return _compare(config, experiment, out)


def _compare(config: CompareConfig, experiment: ExperimentConfig, out: Path) -> Path:
    device = resolve_device(experiment.device)
    worlds = _worlds(experiment, device, out)
    runs = expand_runs(experiment)
    _check_agent_options(runs, worlds, device)
    code = code_version()
    pending = []
    for spec in runs:
        expected = _run_config(spec, worlds[spec.preset]["hash"], device, code, experiment.threads)
        if _check_finished(out / "runs" / spec.name, expected, config.allow_code_change):
            continue
        pending.append((spec, expected))
    # Only now, when the finished runs are known to be this experiment's, is the
    # directory's description rewritten: a refused resume leaves it as it was.
    _write_experiment(out, config, experiment, worlds, device, code)
    for partial in (out / "runs").glob(".partial-*"):
        shutil.rmtree(partial)  # a run killed while its folder was being written
    _print(f"{len(runs)} runs ({len(runs) - len(pending)} already finished) in {out}", config.quiet)
    tasks = [
        Task(spec.name, asdict(spec.run), worlds[spec.preset]["folder"], worlds[spec.preset]["hash"])
        for spec, _ in pending
    ]
    expected_of = {spec.name: expected for spec, expected in pending}
    bar = tqdm(total=len(tasks), desc="runs", disable=config.quiet, file=sys.stderr)
    if config.backend == "ray":
        execute = _ray_executor(config)
    else:
        execute = _local_executor(config.workers, progress=not config.quiet)
    for name, files in execute(tasks, str(device), experiment.threads):
        _check_worker_code(name, files, expected_of[name], config.allow_code_change)
        # The code that made the run, which differs from this one's only with --allow-code-change.
        made_by = {key: json.loads(files["meta.json"])[key] for key in ("code", "libraries")}
        _publish_run(out / "runs", name, files, expected_of[name] | made_by)
        bar.update()
        bar.set_postfix_str(name)
    bar.close()
    aggregate(out, runs, quiet=config.quiet, report=config.report)
    if config.tensorboard:
        write_tensorboard(out)
    return out


# ---------------------------------------------------------------- the directory


@contextlib.contextmanager
def directory_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` (flock: released by the kernel when the holder exits, even by
    SIGKILL); a ConfigError when another process holds it."""
    handle = open(out / ".lock", "a+")  # noqa: SIM115 (held for the whole block)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise ConfigError(
                f"{out} is in use by another shopgym compare (pid {holder}); wait for it to finish "
                "or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def _write_experiment(
    out: Path,
    config: CompareConfig,
    experiment: ExperimentConfig,
    worlds: dict[str, dict],
    device: torch.device,
    code: dict,
) -> None:
    """experiment.json describes this invocation (earlier ones kept under ``history``)."""
    path = out / "experiment.json"
    history = []
    if path.is_file():
        try:
            previous = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path} is unreadable ({exc}); choose another --out") from exc
        if not isinstance(previous, dict) or not isinstance(previous.get("history", []), list):
            raise ConfigError(
                f"{path} is not an experiment description (a JSON object); choose another --out"
            )
        history = [*previous.pop("history", []), previous]
    presets = expand_presets(experiment.presets)
    from shopgym.experiments.runner import shopper_config

    document = {
        "name": experiment.name,
        "description": experiment.description,
        "file": str(config.file),
        "smoke": config.smoke,
        "overrides": list(config.set),
        "experiment": asdict(experiment),
        "presets": [
            {
                "label": preset.label,
                "env": preset.env,
                "options": preset.options,
                "shopper_config": shopper_config(preset.env, preset.options, preset.label).to_dict(),
                "world_hash": worlds[preset.label]["hash"],
            }
            for preset in presets
        ],
        "agents": [
            {
                "label": agent.label,
                "name": agent.name,
                "options": agent.options,
                "train_slates": (agent.train_slates or experiment.train_slates)
                if AGENTS[agent.name].trains_before_evaluation
                else None,
            }
            for agent in expand_agents(experiment.agents)
        ],
        "seeds": experiment.seed_list(),
        "code": code,
        "device": device_name(device),
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "gymnasium": gym.__version__,
        },
        "command": sys.argv,
        "written": datetime.now().isoformat(timespec="seconds"),
        "history": history,
    }
    atomic_write(path, _json(document))
    atomic_write(out / "experiment.toml", Path(config.file).read_text())
    atomic_write(out / "world.json", _json({label: world for label, world in worlds.items()}))


def _worlds(experiment: ExperimentConfig, device: torch.device, out: Path) -> dict[str, dict]:
    """Per preset label: the World it runs on as a folder a worker loads (``folder``,
    ``hash``, ``card``). A World built in memory (``synthetic``) is saved under
    ``out/worlds/<hash>`` first; the shipped one is read from the package."""
    resolved: dict[str, dict] = {}
    worlds: dict[str, dict] = {}
    for preset in expand_presets(experiment.presets):
        name = experiment.world if experiment.world is not None else gym.spec(preset.env).kwargs.get("world")
        key = str(name)
        if key not in resolved:
            try:
                world = resolve_world(name, device, progress=False)
            except DataError as exc:
                raise ConfigError(f"world {name!r} of preset {preset.label}: {exc}") from exc
            if name in (None, "default"):
                folder = SHIPPED  # each worker (or Ray node) finds it in its own installation
            elif name == "synthetic":
                folder = out / "worlds" / world.hash
                if not (folder / "card.json").is_file():
                    world.save(folder)
            else:
                folder = Path(name)
            folder = folder if folder == SHIPPED else str(Path(folder).resolve())
            resolved[key] = {"folder": folder, "hash": world.hash, "card": world.card}
        worlds[preset.label] = resolved[key]
    return worlds


def _check_agent_options(runs: list[RunSpec], worlds: dict[str, dict], device: torch.device) -> None:
    """Build each agent that has options once per preset, so that a value its constructor
    rejects is an error before any run starts."""
    checked = set()
    for spec in runs:
        key = (spec.preset, spec.agent)
        if key in checked or not spec.run.agent_options:
            continue
        checked.add(key)
        world = _load_world(worlds[spec.preset]["folder"], worlds[spec.preset]["hash"], str(device))
        env = make_env(spec.run, world, device, "test", AGENTS[spec.run.agent].needs_oracle)
        try:
            with torch.random.fork_rng(devices=[]):
                make_agent(
                    spec.run.agent, env.single_observation_space, env.single_action_space, 0, device,
                    **spec.run.agent_options,
                )  # fmt: skip
        except (ConfigError, TypeError, ValueError) as exc:
            detail = " ".join(str(exc).split())
            raise ConfigError(f"agent {spec.agent} on {spec.preset} rejects its options ({detail})") from exc


def _run_config(
    spec: RunSpec, world_hash: str, device: torch.device, code: dict, threads: int
) -> dict[str, Any]:
    """A run's config.json: what it runs, on which World, device and torch threads, by
    which code and libraries."""
    return _plain(
        {
            "preset": spec.preset,
            "agent": spec.agent,
            "run": asdict(spec.run),
            "world_hash": world_hash,
            "device": device_name(device),
            "threads": threads,
            "code": code,
            "libraries": library_versions(),
        }
    )


def library_versions() -> dict[str, str]:
    """The versions of the libraries whose numerics the records depend on."""
    return {"torch": torch.__version__, "numpy": np.__version__}


def _check_finished(folder: Path, expected: dict, allow_code_change: bool) -> bool:
    """Whether ``folder`` holds this run, finished; a ConfigError if it holds another,
    a DataError if files of it are missing."""
    if not folder.is_dir():
        return False
    try:
        recorded = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{folder}: unreadable run config ({exc}); delete the folder to rerun it") from exc
    if not isinstance(recorded, dict):
        raise ConfigError(f"{folder}/config.json is not a run config; delete the folder to rerun it")
    for key in ("run", "world_hash", "device", "threads"):
        if recorded.get(key) != expected[key]:
            raise ConfigError(
                f"{folder} ran {_difference(key, recorded.get(key), expected[key])}; choose another --out "
                "(or delete the folder to rerun it)"
            )
    if not allow_code_change:
        for key in ("code", "libraries"):
            made_by, now = recorded.get(key) or {}, expected[key]
            if key == "code":  # the version and commit are descriptions; the source hash is the code
                made_by, now = made_by.get("source"), now["source"]
            if made_by != now:
                raise ConfigError(
                    f"{folder} was made by other {key} ({_difference(key, made_by, now)}); choose "
                    "another --out, or resume with --allow-code-change"
                )
    check_run_files(folder, expected["run"])
    return True


def _difference(key: str, recorded: Any, expected: Any) -> str:
    """What differs between two values of ``key``, field by field for dicts."""
    if isinstance(recorded, dict) and isinstance(expected, dict):
        changed = [f for f in sorted(set(recorded) | set(expected)) if recorded.get(f) != expected.get(f)]
        return "; ".join(
            f"{key}.{f} {recorded.get(f)!r} where the experiment now has {expected.get(f)!r}" for f in changed
        )
    return f"{key} {recorded!r} where the experiment now has {expected!r}"


def check_run_files(folder: Path, run: dict[str, Any]) -> None:
    """A DataError unless ``folder`` holds every file its ``run`` (an AgentRun as a
    dict) writes: records and meta, items with details, the training log of an agent
    that trains first and its learning curve with curve points. Folders appear whole (by a rename), so a
    missing file was removed by hand; the run would otherwise drop out of the tables."""
    needed = ["config.json", "records.csv", "meta.json"]
    if run.get("details", True):
        needed.append("items.csv")
    if AGENTS[run["agent"]].trains_before_evaluation:
        needed.append("training.csv")
        if run["curve_points"]:
            needed.append("curve.csv")
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"{folder}: the finished run lacks {', '.join(missing)}; delete the folder to rerun it"
        )


def _check_worker_code(name: str, files: dict[str, str], expected: dict, allow_code_change: bool) -> None:
    """A RunFailed if the process that ran ``name`` (a Ray node, say) had other code or
    libraries than this one, whose versions its config.json would record."""
    meta = json.loads(files["meta.json"])
    ran = {"code": meta["code"]["source"], "libraries": meta["libraries"]}
    here = {"code": expected["code"]["source"], "libraries": expected["libraries"]}
    if ran != here and not allow_code_change:
        raise RunFailed(
            f"run {name} ran on {meta['host']} with code {ran['code']} and {ran['libraries']}, not this "
            f"comparison's {here['code']} and {here['libraries']} (the code was edited during the "
            "comparison, or a node has another install): install the same shopgym and libraries on "
            "every node (or pass --allow-code-change)"
        )


def _publish_run(runs: Path, name: str, files: dict[str, str], expected: dict) -> None:
    """Write a finished run's files into a hidden folder, then rename it into place."""
    partial = runs / f".partial-{name}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for filename, text in {**files, "config.json": _json(expected)}.items():
        with open(partial / filename, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    os.rename(partial, runs / name)


# ---------------------------------------------------------------- executing runs


@dataclass(frozen=True)
class Task:
    """One run as a worker receives it: plain data, picklable and JSON-able."""

    name: str
    run: dict[str, Any]
    world_folder: str
    world_hash: str


Executor = Callable[[list[Task], str, int], Iterator[tuple[str, dict[str, str]]]]


def execute_task(task: Task, device: str, threads: int, progress: bool = False) -> dict[str, str]:
    """Run one task in this process; returns its files (name -> text) but config.json.

    What it prints (and its warnings) goes to log.txt; with ``progress``, a bar of its
    training goes to this process's stderr."""
    torch.set_num_threads(threads)
    world = _load_world(task.world_folder, task.world_hash, device)
    log = io.StringIO()
    started = time.perf_counter()
    stream = sys.stderr if progress else None
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        result = run_agent(AgentRun(**task.run), world, torch.device(device), progress=stream)
    meta = {
        **result.meta,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "host": os.uname().nodename,
        "code": code_version(),
        "libraries": library_versions(),
    }
    files = {
        "records.csv": result.records.to_csv(index=False),
        "meta.json": _json(meta),
        "log.txt": log.getvalue(),
    }
    if result.items is not None:
        files["items.csv"] = result.items.to_csv(index=False)
    if result.curve is not None:
        files["curve.csv"] = result.curve.to_csv(index=False)
    if result.training is not None:
        files["training.csv"] = result.training.to_csv(index=False)
    return files


_WORLDS: dict[tuple[str, str, str], World] = {}


def _load_world(folder: str, expected_hash: str, device: str) -> World:
    key = (folder, expected_hash, device)
    if key not in _WORLDS:
        world = World.load(shipped_world_path() if folder == SHIPPED else folder)
        if world.hash != expected_hash:
            raise DataError(f"{folder}: World hash {world.hash}, the experiment expects {expected_hash}")
        _WORLDS[key] = world.to(device)
    return _WORLDS[key]


def _local_executor(workers: int, progress: bool = False) -> Executor:
    """Runs tasks in this process (``workers`` 1, with a bar of each run's training
    where ``progress``) or in ``workers`` spawned processes (the bar counts runs)."""

    def execute(tasks: list[Task], device: str, threads: int) -> Iterator[tuple[str, dict[str, str]]]:
        if workers == 1:
            previous = torch.get_num_threads()
            try:
                for task in tasks:
                    yield task.name, _task_files(task, device, threads, progress)
            finally:
                torch.set_num_threads(previous)
            return
        # spawn, not fork: a forked torch (threads, CUDA) is unsafe.
        context = get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)
        ) as pool:
            futures = {pool.submit(_task_files, task, device, threads): task.name for task in tasks}
            failure = None
            try:
                for future in as_completed(futures):
                    if future.cancelled():
                        continue
                    if future.exception() is None:
                        yield futures[future], future.result()
                    elif failure is None:
                        # Runs not started are dropped; those running finish and are kept.
                        failure = future.exception()
                        for other in futures:
                            other.cancel()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
            if failure is not None:
                raise failure

    return execute


def _task_files(task: Task, device: str, threads: int, progress: bool = False) -> dict[str, str]:
    """:func:`execute_task`, with an error that names the run."""
    try:
        return execute_task(task, device, threads, progress)
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(exc)).strip()
        raise RunFailed(f"run {task.name} failed: {detail}") from exc


class RunFailed(ConfigError):
    """A run raised; the finished runs are kept, and a rerun retries this one."""


def _init_worker(parent: int) -> None:
    """Each worker process: end it when the comparison that started it (``parent``, its
    PID as the comparison read it) dies, killed say, rather than finish runs that nobody
    will write; hash its code at once.

    The PID comes from the parent: read here, it would already be 1 in a worker whose
    parent was killed while the worker was starting, and that worker would never end."""
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
    code_version()  # hashed now, beside the imports, as the comparison hashed its own at its start


def _ray_executor(config: CompareConfig) -> Executor:
    from shopgym.experiments.ray_backend import ray_executor

    return ray_executor(config.ray_address, config.workers, config.ray_gpus_per_run)


# ---------------------------------------------------------------- tables, figures, report


def aggregate(out: Path, runs: list[RunSpec], quiet: bool = False, report: bool = True) -> None:
    """episodes.csv, curves.csv, items.csv, scores.csv, summary.csv, improvement.csv from
    the run folders of ``runs``; then the figures and the report."""
    from shopgym.experiments.metrics import METRICS, per_seed_metrics, regret_reference
    from shopgym.experiments.stats import aggregate as aggregate_scores
    from shopgym.experiments.stats import probability_of_improvement

    tables: dict[str, list[pd.DataFrame]] = {
        name: [] for name in ("records.csv", "curve.csv", "items.csv", "training.csv")
    }
    catalogue_sizes = {}
    for spec in runs:
        folder = out / "runs" / spec.name
        check_run_files(folder, asdict(spec.run))
        keys = {"preset": spec.preset, "agent": spec.agent, "seed": spec.run.seed}
        for filename, frames in tables.items():
            if (folder / filename).is_file():
                frame = _read_csv(folder / filename)
                frames.append(frame.assign(**keys)[[*keys, *frame.columns]])
        catalogue_sizes[spec.preset] = json.loads((folder / "meta.json").read_text())["catalogue_size"]
    experiment = json.loads((out / "experiment.json").read_text())
    reference = regret_reference(experiment["agents"])
    episodes = pd.concat(tables["records.csv"], ignore_index=True)
    items = pd.concat(tables["items.csv"], ignore_index=True) if tables["items.csv"] else None
    scores = per_seed_metrics(episodes, items, catalogue_sizes, reference=reference)
    metrics = [metric for metric in METRICS if metric in scores.columns]
    summary = aggregate_scores(scores, metrics)
    improvement = probability_of_improvement(scores, "return")
    written = {"episodes.csv": episodes, "scores.csv": scores, "summary.csv": summary}
    written["improvement.csv"] = improvement
    if items is not None:
        written["items.csv"] = items
    if tables["curve.csv"]:
        written["curves.csv"] = pd.concat(tables["curve.csv"], ignore_index=True)
    if tables["training.csv"]:
        written["training.csv"] = pd.concat(tables["training.csv"], ignore_index=True)
    if reference is not None and scores["preset"].nunique() > 1:
        written["overall.csv"] = oracle_fraction_over_presets(scores, reference)
    for filename, frame in written.items():
        atomic_write(out / filename, frame.to_csv(index=False))
    for filename in OPTIONAL_TABLES:
        if filename not in written:  # of an earlier invocation with more presets or agents
            (out / filename).unlink(missing_ok=True)
    if report:
        from shopgym.experiments.report import write_report

        write_report(out)  # draws the figures too
    _print(_format_summary(summary, metrics), quiet=False)
    where = "report.html, summary.csv, figures/" if report else "summary.csv, scores.csv"
    _print(f"\nresults in {out} ({where})", quiet=False)


def write_tensorboard(out: Path) -> Path:
    """TensorBoard logs of an experiment directory, one log per run
    (``tensorboard/<preset>/<agent>/seed<s>``): ``held_out/return`` against training
    slates from the learning curve; what the agent logged as it trained (training.csv:
    SlateQ's and PPO's losses, SB3's ``train/`` and ``rollout/`` values against slates,
    the offline recommenders' loss by epoch) under ``train/``; and each metric of
    scores.csv as ``final/<metric>``. Rewritten from the records each time, like the
    tables."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ConfigError("--tensorboard needs TensorBoard: pip install tensorboard") from exc
    folder = out / "tensorboard"
    shutil.rmtree(folder, ignore_errors=True)
    scores = pd.read_csv(out / "scores.csv")
    curves, training = (
        pd.read_csv(out / name) if (out / name).is_file() else None for name in ("curves.csv", "training.csv")
    )
    experiment = json.loads((out / "experiment.json").read_text())
    budgets = {agent["label"]: agent["train_slates"] for agent in experiment["agents"]}
    metrics = [column for column in scores.columns if column not in ("preset", "agent", "seed", "episodes")]
    for _, row in scores.iterrows():
        writer = SummaryWriter(str(folder / str(row["preset"]) / str(row["agent"]) / f"seed{row['seed']}"))
        if curves is not None:
            mine = curves[(curves["preset"] == row["preset"]) & (curves["agent"] == row["agent"])]
            for _, point in mine[mine["seed"] == row["seed"]].iterrows():
                writer.add_scalar("held_out/return", point["return"], int(point["steps"]))
        if training is not None:
            _add_training(writer, training, row)
        for metric in metrics:
            if pd.notna(row[metric]):
                writer.add_scalar(f"final/{metric}", row[metric], int(budgets.get(row["agent"]) or 0))
        writer.close()
    return folder


def _add_training(writer, training: pd.DataFrame, run: pd.Series) -> None:
    """The rows of ``training`` of ``run``'s preset, agent and seed, against slates (or
    epochs, for agents that train offline)."""
    mine = training[(training["preset"] == run["preset"]) & (training["agent"] == run["agent"])]
    mine = mine[mine["seed"] == run["seed"]].dropna(axis=1, how="all")
    axis = "steps" if "steps" in mine.columns else "epoch"
    values = [column for column in mine.columns if column not in ("preset", "agent", "seed", axis)]
    for _, point in mine.iterrows():
        for column in values:
            if pd.notna(point[column]):
                tag = column if "/" in column else f"train/{column}"
                writer.add_scalar(tag, point[column], int(point[axis]))


def _format_summary(summary: pd.DataFrame, metrics: list[str]) -> str:
    shown = [metric for metric in ("return", "ctr", "purchases", "regret") if metric in metrics]
    lines = []
    for preset, group in summary.groupby("preset", sort=False):
        lines.append(f"\n{preset} (mean [95% CI] over seeds)")
        width = max(len(agent) for agent in group["agent"])
        lines.append(f"{'agent':{width}s}  seeds  " + "  ".join(f"{m:>24s}" for m in shown))
        for _, row in group.iterrows():
            cells = [f"{row[m]:8.3f} [{row[f'{m}_low']:.3f}, {row[f'{m}_high']:.3f}]" for m in shown]
            lines.append(
                f"{row['agent']:{width}s}  {int(row['seeds']):5d}  " + "  ".join(f"{c:>24s}" for c in cells)
            )
    return "\n".join(lines)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable ({exc}); delete its run folder to rerun it") from exc


def oracle_fraction_over_presets(scores: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The IQM over presets and seeds of each agent's return as a fraction of the
    ``reference`` agent's mean return in the same preset (a common scale across
    presets), with the stratified bootstrap interval of
    :func:`~shopgym.experiments.stats.aggregate_over_presets` (seeds resampled within
    each preset). Columns: agent, presets, seeds, oracle_fraction_iqm{,_low,_high}."""
    from shopgym.experiments.stats import aggregate_over_presets

    oracle = scores[scores["agent"] == reference].groupby("preset")["return"].mean()
    fractions = scores.assign(oracle_fraction=scores["return"] / scores["preset"].map(oracle))
    return aggregate_over_presets(fractions, "oracle_fraction")


# ---------------------------------------------------------------- helpers


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists), so that comparisons with a
    config.json read from disk are exact."""
    return json.loads(json.dumps(value, default=str))


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str) + "\n"


def _print(text: str, quiet: bool) -> None:
    if not quiet:
        print(text, flush=True)
