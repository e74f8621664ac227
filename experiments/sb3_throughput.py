"""SB3 PPO through shopgym's batched SB3 adapter vs over a ``DummyVecEnv`` of single envs.

Both sides train the same PPO (``MultiInputPolicy`` with the shared candidate scorer)
on ``--num-envs`` shoppers of ``shopgym/Shopper-v1`` behind the same slate wrapper:

- batched: ``ScoreVectorVecEnv(ShopperSB3VecEnv(B, observation="features"))``: one
  simulator steps all B shoppers with tensor operations;
- single: ``ScoreVectorVecEnv(DummyVecEnv([gymnasium.make("shopgym/Shopper-v1")] * B))``:
  B simulators of one shopper each, stepped in a Python loop (SB3's default).

It prints, for each, the env steps (slates; sub-steps under ``--wrapper slots``)
per second over the whole ``learn`` call (rollouts and PPO updates) and over the
rollouts alone (collecting experience: where the env's speed shows), and the ratios::

    python -m shopgym.experiments.sb3_throughput --num-envs 64 --timesteps 32768
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecMonitor

import shopgym.envs  # noqa: F401  (registers the environments)
from shopgym.envs import PRESETS, ShopperSB3VecEnv
from shopgym.envs.slate_wrappers import (
    CandidateScorer,
    RepairingSlotFillingVecEnv,
    ScoreVectorVecEnv,
    use_scores_as_head,
)

ENV_ID = "shopgym/Shopper-v1"
WRAPPERS: dict[str, Callable[[VecEnv], VecEnv]] = {
    "score": ScoreVectorVecEnv,
    "slots": RepairingSlotFillingVecEnv,
}


class RolloutTimer(BaseCallback):
    """Wall time spent collecting rollouts (between SB3's rollout start and end)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0
        self._started = 0.0

    def _on_rollout_start(self) -> None:
        self._started = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.seconds += time.perf_counter() - self._started

    def _on_step(self) -> bool:
        return True


@dataclass(frozen=True)
class Throughput:
    """One side's measurement: SB3 timesteps, and the seconds they took."""

    name: str
    timesteps: int
    learn_seconds: float
    rollout_seconds: float

    @property
    def learn_rate(self) -> float:
        """Env steps per second over the whole ``learn`` (collection and updates)."""
        return self.timesteps / self.learn_seconds

    @property
    def rollout_rate(self) -> float:
        """Env steps per second while collecting rollouts."""
        return self.timesteps / self.rollout_seconds


def batched_env(num_envs: int) -> VecEnv:
    """``num_envs`` shoppers of the preset in one batched simulator, on the CPU."""
    return ShopperSB3VecEnv(num_envs, **{**PRESETS[ENV_ID], "device": "cpu", "observation": "features"})


def single_envs(num_envs: int) -> VecEnv:
    """SB3's default vectorisation: one single-shopper env per index, stepped in a loop."""
    return DummyVecEnv([lambda: gym.make(ENV_ID, device="cpu") for _ in range(num_envs)])


def measure(
    name: str, venv: ScoreVectorVecEnv | RepairingSlotFillingVecEnv, timesteps: int, n_steps: int, seed: int
) -> Throughput:
    """Train PPO for ``timesteps`` on ``venv`` and time it (the model is built first)."""
    model = PPO(
        "MultiInputPolicy",
        VecMonitor(venv),
        n_steps=n_steps,
        batch_size=n_steps * venv.num_envs // 4,
        n_epochs=4,
        policy_kwargs={
            "features_extractor_class": CandidateScorer,
            "features_extractor_kwargs": {"hidden": 64},
            "net_arch": {"pi": [], "vf": [64, 64]},
        },
        seed=seed,
        device="cpu",
    )
    use_scores_as_head(model, venv.num_candidates)
    timer = RolloutTimer()
    started = time.perf_counter()
    model.learn(total_timesteps=timesteps, callback=timer)
    return Throughput(name, int(model.num_timesteps), time.perf_counter() - started, timer.seconds)


def main(argv: list[str] | None = None) -> list[Throughput]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, default=64, help="shoppers stepped together (both sides)")
    parser.add_argument("--timesteps", type=int, default=32_768, help="SB3 timesteps per side")
    parser.add_argument("--n-steps", type=int, default=64, help="PPO rollout length per env")
    parser.add_argument("--wrapper", choices=sorted(WRAPPERS), default="score", help="the slate wrapper")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (tiny networks: 1 is fastest)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    wrapper = WRAPPERS[args.wrapper]
    sides = {"batched ShopperSB3VecEnv": batched_env, "DummyVecEnv of ShopperEnv": single_envs}
    results = [
        measure(name, wrapper(make(args.num_envs)), args.timesteps, args.n_steps, args.seed)
        for name, make in sides.items()
    ]
    print(f"SB3 PPO on {ENV_ID}, {args.num_envs} envs, {wrapper.__name__}, {args.timesteps} timesteps each")
    print(f"{'':28s} {'learn s':>9s} {'steps/s (learn)':>16s} {'rollout s':>10s} {'steps/s (rollouts)':>19s}")
    for result in results:
        print(
            f"{result.name:28s} {result.learn_seconds:9.2f} {result.learn_rate:16.0f} "
            f"{result.rollout_seconds:10.2f} {result.rollout_rate:19.0f}"
        )
    batched, single = results
    print(
        f"ratio batched / single: {batched.learn_rate / single.learn_rate:.2f}x over learn, "
        f"{batched.rollout_rate / single.rollout_rate:.2f}x over rollouts"
    )
    return results


if __name__ == "__main__":
    main()
