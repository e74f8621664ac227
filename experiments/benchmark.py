"""``shopgym benchmark``: simulator throughput, in shopper-steps per second.

For each environment preset and batch size B it times, in one process:

- ``core``: the batched simulator's step (``ShopperSimulator.step``, or
  ``InterestEvolutionSimulator.step`` for ``InterestEvolution-v0``), tensors on the
  device, no slate check;
- ``core, compiled``: the same step under ``torch.compile`` (at the batch sizes
  ``--compile-batch-sizes``; a compile that fails is a skipped row, and the eager
  rows stand);
- ``torch env``: :func:`shopgym.envs.make_torch_env` (``TorchVectorEnv``), tensors in and
  out on the device, the next observation every step, slates checked (its default);
  ``torch env, unchecked``: the same with ``check_slates=False``; ``torch env, compiled``:
  unchecked, with ``compile=True`` (at ``--compile-batch-sizes``);
- ``gym vector env``: ``gymnasium.make_vec(ID, num_envs=B, device=...)``, NumPy in and out;
- ``SB3 VecEnv``: :class:`shopgym.envs.sb3.ShopperSB3VecEnv` (shopper presets only);
- ``single env``: ``gymnasium.make(ID)`` at its defaults (B = 1), reset when an
  episode ends;
- ``reference``: the per-shopper simulator of :mod:`shopgym.simulator.reference`
  (``run_random_episodes``, one shopper at a time in Python and NumPy), where it
  models the preset's dynamics.

Every adapter is given uniformly random valid slates drawn before the clock starts (a
pool of :data:`SLATE_POOL` batches, cycled: on the device for the core, NumPy for the
adapters), so a row times the simulator or adapter alone; the reference draws its
own (``run_random_episodes``, a few µs per slate). A cell runs one untimed step,
then steps for at least ``--seconds`` and ``--min-steps`` steps. A cell whose time,
predicted from the same adapter at the previous B scaled linearly, exceeds
``--max-cell-seconds`` is skipped, and so is a combination that does not apply; the
table says why.

It also reports the bytes of simulator state per shopper (the state tensors of
``snapshot()``, random streams left out) at two batch sizes, the batched core's
speed-up over the reference (core at the largest B measured / reference), the
issue's throughput targets as met or not, and optionally a profile of one core's
step. The header (device, torch version and threads, CPU count, load average) and
every row go to a JSON file (``--out``, default ``runs/benchmark__<time>.json``).
Absolute numbers on a shared machine drift; ratios within one run are steadier.
"""

from __future__ import annotations

import cProfile
import dataclasses
import gc
import importlib.metadata
import json
import math
import os
import platform
import pstats
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from shopgym.envs import make_torch_env
from shopgym.envs.sb3 import ShopperSB3VecEnv
from shopgym.simulator.build import resolve_world
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.interest_evolution import InterestEvolutionSimulator
from shopgym.simulator.reference import run_random_episodes
from shopgym.simulator.reference.interest_evolution import ReferenceInterestEvolution
from shopgym.simulator.reference.shopper import ReferenceShopper
from shopgym.simulator.shoppers import ShopperSimulator
from shopgym.simulator.world import World

DEFAULT_ENVS = ("shopgym/Shopper-v0", "shopgym/Shopper-v1", "shopgym/InterestEvolution-v0")
ADAPTERS = ("core", "torch", "vector", "sb3", "single")
"""What ``--adapters`` accepts: the batched core, the torch env (checked and unchecked),
the Gymnasium vector env, the SB3 VecEnv and the single env (the reference is
``--reference``, the compiled core ``--compile``)."""
LABELS = {
    "core": "core",
    "compiled": "core, compiled",
    "torch": "torch env",
    "torch-unchecked": "torch env, unchecked",
    "torch-compiled": "torch env, compiled",
    "vector": "gym vector env",
    "sb3": "SB3 VecEnv",
    "single": "single env",
    "reference": "reference",
}
"""The ``what`` of each kind of row."""
SLATE_POOL = 4
"""Batches of random slates drawn before a cell's clock starts, used in turn."""
REFERENCE_EPISODES = 20
"""Episodes per call of ``run_random_episodes`` while timing a reference."""

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
"""The folder of the shopgym package (experiments/ is in it)."""

Simulator = ShopperSimulator | InterestEvolutionSimulator


@dataclass(frozen=True)
class BenchmarkConfig:
    """Measure simulator throughput (shopper-steps per second) and write a table and a JSON file."""

    envs: tuple[str, ...] = DEFAULT_ENVS
    """Registered environment IDs to measure (see ``shopgym envs``)."""
    batch_sizes: tuple[int, ...] = (1, 64, 4096, 65536)
    """Numbers of shoppers B stepped together (in increasing order; larger on a GPU)."""
    adapters: tuple[str, ...] = ADAPTERS
    """What to time: core, torch (torch env), vector (Gymnasium vector env), sb3 (SB3 VecEnv),
    single (B = 1)."""
    reference: bool = True
    """Time the per-shopper reference simulator too, and the core's speed-up over it."""
    seconds: float = 2.0
    """Minimum measuring time per cell, after one untimed step."""
    min_steps: int = 3
    """Minimum timed steps per cell."""
    max_cell_seconds: float = 30.0
    """Skip a cell whose predicted time (from the previous B, scaled linearly) exceeds this."""
    compile: bool = True
    """Also time the core under torch.compile at --compile-batch-sizes (a failed compile is a skipped row)."""
    compile_batch_sizes: tuple[int, ...] = (4096, 65536)
    """Batch sizes at which the compiled core is timed (each compile takes some 20-60 s on 2 CPU cores)."""
    state_batch_sizes: tuple[int, int] = (64, 4096)
    """Two batch sizes at which the bytes of simulator state are counted (they should scale linearly)."""
    profile: str = "shopgym/Shopper-v1"
    """Profile the core of this environment ID (torch.profiler and cProfile); "" for none."""
    profile_batch: int = 4096
    """Batch size of the profiled core."""
    profile_steps: int = 10
    """Steps profiled."""
    device: str = "auto"
    """Torch device of the core and the batched adapters: auto (cuda if available), cpu or cuda."""
    threads: int = 0
    """Torch intra-op threads (torch.set_num_threads) during the run; 0 keeps torch's default."""
    seed: int = 0
    """Seed of the simulators and the random slates."""
    out: Path | None = None
    """JSON file to write (default: runs/benchmark__<time>.json)."""

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad option (run_benchmark calls it first)."""
        unknown = [
            env for env in (*self.envs, *([self.profile] if self.profile else [])) if env not in gym.registry
        ]
        if unknown:
            raise ConfigError(f"--envs/--profile: unknown environment(s) {unknown}; see `shopgym envs`")
        if not self.envs:
            raise ConfigError("--envs: give at least one environment ID")
        bad = [a for a in self.adapters if a not in ADAPTERS]
        if bad:
            raise ConfigError(f"--adapters: unknown {bad}; choose from {list(ADAPTERS)}")
        for name, sizes in (
            ("--batch-sizes", self.batch_sizes),
            ("--compile-batch-sizes", self.compile_batch_sizes),
            ("--state-batch-sizes", self.state_batch_sizes),
        ):
            if not all(isinstance(b, int) and b >= 1 for b in sizes):
                raise ConfigError(f"{name} must be positive integers, got {list(sizes)}")
        if not self.batch_sizes:
            raise ConfigError("--batch-sizes: give at least one batch size")
        if list(self.batch_sizes) != sorted(set(self.batch_sizes)):
            raise ConfigError(f"--batch-sizes must increase, without repeats, got {list(self.batch_sizes)}")
        if len(self.state_batch_sizes) != 2 or self.state_batch_sizes[0] == self.state_batch_sizes[1]:
            raise ConfigError(
                f"--state-batch-sizes: give two different sizes, got {list(self.state_batch_sizes)}"
            )
        for name, value in (("--seconds", self.seconds), ("--max-cell-seconds", self.max_cell_seconds)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number of seconds, got {value}")
        for name, value in (
            ("--min-steps", self.min_steps),
            ("--profile-batch", self.profile_batch),
            ("--profile-steps", self.profile_steps),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if self.threads < 0:
            raise ConfigError(f"--threads must be >= 0 (0: torch's default), got {self.threads}")
        resolve_device(self.device)  # a ConfigError for an unknown or absent device


# --------------------------------------------------------------------- results
@dataclass
class Row:
    """One cell: an adapter (``what``) of an environment at a batch size."""

    env: str
    what: str
    batch: int
    steps_per_s: float | None = None
    """Shopper-steps per second (B per step call); None when skipped."""
    us_per_step: float | None = None
    """Microseconds per step call (of all B shoppers)."""
    steps: int = 0
    """Timed step calls."""
    seconds: float = 0.0
    """Timed wall time."""
    x_core: float | None = None
    """Ratio to the eager core of the same environment and B (the compiled core: its speed-up)."""
    note: str = ""
    """Why the cell was skipped, or what else to know (compile time, the reference's episodes)."""


@dataclass
class StateSize:
    """Bytes of a core's state tensors (``snapshot()``, random streams left out) at B."""

    env: str
    batch: int
    bytes: int
    bytes_per_shopper: float


@dataclass
class Speedup:
    """The core (the faster of eager and compiled, at the largest B measured) over the reference."""

    env: str
    core_what: str
    core_batch: int
    core_steps_per_s: float
    reference_steps_per_s: float
    speedup: float


@dataclass
class Target:
    """One of issue 8's targets and how this run stands against it."""

    target: str
    status: str
    """``met``, ``not met`` or ``not measured``."""
    detail: str


@dataclass
class Report:
    """Everything a run measured; :meth:`to_json` is what ``--out`` holds."""

    header: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    state: list[StateSize] = field(default_factory=list)
    speedups: list[Speedup] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    profile: dict[str, Any] | None = None

    def rate(self, env: str, what: str, batch: int) -> float | None:
        """Shopper-steps per second of a row, or None when it was skipped or not run."""
        for row in self.rows:
            if (row.env, row.what, row.batch) == (env, what, batch):
                return row.steps_per_s
        return None

    def best_core(self, env: str, batch: int) -> tuple[str, float] | None:
        """The faster of the eager and compiled core at ``batch``: (what, rate)."""
        rates = [(w, r) for w in (LABELS["core"], LABELS["compiled"]) if (r := self.rate(env, w, batch))]
        return max(rates, key=lambda pair: pair[1]) if rates else None

    def to_json(self) -> dict[str, Any]:
        return {
            "header": self.header,
            "rows": [dataclasses.asdict(row) for row in self.rows],
            "state": [dataclasses.asdict(size) for size in self.state],
            "speedups": [dataclasses.asdict(speedup) for speedup in self.speedups],
            "targets": [dataclasses.asdict(target) for target in self.targets],
            "profile": self.profile,
        }


class Skip(Exception):
    """A cell that does not apply or is not run; the message says why."""


# ------------------------------------------------------------------------ run
def run_benchmark(config: BenchmarkConfig) -> Report:
    """Measure every cell, print the tables, write the JSON file and return the report."""
    config.validate()
    device = resolve_device(config.device)
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        with warnings.catch_warnings():
            # Gymnasium warns that Shopper-v0 has a newer version: it is measured on purpose.
            warnings.filterwarnings("ignore", message=".*is out of date", category=DeprecationWarning)
            report = Report(header=_header(config, device))
            print(_header_text(report.header), flush=True)
            for env_id in config.envs:
                _measure_env(config, env_id, device, report)
            if config.profile:
                report.profile = _profile(config, device)
        report.header["load_average_end"] = _load_average()
        report.targets = _targets(report, device)
    finally:
        torch.set_num_threads(threads)
    print(format_report(report))
    out = config.out or Path("runs") / f"benchmark__{datetime.now():%Y%m%d-%H%M%S}.json"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n")
    except OSError as exc:
        raise ConfigError(f"--out: cannot write {out} ({exc})") from exc
    print(f"wrote {out}")
    return report


def _measure_env(config: BenchmarkConfig, env_id: str, device: torch.device, report: Report) -> None:
    """Every row of one environment, its state sizes and its speed-up over the reference."""
    single = gym.make(env_id)
    base = single.unwrapped.simulator
    world = _world(env_id, base, device)

    def add(row: Row) -> None:
        report.rows.append(row)
        print(_row_text(row), flush=True)

    if "single" in config.adapters:
        add(_cell(config, env_id, "single", 1, lambda: _single_stepper(single, config.seed)))
    single.close()
    if config.reference:
        add(_reference_row(config, env_id, base))
    per_step: dict[str, tuple[int, float]] = {}  # adapter -> (B, seconds per step) of its last cell
    for batch in config.batch_sizes:
        compiled = config.compile and batch in config.compile_batch_sizes
        kinds = ["core", "compiled", "torch", "torch-unchecked", "torch-compiled", "vector", "sb3"]
        wanted = {*config.adapters}
        if "core" in config.adapters and compiled:
            wanted.add("compiled")
        if "torch" in config.adapters:
            wanted |= {"torch-unchecked", *(["torch-compiled"] if compiled else [])}
        for kind in (kind for kind in kinds if kind in wanted):
            make = _stepper_factory(kind, base, world, env_id, batch, device, config.seed)
            row = _cell(config, env_id, kind, batch, make, per_step.get(kind))
            if row.steps:
                per_step[kind] = (batch, row.seconds / row.steps)
            core = report.rate(env_id, LABELS["core"], batch)
            if kind != "core" and row.steps_per_s and core:
                row.x_core = row.steps_per_s / core
            add(row)
    core = report.rate(env_id, LABELS["core"], 1)
    for row in report.rows:
        if row.env == env_id and row.batch == 1 and row.what in (LABELS["single"], LABELS["reference"]):
            row.x_core = row.steps_per_s / core if row.steps_per_s and core else None
    for batch in config.state_batch_sizes:
        simulator = _core_simulator(base, world, batch, device, config.seed)
        size = state_bytes(simulator)
        report.state.append(StateSize(env_id, batch, size, size / batch))
        del simulator
    _speedup(report, env_id)


def _cell(
    config: BenchmarkConfig,
    env_id: str,
    kind: str,
    batch: int,
    make: Callable[[], Callable[[int], None]],
    previous: tuple[int, float] | None = None,
) -> Row:
    """Time one cell, or skip it (a :class:`Skip` from ``make``, or a predicted time over the cap)."""
    row = Row(env_id, LABELS[kind], batch)
    if previous is not None:
        earlier, seconds_per_step = previous
        predicted = seconds_per_step * batch / earlier * (config.min_steps + 1)
        if predicted > config.max_cell_seconds:
            row.note = (
                f"skipped: predicted {predicted:.0f} s for {config.min_steps + 1} steps "
                f"({seconds_per_step * 1e3:.1f} ms/step at B={earlier:,}, scaled), "
                f"over --max-cell-seconds {config.max_cell_seconds:g}"
            )
            return row
    try:
        built, calls, elapsed = _time(make, config)
    except Skip as reason:
        row.note = f"skipped: {reason}"
        return row
    except (MemoryError, torch.cuda.OutOfMemoryError) as exc:
        row.note = f"skipped: out of memory ({_first_line(exc)})"
        return row
    finally:
        gc.collect()  # what the cell built (a vector env of 65,536 shoppers, say) goes before the next
    row.steps, row.seconds = calls, elapsed
    row.steps_per_s = calls * batch / elapsed
    row.us_per_step = elapsed / calls * 1e6
    if kind in ("compiled", "torch-compiled"):
        row.note = f"build and compile {built:.1f} s"
    return row


def _time(make: Callable[[], Callable[[int], None]], config: BenchmarkConfig) -> tuple[float, int, float]:
    """Build a step function, run it once untimed (first-call costs: allocations, caches),
    then for at least ``--seconds`` and ``--min-steps`` calls: (build seconds, calls, seconds)."""
    started = time.perf_counter()
    step = make()
    built = time.perf_counter() - started
    step(0)
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < config.seconds or calls < config.min_steps:
        calls += 1
        step(calls)
    return built, calls, elapsed


# ---------------------------------------------------------------- the steppers
def _stepper_factory(
    kind: str,
    base: Simulator,
    world: World | None,
    env_id: str,
    batch: int,
    device: torch.device,
    seed: int,
) -> Callable[[], Callable[[int], None]]:
    """What builds the step function of a cell (building is not timed)."""
    if kind in ("core", "compiled"):
        return lambda: _core_stepper(
            _core_simulator(base, world, batch, device, seed), seed, kind == "compiled"
        )
    if kind in ("torch", "torch-unchecked", "torch-compiled"):
        return lambda: _torch_env_stepper(
            env_id, world, batch, device, seed, check=kind == "torch", compile=kind == "torch-compiled"
        )
    if kind == "vector":
        return lambda: _vector_stepper(env_id, world, batch, device, seed)
    return lambda: _sb3_stepper(base, world, batch, device, seed)


def _core_simulator(
    base: Simulator, world: World | None, batch: int, device: torch.device, seed: int
) -> Simulator:
    """A batched simulator of B shoppers with the configuration of ``base`` (the single env's)."""
    if isinstance(base, ShopperSimulator):
        assert world is not None
        simulator: Simulator = ShopperSimulator(world, base.config, batch, base.shoppers, device, seed=seed)
    else:
        simulator = InterestEvolutionSimulator(base.config, batch, device, seed=seed)
    simulator.reset()
    return simulator


def _torch_slates(simulator: Simulator, seed: int) -> list[torch.Tensor]:
    """:data:`SLATE_POOL` batches of (B, k) uniformly random valid slates, on the simulator's device."""
    n, k = simulator.config.num_candidates, simulator.config.slate_size
    generator = torch.Generator(device=simulator.device).manual_seed(seed + 1)
    shape = (simulator.num_shoppers, n)
    return [
        torch.rand(shape, generator=generator, device=simulator.device).argsort(1)[:, :k]
        for _ in range(SLATE_POOL)
    ]


def _numpy_slates(batch: int, num_candidates: int, slate_size: int, seed: int) -> list[np.ndarray]:
    """:data:`SLATE_POOL` (B, k) int64 arrays of uniformly random valid slates."""
    rng = np.random.default_rng(seed + 1)
    return [
        rng.random((batch, num_candidates)).argsort(1)[:, :slate_size].astype(np.int64)
        for _ in range(SLATE_POOL)
    ]


def _core_stepper(simulator: Simulator, seed: int, compiled: bool = False) -> Callable[[int], None]:
    """A step of the core on pre-drawn slates, without the slate check (no host copies).
    ``compiled``: through ``torch.compile``, compiled here; a failure is a :class:`Skip`."""
    slates = _torch_slates(simulator, seed)
    synchronize = simulator.device.type == "cuda"

    def stepper(step: Callable[..., Any]) -> Callable[[int], None]:
        def run(index: int) -> None:
            step(slates[index % SLATE_POOL], check=False)
            if synchronize:
                torch.cuda.synchronize()

        return run

    if not compiled:
        return stepper(simulator.step)
    try:
        torch._dynamo.reset()  # a fresh compile per cell: no cache limit, its own compile time
        run = stepper(torch.compile(simulator.step))
        run(0)  # compiles
    except Exception as exc:  # any failure to compile: report it, keep the eager rows
        raise Skip(f"torch.compile failed ({_first_line(exc)}); the eager core stands") from exc
    return run


def _torch_env_stepper(
    env_id: str,
    world: World | None,
    batch: int,
    device: torch.device,
    seed: int,
    check: bool,
    compile: bool = False,
) -> Callable[[int], None]:
    """A step of the torch env on pre-drawn slates on the device (checked or not; with
    ``compile``, its simulator compiled, here: a failure is a :class:`Skip`)."""
    options: dict[str, Any] = {} if world is None else {"world": world}
    if compile:
        torch._dynamo.reset()  # a fresh compile per cell, as the compiled core's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = make_torch_env(env_id, batch, device=device, check_slates=check, compile=compile, **options)
    if compile and not env.compiled:
        raise Skip(f"{caught[-1].message if caught else 'torch.compile failed'}; the eager torch env stands")
    env.reset(seed=seed)
    slates = _torch_slates(env.simulator, seed)
    synchronize = env.device.type == "cuda"

    def run(index: int) -> None:
        env.step(slates[index % SLATE_POOL])
        if synchronize:
            torch.cuda.synchronize()

    return run


def _vector_stepper(
    env_id: str, world: World | None, batch: int, device: torch.device, seed: int
) -> Callable[[int], None]:
    """A step of ``gymnasium.make_vec(env_id, num_envs=B)`` on pre-drawn NumPy slates."""
    options: dict[str, Any] = {} if world is None else {"world": world}
    vector = gym.make_vec(
        env_id, num_envs=batch, vectorization_mode="vector_entry_point", device=device, **options
    )
    vector.reset(seed=seed)
    space = vector.single_action_space
    slates = _numpy_slates(batch, space.num_candidates, space.slate_size, seed)
    return lambda index: vector.step(slates[index % SLATE_POOL])


def _sb3_stepper(
    base: Simulator, world: World | None, batch: int, device: torch.device, seed: int
) -> Callable[[int], None]:
    """A step of :class:`ShopperSB3VecEnv` (``step_async`` + ``step_wait``) on pre-drawn slates."""
    if not isinstance(base, ShopperSimulator):
        raise Skip(
            f"ShopperSB3VecEnv simulates shoppers only; there is no SB3 adapter for {type(base).__name__}"
        )
    venv = ShopperSB3VecEnv(num_envs=batch, world=world, device=device, config=base.config)
    venv.seed(seed)
    venv.reset()
    slates = _numpy_slates(batch, base.config.num_candidates, base.config.slate_size, seed)
    return lambda index: venv.step(slates[index % SLATE_POOL])


def _single_stepper(env: gym.Env, seed: int) -> Callable[[int], None]:
    """A step of the single env on pre-drawn (k,) slates, with a reset when an episode ends."""
    env.reset(seed=seed)
    space = env.action_space
    slates = _numpy_slates(SLATE_POOL, space.num_candidates, space.slate_size, seed)[0]

    def step(index: int) -> None:
        _, _, terminated, truncated, _ = env.step(slates[index % SLATE_POOL])
        if terminated or truncated:
            env.reset()

    return step


# ------------------------------------------------------------------ reference
def _reference_row(config: BenchmarkConfig, env_id: str, base: Simulator) -> Row:
    """The per-shopper reference's shopper-steps per second (whole episodes, for at least
    ``--seconds``), or a skipped row saying why it does not apply."""
    row = Row(env_id, LABELS["reference"], 1)
    try:
        if isinstance(base, ShopperSimulator):
            # Given the World, the reference checks the config before reading the World's truth.
            simulator: Any = ReferenceShopper(base.world, base.config, base.shoppers, seed=config.seed)
        else:
            simulator = ReferenceInterestEvolution(base.config, seed=config.seed)
    except ConfigError as exc:
        row.note = f"skipped: {exc}"
        return row
    run_random_episodes(simulator, 1, seed=config.seed)  # untimed
    steps, seconds, episodes = 0, 0.0, 0
    while seconds < config.seconds or steps < config.min_steps:
        done = run_random_episodes(simulator, REFERENCE_EPISODES, seed=config.seed + 1 + episodes)
        steps, seconds, episodes = steps + done.steps, seconds + done.seconds, episodes + done.num_episodes
    row.steps, row.seconds = steps, seconds
    row.steps_per_s = steps / seconds
    row.us_per_step = seconds / steps * 1e6
    row.note = f"{episodes} episodes; includes drawing each random slate"
    return row


def _speedup(report: Report, env_id: str) -> None:
    """The core's speed-up over the reference: the faster core (eager or compiled) at
    the largest B where a core was measured."""
    reference = report.rate(env_id, LABELS["reference"], 1)
    batches = sorted(
        {row.batch for row in report.rows if row.env == env_id and row.steps_per_s}, reverse=True
    )
    for batch in batches:
        best = report.best_core(env_id, batch)
        if reference and best:
            what, rate = best
            report.speedups.append(Speedup(env_id, what, batch, rate, reference, rate / reference))
            return


# ---------------------------------------------------------------------- state
def state_bytes(simulator: Simulator) -> int:
    """Bytes of the tensors of ``simulator.snapshot()`` (its whole state), random streams left out."""

    def tensors(value: Any) -> Iterator[torch.Tensor]:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, dict):
            for key, inner in value.items():
                if key != "generators":
                    yield from tensors(inner)
        elif isinstance(value, list | tuple):
            for inner in value:
                yield from tensors(inner)

    return sum(tensor.nbytes for tensor in tensors(simulator.snapshot()))


# -------------------------------------------------------------------- profile
def _profile(config: BenchmarkConfig, device: torch.device) -> dict[str, Any]:
    """Where an eager core step of ``--profile`` at ``--profile-batch`` spends its time:
    torch ops by self time (torch.profiler) and shopgym functions by cumulative time
    (cProfile), each over ``--profile-steps`` steps, after as many unprofiled ones."""
    env = gym.make(config.profile)
    base, world = env.unwrapped.simulator, _world(config.profile, env.unwrapped.simulator, device)
    env.close()
    step = _core_stepper(_core_simulator(base, world, config.profile_batch, device, config.seed), config.seed)
    steps = config.profile_steps
    step(0)
    started = time.perf_counter()
    for index in range(steps):
        step(index)
    seconds = time.perf_counter() - started

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for index in range(steps):
            step(index)
    events = sorted(profiler.key_averages(), key=lambda event: -event.self_cpu_time_total)
    total = sum(event.self_cpu_time_total for event in events) or 1.0
    ops = [
        {
            "op": event.key,
            "self_ms_per_step": event.self_cpu_time_total / 1e3 / steps,
            "share": event.self_cpu_time_total / total,
            "calls_per_step": event.count / steps,
        }
        for event in events[:15]
    ]

    python_profiler = cProfile.Profile()
    python_profiler.enable()
    for index in range(steps):
        step(index)
    python_profiler.disable()
    root = str(PACKAGE_ROOT)
    stats = {
        where: entry
        for where, entry in pstats.Stats(python_profiler).stats.items()  # type: ignore[attr-defined]
        if where[0].startswith(root)
        and "site-packages" not in where[0]
        and "experiments/benchmark" not in where[0]
    }
    step_time = max((entry[3] for entry in stats.values()), default=1.0)
    functions = [
        {
            "function": f"{Path(file).relative_to(root)}:{line} {name}",
            "cumulative_ms_per_step": cumulative * 1e3 / steps,
            "share": cumulative / step_time,
            "calls_per_step": calls / steps,
        }
        for (file, line, name), (_, calls, _, cumulative, _) in sorted(
            stats.items(), key=lambda item: -item[1][3]
        )
    ][:15]
    return {
        "env": config.profile,
        "batch": config.profile_batch,
        "steps": steps,
        "ms_per_step": seconds * 1e3 / steps,
        "op_calls_per_step": sum(event.count for event in events) / steps,
        "ops": ops,
        "functions": functions,
    }


def _world(env_id: str, base: Simulator, device: torch.device) -> World | None:
    """The World of a shopper preset on ``device`` (None for other simulators)."""
    if not isinstance(base, ShopperSimulator):
        return None
    return resolve_world(gym.spec(env_id).kwargs.get("world"), device)


# -------------------------------------------------------------------- targets
def _targets(report: Report, device: torch.device) -> list[Target]:
    """The issue's targets (for 2 CPU cores; the CUDA one on a GPU), each met, not met or
    not measured (with why). The core's figure is the faster of eager and compiled."""
    targets: list[Target] = []

    def at_least(name: str, value: float | None, bound: float, detail: str, missing: str) -> None:
        if value is None:
            targets.append(Target(name, "not measured", missing))
        else:
            targets.append(Target(name, "met" if value >= bound else "not met", detail))

    ie, v1 = "shopgym/InterestEvolution-v0", "shopgym/Shopper-v1"
    what, rate = report.best_core(ie, 65536) or ("", None)
    name = "InterestEvolution-v0 core at B=65,536 >= 2,000,000 shopper-steps/s"
    at_least(
        name, rate, 2e6, f"{rate or 0:,.0f} ({what})", "InterestEvolution-v0 at B=65,536 not in this run"
    )
    speedup = next((s for s in report.speedups if s.env == ie and s.core_batch == 65536), None)
    at_least(
        "InterestEvolution-v0 core at B=65,536 >= 300x the per-shopper reference",
        speedup.speedup if speedup else None,
        300,
        f"{speedup.speedup:,.0f}x ({speedup.core_steps_per_s:,.0f} / {speedup.reference_steps_per_s:,.0f})"
        if speedup
        else "",
        "needs InterestEvolution-v0 at B=65,536 and its reference in this run",
    )
    what, rate = report.best_core(v1, 4096) or ("", None)
    name = "Shopper-v1 core at B=4,096 >= 500,000 shopper-steps/s"
    at_least(name, rate, 5e5, f"{rate or 0:,.0f} ({what})", "Shopper-v1 at B=4,096 not in this run")
    for kind in ("torch", "torch-unchecked"):
        rate, eager = report.rate(v1, LABELS[kind], 4096), report.rate(v1, LABELS["core"], 4096)
        at_least(
            f"Shopper-v1 {LABELS[kind]} at B=4,096 >= 0.8x the core",
            rate / eager if rate and eager else None,
            0.8,
            f"{(rate or 0) / (eager or 1):.2f}x ({rate or 0:,.0f} / {eager or 0:,.0f}, the eager core)",
            f"Shopper-v1's {LABELS[kind]} and core at B=4,096 not in this run",
        )
    vector, eager = report.rate(v1, LABELS["vector"], 4096), report.rate(v1, LABELS["core"], 4096)
    at_least(
        "Shopper-v1 gym vector env at B=4,096 >= 0.5x the core",
        vector / eager if vector and eager else None,
        0.5,
        f"{(vector or 0) / (eager or 1):.2f}x ({vector or 0:,.0f} / {eager or 0:,.0f}, the eager core)",
        "Shopper-v1's vector env and core at B=4,096 not in this run",
    )
    for env_id in dict.fromkeys(row.env for row in report.rows):
        short = env_id.removeprefix("shopgym/")
        single = next((r for r in report.rows if (r.env, r.what) == (env_id, LABELS["single"])), None)
        if single is None or single.us_per_step is None or single.steps_per_s is None:
            continue
        status = "met" if single.us_per_step <= 100 else "not met"
        targets.append(
            Target(f"{short} single env <= 100 us/step", status, f"{single.us_per_step:,.0f} us/step")
        )
        reference = report.rate(env_id, LABELS["reference"], 1)
        if reference:
            targets.append(
                Target(
                    f"{short} single env at least as fast as the per-shopper reference",
                    "met" if single.steps_per_s >= reference else "not met",
                    f"{single.steps_per_s:,.0f} against {reference:,.0f} steps/s",
                )
            )
    for env_id in dict.fromkeys(size.env for size in report.state):
        sizes = [size for size in report.state if size.env == env_id]
        per_shopper = [size.bytes_per_shopper for size in sizes]
        linear = max(per_shopper) - min(per_shopper) <= 0.01 * max(per_shopper)
        detail = ", ".join(
            f"{size.bytes_per_shopper:,.1f} bytes/shopper at B={size.batch:,}" for size in sizes
        )
        short = env_id.removeprefix("shopgym/")
        targets.append(Target(f"{short} state linear in B", "met" if linear else "not met", detail))
    name = "CUDA: InterestEvolution-v0 core >= 100,000,000 shopper-steps/s"
    if device.type != "cuda":
        targets.append(Target(name, "not measured", f"no CUDA device in this run (device {device})"))
    else:
        what, rate = report.best_core(ie, 65536) or ("", None)
        at_least(
            name,
            rate,
            1e8,
            f"{rate or 0:,.0f} at B=65,536 ({what})",
            "InterestEvolution-v0 at B=65,536 not run",
        )
        rate, core = report.rate(ie, LABELS["torch"], 65536), report.rate(ie, LABELS["core"], 65536)
        at_least(
            "CUDA: InterestEvolution-v0 torch env >= 0.8x the core",
            rate / core if rate and core else None,
            0.8,
            f"{(rate or 0) / (core or 1):.2f}x at B=65,536",
            "InterestEvolution-v0's torch env at B=65,536 not run",
        )
    return targets


# ---------------------------------------------------------------------- output
def _header(config: BenchmarkConfig, device: torch.device) -> dict[str, Any]:
    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    settings = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in dataclasses.asdict(config).items()
    }
    return {
        "date": datetime.now().isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_start": _load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "shopgym": version("shopgym"),
        "gymnasium": gym.__version__,
        "stable_baselines3": version("stable-baselines3"),
        "numpy": np.__version__,
        "commit": _commit(),
        "config": settings,
    }


def _cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_average() -> list[float] | None:
    try:
        return [round(load, 2) for load in os.getloadavg()]
    except OSError:
        return None


def _commit() -> str | None:
    """The checkout's commit (``git rev-parse HEAD``; uncommitted changes are not seen), if any."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PACKAGE_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _header_text(header: dict[str, Any]) -> str:
    return (
        f"device {header['device']} ({header['device_name']}), torch {header['torch']}, "
        f"{header['torch_threads']} torch threads, {header['cpu_count']} CPUs "
        f"({header['cpus_usable']} usable), load average {header['load_average_start']}"
    )


def _number(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _row_text(row: Row) -> str:
    cells = [
        row.env.removeprefix("shopgym/"),
        row.what,
        f"{row.batch:,}",
        _number(row.steps_per_s),
        _number(row.us_per_step, 1),
        _number(row.x_core, 2),
        row.note,
    ]
    return "| " + " | ".join(cells) + " |"


def format_report(report: Report) -> str:
    """The report as Markdown: header, throughput table, state sizes, speed-ups, targets, profile."""
    lines = [
        _header_text(report.header),
        "",
        "| env | what | B | shopper-steps/s | µs/step | × core | note |",
        "|---|---|---|---|---|---|---|",
        *(_row_text(row) for row in report.rows),
    ]
    if report.state:
        lines += ["", "| env | B | state bytes | bytes/shopper |", "|---|---|---|---|"]
        lines += [
            f"| {s.env.removeprefix('shopgym/')} | {s.batch:,} | {s.bytes:,} | {s.bytes_per_shopper:,.1f} |"
            for s in report.state
        ]
    if report.speedups:
        lines += ["", "| env | core | core shopper-steps/s | reference | speed-up |", "|---|---|---|---|---|"]
        lines += [
            f"| {s.env.removeprefix('shopgym/')} | {s.core_what}, B={s.core_batch:,} "
            f"| {s.core_steps_per_s:,.0f} | {s.reference_steps_per_s:,.0f} | {s.speedup:,.1f}× |"
            for s in report.speedups
        ]
    if report.targets:
        lines += ["", "targets:"]
        lines += [f"- {t.status}: {t.target}: {t.detail}" for t in report.targets]
    if report.profile:
        profile = report.profile
        lines += [
            "",
            f"profile of the {profile['env']} core at B={profile['batch']:,} "
            f"({profile['steps']} steps, {profile['ms_per_step']:.1f} ms/step unprofiled, "
            f"{profile['op_calls_per_step']:,.0f} torch op calls/step, nested ones included):",
            "",
            "| torch op | self ms/step | share | calls/step |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {op['op']} | {op['self_ms_per_step']:.2f} | {op['share']:.1%} | {op['calls_per_step']:g} |"
            for op in profile["ops"]
        ]
        lines += ["", "| shopgym function | cumulative ms/step | share | calls/step |", "|---|---|---|---|"]
        lines += [
            f"| {f['function']} | {f['cumulative_ms_per_step']:.2f} | {f['share']:.1%} "
            f"| {f['calls_per_step']:g} |"
            for f in profile["functions"]
        ]
    return "\n".join(lines)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
