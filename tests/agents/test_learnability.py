"""Learnability: agents are ordered as they must be, with non-overlapping 95% CIs.

On the default MovieLens shoppers: oracle > static MF > random. On the synthetic
shoppers: the ε-greedy bandit learns online (its late rounds beat its first ones)
and beats random.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from shopgym.agents import make_agent
from shopgym.experiments.evaluation import evaluate
from shopgym.experiments.runner import RunConfig, run_experiment
from shopgym.experiments.stats import bootstrap_ci, summarize

from .helpers import synthetic_env


def test_oracle_beats_static_mf_beats_random_on_movielens(movielens, tmp_path):
    config = RunConfig(
        env="shopgym/Shopper-v0",
        agents="random,static-mf,oracle",
        seeds=5,
        episodes=300,
        train_slates=3000,
        num_envs=50,
        out=tmp_path,
        device="cpu",
        progress=False,
    )
    out = run_experiment(config)
    assert json.loads((out / "config.json").read_text())["world"]["hash"] == movielens.hash
    summary = summarize(pd.read_csv(out / "episodes.csv")).set_index("agent")
    print("\n" + summary[["return", "return_low", "return_high", "ctr"]].to_string())
    random, static_mf, oracle = (summary.loc[name] for name in ("random", "static-mf", "oracle"))
    assert (summary["seeds"] == 5).all() and (summary["episodes"] == 1500).all()
    # Non-overlapping 95% bootstrap intervals of the mean return over seeds.
    assert oracle["return_low"] > static_mf["return_high"]
    assert static_mf["return_low"] > random["return_high"]
    # The same order holds for the click-through rate.
    assert oracle["ctr"] > static_mf["ctr"] > random["ctr"]
    # The static recommender says what it was trained on.
    meta = json.loads((out / "records" / "static-mf__seed0.json").read_text())
    assert meta["agent"]["training_data"]["shoppers"] == "train"
    assert meta["agent"]["training_data"]["slates"] >= 3000


def _mean_returns(name: str, num_envs: int, episodes: int, seeds: range) -> list[pd.DataFrame]:
    records = []
    for seed in seeds:
        env = synthetic_env(num_envs, shoppers="test")
        agent = make_agent(
            name, env.single_observation_space, env.single_action_space, seed=seed, device="cpu"
        )
        records.append(evaluate(agent, env, episodes, seed=seed))
    return records


def test_epsilon_greedy_learns_online_and_beats_random_on_synthetic_shoppers():
    seeds = range(10)
    # Few parallel shoppers and many rounds (120), so that learning shows across rounds.
    bandit = _mean_returns("epsilon-greedy", num_envs=5, episodes=600, seeds=seeds)
    random = _mean_returns("random", num_envs=50, episodes=600, seeds=seeds)
    rounds, fifth = 120, 24
    assert all(frame["round"].max() + 1 == rounds for frame in bandit)
    first = np.array([f.loc[f["round"] < fifth, "return"].mean() for f in bandit])
    last = np.array([f.loc[f["round"] >= rounds - fifth, "return"].mean() for f in bandit])
    overall = np.array([f["return"].mean() for f in bandit])
    random_overall = np.array([f["return"].mean() for f in random])
    print(f"\nfirst rounds {first.round(2)}, last rounds {last.round(2)}, random {random_overall}")
    # Learns online: the per-seed gain from the first to the last fifth of rounds is positive.
    gain_low, _ = bootstrap_ci(last - first)
    assert gain_low > 0
    _, random_high = bootstrap_ci(random_overall)
    assert bootstrap_ci(overall)[0] > random_high
    assert bootstrap_ci(last)[0] > random_high
