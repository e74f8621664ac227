"""Learnability: agents are ordered as they must be, with non-overlapping 95% CIs.

On the default MovieLens shoppers: oracle > static MF > random. On the synthetic
shoppers: the ε-greedy bandit learns online (its late rounds beat its first ones)
and beats random. When one slate is best for everyone, learners approach the oracle.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from shopgym.agents import AGENTS, make_agent
from shopgym.envs import ShopperVectorEnv
from shopgym.experiments.evaluation import evaluate
from shopgym.experiments.runner import RunConfig, run_experiment
from shopgym.experiments.stats import bootstrap_ci, summarize
from shopgym.simulator.build import synthetic_world

from .helpers import synthetic_env


def test_oracle_beats_static_mf_beats_random_on_movielens(movielens, tmp_path):
    config = RunConfig(
        env="shopgym/Shopper-v0",
        agents="random,static-mf,oracle",
        seeds=5,
        episodes=300,
        train_slates=10000,
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
    assert meta["training_env"]["shoppers"] == "train"
    assert meta["agent"]["training_data"]["slates"] >= 10000


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
    seeds = range(24)
    # 120 rounds of 10 parallel shoppers, so that learning shows across rounds; the
    # gain is a fraction of a click per session, hence 24 seeds (15 left the gain's
    # interval touching 0 for some random streams).
    bandit = _mean_returns("epsilon-greedy", num_envs=10, episodes=1200, seeds=seeds)
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


def test_learning_agents_approach_the_oracle_when_one_slate_is_best_for_everyone():
    # personalization=0: utilities are the item bias alone, so the best slate is known
    # and the same for every shopper; learners should close most of the gap to the oracle.
    world = synthetic_world(personalization=0.0)
    options = {"world": world, "num_candidates": 10, "slate_size": 3, "device": "cpu"}

    def returns(name: str) -> np.ndarray:
        per_seed = []
        for seed in range(5):
            agent_class = AGENTS[name]
            env = ShopperVectorEnv(10, shoppers="test", oracle_info=agent_class.needs_oracle, **options)
            agent = make_agent(name, env.single_observation_space, env.single_action_space, seed=seed)
            if agent_class.trains_before_evaluation:
                agent.fit(ShopperVectorEnv(10, shoppers="train", **options), 3000, seed=100 + seed)
            records = evaluate(agent, env, 400, seed=seed)
            # The last quarter of the rounds: after online learners have had time to learn.
            per_seed.append(records.loc[records["round"] >= 30, "return"].mean())
        return np.array(per_seed)

    random, oracle = returns("random").mean(), returns("oracle").mean()
    for name in ("epsilon-greedy", "static-mf"):
        low, _ = bootstrap_ci((returns(name) - random) / (oracle - random))
        assert low > 0.75, f"{name} closes only {low:.2f} of the gap to the oracle"
