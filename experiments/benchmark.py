"""Throughput of the shopper simulator, in shopper-steps per second.

Measures the batched core (``ShopperSimulator.step`` with random valid slates made
on the device) and the Gymnasium vector env (NumPy in and out) at several batch
sizes B, and reports each as a ratio to the single-shopper env measured in the same
process, because absolute numbers on shared machines are noisy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import gymnasium as gym
import torch

import shopgym.envs  # noqa: F401  (registers the environments)
from shopgym.simulator.build import resolve_world
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.shoppers import ShopperSimulator


@dataclass(frozen=True)
class BenchmarkConfig:
    """Measure simulator throughput (shopper-steps per second)."""

    env: str = "shopgym/Shopper-v0"
    """Registered environment ID whose World and defaults are used."""
    batch_sizes: tuple[int, ...] = (1, 64, 1024, 4096)
    """Numbers of shoppers stepped together."""
    seconds: float = 2.0
    """Minimum measuring time per configuration."""
    device: str = "auto"
    """Torch device: auto (cuda if available), cpu or cuda."""

    def validate(self) -> None:
        if self.env not in gym.registry:
            raise ConfigError(f"--env: unknown environment {self.env!r}; see `shopgym envs`")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ConfigError(f"--batch-sizes must be positive integers, got {list(self.batch_sizes)}")
        if not self.seconds > 0:
            raise ConfigError(f"--seconds must be > 0, got {self.seconds}")


def _rate(step, shoppers: int, seconds: float) -> float:
    """Shopper-steps per second of ``step`` (called repeatedly for ``seconds``)."""
    step()  # warm-up
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        step()
        calls += 1
    return calls * shoppers / elapsed


def run_benchmark(config: BenchmarkConfig) -> list[dict]:
    """Measure, print and return one row per (what, B)."""
    config.validate()
    device = resolve_device(config.device)
    world = resolve_world(gym.spec(config.env).kwargs.get("world"), device)
    single = gym.make(config.env, world=world, device=device)
    single.reset(seed=0)
    single.action_space.seed(0)
    reference = _rate(lambda: single.step(single.action_space.sample()), 1, config.seconds)
    results = [{"what": "single env (reference)", "B": 1, "steps_per_s": reference}]
    shopper_config = single.unwrapped.simulator.config
    for batch in config.batch_sizes:
        simulator = ShopperSimulator(world, shopper_config, batch, "train", device, seed=0)
        simulator.reset()
        core = _rate(_core_stepper(simulator), batch, config.seconds)
        vector = gym.make_vec(
            config.env,
            num_envs=batch,
            vectorization_mode="vector_entry_point",
            world=world,
            device=device,
        )
        vector.reset(seed=0)
        vector.action_space.seed(0)
        wrapped = _rate(
            lambda vector=vector: vector.step(vector.action_space.sample()), batch, config.seconds
        )
        results += [
            {"what": "simulator core", "B": batch, "steps_per_s": core},
            {"what": "vector env", "B": batch, "steps_per_s": wrapped},
        ]
    for row in results:
        row["x_single_env"] = row["steps_per_s"] / reference
    threads = torch.get_num_threads()
    print(f"device {device}, torch {torch.__version__}, {threads} threads, env {config.env}")
    print(f"{'what':24s} {'B':>6s} {'shopper-steps/s':>16s} {'x single env':>13s}")
    for row in results:
        rate, ratio = row["steps_per_s"], row["x_single_env"]
        print(f"{row['what']:24s} {row['B']:6d} {rate:16,.0f} {ratio:13.1f}")
    return results


def _core_stepper(simulator: ShopperSimulator):
    """A step of the core with random valid slates drawn on its device (no host copies)."""
    n, k = simulator.config.num_candidates, simulator.config.slate_size
    generator = torch.Generator(device=simulator.device).manual_seed(1)

    def step() -> None:
        keys = torch.rand(simulator.num_shoppers, n, generator=generator, device=simulator.device)
        simulator.step(keys.argsort(1)[:, :k], check=False)
        if simulator.device.type == "cuda":
            torch.cuda.synchronize()

    return step
