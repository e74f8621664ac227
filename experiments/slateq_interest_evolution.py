"""SlateQ on ``shopgym/InterestEvolution-v0`` against random slates and the myopic greedy policy.

For each seed s, SlateQ (:class:`shopgym.agents.slateq.SlateQAgent`, seeded with s)
trains for ``--train-slates`` shopper-steps (summed over the batch of
``--num-envs`` users) on users of a training environment reset with 10,000 + s; it
is then evaluated, with the random policy and the greedy one, on ``--episodes``
fresh users of an environment reset with s (the same users for the three). With
``--curve``, SlateQ is also evaluated at 10 points of training (``--curve-episodes``
users reset with 20,000 + s, the same at every point), for a learning curve.

The greedy policy shows the k candidates of highest interest · features, reading the
observable interests as ``interest_evolution_check --policy greedy`` does: the
myopic policy of largest click probability (and so of largest expected immediate
watch time). The table gives the mean episode return (total watch time) over seeds
with its 95% Student-t interval over seeds, and the wall time::

    python -m shopgym.experiments.slateq_interest_evolution --train-slates 120000 --seeds 5 --episodes 2000
    python -m shopgym.experiments.slateq_interest_evolution --num-candidates 50 --train-slates 1000000 \\
        --seeds 5 --num-envs 64 --device cuda

RLlib's pass mark for its SlateQ example (10 candidates, slates of 2) is a mean
return of 160 within 120,000 timesteps.
"""

from __future__ import annotations

import argparse
import ast
import math
import time
from typing import Any

import numpy as np
import torch

from shopgym.agents.base import Agent, Observation, top_k
from shopgym.agents.baselines import RandomAgent
from shopgym.agents.slateq import SlateQAgent
from shopgym.envs import make_torch_env
from shopgym.experiments.evaluation import evaluate

ENV_ID = "shopgym/InterestEvolution-v0"
TRAIN_SEED_OFFSET, CURVE_SEED_OFFSET = 10_000, 20_000
# Two-sided 95% quantiles of Student's t by degrees of freedom (above 30: the normal's).
T_95 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
    11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
    20: 2.086, 25: 2.060, 30: 2.042,
}  # fmt: skip


class GreedyInterestAgent(Agent):
    """The myopic policy: the k candidates of highest interest · features, best first (it
    reads the user's interests, which InterestEvolution observes)."""

    name = "greedy"

    def act(self, observation: Observation) -> torch.Tensor:
        scores = torch.einsum("bt,bnt->bn", observation["user"], observation["doc_features"])
        return top_k(scores.to(self.device), self.slate_size, self.generator).to(scores.device)


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval of the mean of per-seed values."""
    array = np.asarray(values, dtype=float)
    mean = float(array.mean())
    if len(array) < 2:
        return mean, mean, mean
    df = len(array) - 1
    quantile = T_95.get(df) or (T_95[max(d for d in T_95 if d <= df)] if df <= 30 else 1.96)
    half = quantile * float(array.std(ddof=1)) / math.sqrt(len(array))
    return mean, mean - half, mean + half


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (values as Python literals, else strings) -> SlateQ keywords."""
    options = {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text
    return options


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train and evaluate every seed; returns per-policy returns per seed, the curve, wall times."""
    env_options = {
        "device": args.device,
        "num_candidates": args.num_candidates,
        "slate_size": args.slate_size,
    }
    options = parse_options(args.option)
    results: dict[str, list[float]] = {"random": [], "greedy": [], "slateq": []}
    lengths: dict[str, list[float]] = {name: [] for name in results}
    curves: list[list[tuple[int, float]]] = []
    train_seconds = []
    started = time.perf_counter()
    eval_envs = min(args.episodes, args.eval_envs)
    for seed in range(args.seeds):
        train_env = make_torch_env(ENV_ID, args.num_envs, **env_options)
        space, action_space = train_env.single_observation_space, train_env.single_action_space
        agent = SlateQAgent(space, action_space, seed=seed, device=args.device, **options)
        curve: list[tuple[int, float]] = []
        curve_env = make_torch_env(ENV_ID, min(args.curve_episodes, args.eval_envs), **env_options)

        def checkpoint(steps: int, agent=agent, curve=curve, env=curve_env, seed=seed) -> None:
            records = evaluate(agent, env, args.curve_episodes, seed=CURVE_SEED_OFFSET + seed)
            curve.append((steps, float(records["return"].mean())))
            elapsed = time.perf_counter() - started
            print(f"  seed {seed}, {steps} steps: return {curve[-1][1]:.1f} ({elapsed:.0f} s)", flush=True)

        tick = time.perf_counter()
        agent.fit(
            train_env,
            args.train_slates,
            seed=TRAIN_SEED_OFFSET + seed,
            checkpoint=checkpoint if args.curve else None,
        )
        train_seconds.append(time.perf_counter() - tick)
        curves.append(curve)
        policies = {
            "random": RandomAgent(space, action_space, seed=seed, device=args.device),
            "greedy": GreedyInterestAgent(space, action_space, seed=seed, device=args.device),
            "slateq": agent,
        }
        for name, policy in policies.items():
            eval_env = make_torch_env(ENV_ID, eval_envs, **env_options)
            records = evaluate(policy, eval_env, args.episodes, seed=seed)
            results[name].append(float(records["return"].mean()))
            lengths[name].append(float(records["length"].mean()))
        print(
            f"seed {seed}: SlateQ {results['slateq'][-1]:.2f}, greedy {results['greedy'][-1]:.2f}, "
            f"random {results['random'][-1]:.2f} (training {train_seconds[-1]:.0f} s)",
            flush=True,
        )
    return {
        "returns": results,
        "lengths": lengths,
        "curves": curves,
        "train_seconds": train_seconds,
        "wall_seconds": time.perf_counter() - started,
        "describe": agent.describe(),
    }


def table(outcome: dict[str, Any], args: argparse.Namespace) -> str:
    returns, lengths = outcome["returns"], outcome["lengths"]
    lines = [
        f"shopgym/InterestEvolution-v0, {args.num_candidates} candidates, slates of {args.slate_size}; "
        f"SlateQ trained on {args.train_slates} shopper-steps ({args.num_envs} users per step); "
        f"{args.seeds} seeds x {args.episodes} evaluation episodes",
        "",
        "| policy | seeds | mean return | 95% CI over seeds | mean length |",
        "|---|---|---|---|---|",
    ]
    for name in ("random", "greedy", "slateq"):
        mean, low, high = mean_ci(returns[name])
        length = np.mean(lengths[name])
        seeds = len(returns[name])
        lines.append(f"| {name} | {seeds} | {mean:.2f} | [{low:.2f}, {high:.2f}] | {length:.1f} |")
    for baseline in ("greedy", "random"):
        diff = np.asarray(returns["slateq"]) - np.asarray(returns[baseline])
        mean, low, high = mean_ci(diff.tolist())
        lines.append(f"\nSlateQ - {baseline} (paired by seed): {mean:+.2f} [{low:+.2f}, {high:+.2f}]")
    curves = [curve for curve in outcome["curves"] if curve]
    if curves:
        steps = [point[0] for point in curves[0]]
        mean_curve = np.mean([[point[1] for point in curve] for curve in curves], axis=0)
        lines.append("\nlearning curve (mean over seeds of the held-out return):")
        lines.append(", ".join(f"{s}: {r:.1f}" for s, r in zip(steps, mean_curve, strict=True)))
        above = [s for s, r in zip(steps, mean_curve, strict=True) if r >= args.pass_mark]
        lines.append(f"first point at or above {args.pass_mark:g}: {above[0] if above else 'none'}")
    train = outcome["train_seconds"]
    lines.append(
        f"\nwall time: {outcome['wall_seconds']:.0f} s in all; SlateQ training {np.mean(train):.0f} s "
        f"per seed (device {args.device}, {torch.get_num_threads()} CPU threads)"
    )
    settings = {k: v for k, v in outcome["describe"].items() if k not in ("name", "model", "training_data")}
    lines.append(f"SlateQ settings: {settings}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-slates", type=int, default=120_000, help="SlateQ's training budget")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=2000, help="evaluation episodes per seed and policy")
    parser.add_argument("--num-candidates", type=int, default=10)
    parser.add_argument("--slate-size", type=int, default=2)
    parser.add_argument("--num-envs", type=int, default=16, help="users per training step")
    parser.add_argument("--eval-envs", type=int, default=1000, help="users evaluated in parallel")
    parser.add_argument("--curve", action="store_true", help="evaluate at 10 points of training")
    parser.add_argument("--curve-episodes", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--pass-mark", type=float, default=160.0, help="return to look for on the curve (RLlib's: 160)"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a SlateQAgent keyword (repeatable)",
    )
    args = parser.parse_args(argv)
    text = table(run(args), args)
    print(text)
    return text


if __name__ == "__main__":
    main()
