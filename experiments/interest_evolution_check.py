"""Check ``shopgym/InterestEvolution-v0`` against RecSim's own interest-evolution environment.

A uniformly random slate policy (or, with ``--policy greedy``, one that shows the
candidates of highest interest) plays ``--episodes`` episodes in our batched simulator
and (with ``--recsim``) in RecSim's environment under the same settings (RLlib's SlateQ
settings: 10 candidates, slates of 2, candidates resampled every step); the script
prints the mean episode return (total watch time) and length of each, with 95%
confidence intervals, clicks per episode, and the differences between the two.

RecSim is imported only when asked, so shopgym never depends on it. ``--recsim`` runs it
in this interpreter; ``--recsim-python PATH`` runs it in another one (RecSim's own
virtual environment, which needs neither torch nor shopgym: this file imports them only
for our side)::

    python3 -m venv /tmp/recsim-venv && /tmp/recsim-venv/bin/pip install recsim
    python -m shopgym.experiments.interest_evolution_check --episodes 2000 \
        --recsim-python /tmp/recsim-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import types

import numpy as np

Z_95 = 1.959963984540054


def mean_ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and normal-approximation 95% interval of the mean (many episodes, so the
    sample mean is close to normal)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    half = Z_95 * float(values.std(ddof=1)) / math.sqrt(len(values))
    return mean, mean - half, mean + half


POLICIES = ("random", "greedy")
METRICS = ("return", "length", "clicks")


def ours(episodes: int, seed: int = 0, device: str = "cpu", policy: str = "random") -> dict[str, np.ndarray]:
    """(episodes,) returns, lengths and clicks of the first episode of ``episodes`` users
    played in parallel, with uniformly random slates or (``greedy``) the k candidates of
    highest score interests · features (observable in this environment).

    Only each user's first episode counts: counting every episode finished within a fixed
    number of steps would over-represent short episodes.
    """
    import torch

    from shopgym.simulator.interest_evolution import InterestEvolutionConfig, InterestEvolutionSimulator

    config = InterestEvolutionConfig()
    simulator = InterestEvolutionSimulator(config, episodes, device, seed=seed)
    simulator.reset(seed)
    dev = simulator.device
    generator = torch.Generator(device=dev).manual_seed(seed + 1)
    totals = {metric: torch.zeros(episodes, device=dev) for metric in METRICS}
    running = torch.ones(episodes, dtype=torch.bool, device=dev)
    while bool(running.any()):
        if policy == "greedy":
            observation = simulator.observe()
            keys = torch.einsum("bt,bnt->bn", observation["user"], observation["doc_features"])
        else:
            keys = torch.rand((episodes, config.num_candidates), generator=generator, device=dev)
        slates = keys.topk(config.slate_size, dim=1).indices
        outcome = simulator.step(slates, check=False)
        live = running.float()
        totals["return"] += live * outcome.reward
        totals["length"] += live
        totals["clicks"] += live * outcome.clicks.any(1).float()
        running &= ~outcome.done
    return {metric: value.cpu().numpy() for metric, value in totals.items()}


def recsim(episodes: int, seed: int = 0, policy: str = "random") -> dict[str, np.ndarray]:
    """(episodes,) returns, lengths and clicks from RecSim's interest-evolution environment,
    built as RLlib's SlateQ example builds it, under the same policy as :func:`ours`."""
    # RecSim's module imports gin's TensorFlow integration, which recent TensorFlow releases
    # break (tf.estimator is gone) and which the environment never uses: a stand-in suffices.
    sys.modules.setdefault("gin.tf", types.ModuleType("gin.tf"))
    from recsim.environments import interest_evolution

    env = interest_evolution.create_environment(
        {"num_candidates": 10, "slate_size": 2, "resample_documents": True, "seed": seed}
    )
    env.seed(seed)  # NumPy's global state: RecSim's choice and interest-update draws
    rng = np.random.default_rng(seed + 1)
    totals = {metric: np.zeros(episodes) for metric in METRICS}
    for episode in range(episodes):
        observation = env.reset()
        done = False
        while not done:
            if policy == "greedy":
                documents = np.stack(list(observation["doc"].values()))
                slate = np.argsort(-(documents @ observation["user"]), kind="stable")[:2]
            else:
                slate = rng.permutation(10)[:2]
            observation, reward, done, _ = env.step(slate)
            totals["return"][episode] += reward
            totals["length"][episode] += 1
            totals["clicks"][episode] += any(response["click"] for response in observation["response"])
    return totals


def recsim_elsewhere(
    python: str, episodes: int, seed: int = 0, policy: str = "random"
) -> dict[str, np.ndarray]:
    """:func:`recsim` run by another interpreter (one with RecSim installed)."""
    command = [python, __file__, "--only-recsim", "--episodes", str(episodes), "--seed", str(seed)]
    command += ["--policy", policy]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    values = json.loads(completed.stdout.strip().splitlines()[-1])
    return {metric: np.asarray(values[metric]) for metric in METRICS}


def table(results: dict[str, dict[str, np.ndarray]]) -> str:
    """A Markdown table: mean and 95% CI of return, length and clicks per episode for each
    source, and the difference of the first two sources (Welch's normal interval)."""
    lines = [
        "| source | episodes | " + " | ".join(f"mean {metric} | 95% CI" for metric in METRICS) + " |",
        "|---|---|" + "---|---|" * len(METRICS),
    ]
    for name, values in results.items():
        cells = []
        for metric in METRICS:
            mean, low, high = mean_ci(values[metric])
            cells.append(f"{mean:.2f} | [{low:.2f}, {high:.2f}]")
        lines.append(f"| {name} | {len(values['return'])} | " + " | ".join(cells) + " |")
    if len(results) >= 2:
        (name_a, a), (name_b, b) = list(results.items())[:2]
        lines.append("")
        lines.append(f"| difference ({name_a} - {name_b}) | mean | 95% CI | contains 0 |")
        lines.append("|---|---|---|---|")
        for metric in METRICS:
            x, y = np.asarray(a[metric], float), np.asarray(b[metric], float)
            diff = x.mean() - y.mean()
            half = Z_95 * math.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
            lines.append(
                f"| {metric} | {diff:+.2f} | [{diff - half:+.2f}, {diff + half:+.2f}] "
                f"| {'yes' if abs(diff) <= half else 'no'} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000, help="episodes per source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--policy", choices=POLICIES, default="random")
    parser.add_argument("--recsim", action="store_true", help="also run RecSim's environment, here")
    parser.add_argument("--recsim-python", help="also run RecSim's environment, in this interpreter")
    parser.add_argument("--only-recsim", action="store_true", help="print RecSim's episodes as JSON")
    args = parser.parse_args(argv)
    if args.only_recsim:
        values = recsim(args.episodes, args.seed, args.policy)
        text = json.dumps({key: value.tolist() for key, value in values.items()})
        print(text)
        return text
    results = {"shopgym": ours(args.episodes, args.seed, args.device, args.policy)}
    if args.recsim:
        results["RecSim"] = recsim(args.episodes, args.seed, args.policy)
    elif args.recsim_python:
        results["RecSim"] = recsim_elsewhere(args.recsim_python, args.episodes, args.seed, args.policy)
    text = table(results)
    print(text)
    return text


if __name__ == "__main__":
    main()
