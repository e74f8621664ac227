"""A small, made-up experiment directory in the layout that ``shopgym compare`` writes.

The plot and report tests read it instead of running an experiment: it has every file
they read, with the columns of the layout, and values that look like real ones (the
oracle ahead, PPO improving along its learning curve, a static recommender that says
what it was trained on). The statistics in it are simple stand-ins for stats.py's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

PRESETS = ("base", "long-sessions")
AGENTS = ("ppo", "bpr-mf", "planning-oracle")
WORLD_HASH = "0123456789abcdef"
SEEDS = (0, 1, 2)
SLATE_SIZE = 3
EPISODES = 8  # per run
NUM_ENVS = 4
CURVE_STEPS = (100, 200, 300, 400)
# Text that must come out escaped in the HTML report.
DESCRIPTION = "A tiny <fake> experiment: PPO & BPR-MF against the planning oracle."

_LEVEL = {"ppo": 2.0, "bpr-mf": 1.5, "planning-oracle": 4.0}


def write_fake_experiment(out: Path) -> Path:
    """Write the experiment directory ``out`` (created) and return it."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    (out / "experiment.toml").write_text('name = "fake"\nseeds = 3\n')
    _write_json(out / "experiment.json", _experiment_document())
    # Per preset, the World it ran on (both presets on the same one), as compare writes it.
    world = {"hash": WORLD_HASH, "folder": "/data/worlds/fake", "card": _card()}
    _write_json(out / "world.json", {preset: world for preset in PRESETS})

    episodes, curves = [], []
    for preset in PRESETS:
        for agent in AGENTS:
            for seed in SEEDS:
                records = _records(rng, preset, agent)
                run = out / "runs" / f"{preset}__{agent}__seed{seed}"
                run.mkdir(parents=True)
                records.to_csv(run / "records.csv", index=False)
                _write_json(run / "config.json", _run_config(preset, agent, seed))
                _write_json(run / "meta.json", _meta(agent))
                (run / "log.txt").write_text(f"{preset} {agent} seed {seed}: done\n")
                episodes.append(records.assign(preset=preset, agent=agent, seed=seed))
                if agent == "ppo":
                    curve = _curve(rng, preset)
                    curve.to_csv(run / "curve.csv", index=False)
                    curves.append(curve.assign(preset=preset, agent=agent, seed=seed))
    keys = ["preset", "agent", "seed"]
    episodes = pd.concat(episodes, ignore_index=True)
    episodes = episodes[keys + [c for c in episodes.columns if c not in keys]]
    curves = pd.concat(curves, ignore_index=True)
    curves = curves[keys + [c for c in curves.columns if c not in keys]]
    scores = _scores(episodes)
    episodes.to_csv(out / "episodes.csv", index=False)
    curves.to_csv(out / "curves.csv", index=False)
    scores.to_csv(out / "scores.csv", index=False)
    _summary(scores).to_csv(out / "summary.csv", index=False)
    _improvement(scores).to_csv(out / "improvement.csv", index=False)
    return out


def _write_json(path: Path, document: dict) -> None:
    path.write_text(json.dumps(document, indent=2))


def _experiment_document() -> dict:
    presets = [
        {
            "label": "base",
            "env": "shopgym/SyntheticShopper-v0",
            "options": {},
            "shopper_config": {"slate_size": SLATE_SIZE, "max_steps": 50},
            "world_hash": WORLD_HASH,
        },
        {
            "label": "long-sessions",
            "env": "shopgym/SyntheticShopper-v0",
            "options": {"max_steps": 100, "patience": 20.0},
            "shopper_config": {"slate_size": SLATE_SIZE, "max_steps": 100, "patience": 20.0},
            "world_hash": WORLD_HASH,
        },
    ]
    agents = [
        {"label": "ppo", "name": "ppo", "options": {"n_epochs": 4}, "train_slates": 400},
        {"label": "bpr-mf", "name": "bpr-mf", "options": {}, "train_slates": 200},
        {"label": "planning-oracle", "name": "planning-oracle", "options": {}, "train_slates": None},
    ]
    return {
        "name": "fake-comparison",
        "description": DESCRIPTION,
        "experiment": {
            "name": "fake-comparison",
            "seeds": len(SEEDS),
            "episodes": EPISODES,
            "num_envs": NUM_ENVS,
        },
        "presets": presets,
        "agents": agents,
        "seeds": list(SEEDS),
        "code": {
            "version": "0.3.0",
            "source": "5f1c0ffee0ddba11",
            "commit": "cfe8030" * 5 + "12345",
            "dirty": False,
        },
        "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "gymnasium": "1.4.0"},
        "device": "cpu",
    }


def _card() -> dict:
    return {
        "name": "fake-world",
        "data": {"source": "data/fake/ratings.csv.gz", "sha256": "ab" * 32, "events": 1000},
        "split": {"protocol": "leave-last-out by time", "users": 50, "items": 120},
        "preference_model": {"model": "neumf", "dim": 8},
        "fit": {
            "wall_time_s": 1.5,
            "test_metrics": {
                "neumf": {"hr@10": 0.0626, "ndcg@10": 0.0321},
                "popularity": {"hr@10": 0.0432, "ndcg@10": 0.0198},
            },
        },
        "ground_truth": {
            "calibration": {
                "beta": 2.0,
                "no_click_utility": 2.16,
                "position_logits": [0.0, -0.23, -0.46],
                "target": {"ctr": [0.043, 0.035, 0.029], "source": "stated: 0.15 per slate, decay 0.2"},
            }
        },
        "world_hash": WORLD_HASH,
    }


def _run_config(preset: str, agent: str, seed: int) -> dict:
    options = {"max_steps": 100, "patience": 20.0} if preset == "long-sessions" else {}
    run = {
        "env": "shopgym/SyntheticShopper-v0",
        "agent": agent,
        "seed": seed,
        "episodes": EPISODES,
        "train_slates": {"ppo": 400, "bpr-mf": 200}.get(agent, 0),
        "num_envs": NUM_ENVS,
        "curve_points": 4 if agent == "ppo" else 0,
        "curve_episodes": 20,
        "env_options": options,
        "agent_options": {"n_epochs": 4} if agent == "ppo" else {},
        "details": True,
    }
    code = {"version": "0.3.0", "source": "5f1c0ffee0ddba11", "commit": None, "dirty": None}
    return {
        "preset": preset,
        "agent": agent,
        "run": run,
        "world_hash": WORLD_HASH,
        "device": "cpu",
        "code": code,
    }


def _meta(agent: str) -> dict:
    describe = {"name": agent}
    training_env = None
    if agent == "bpr-mf":
        describe["training_data"] = {
            "source": "log collected in the simulator",
            "logging_policy": "random",
            "logging_policy_detail": "uniformly random slates",
            "shoppers": "train",
            "slates": 200,
            "clicks": 24,
        }
        training_env = {"shoppers": "train", "budget_slates": 200}
    elif agent == "ppo":
        describe["training_data"] = {"slates": 400, "updates": 2, "shoppers": "train"}
        training_env = {"shoppers": "train", "budget_slates": 400}
    else:
        describe["rollouts"] = 8
    return {
        "agent": describe,
        "training_env": training_env,
        "catalogue_size": 120,
        "slate_size": SLATE_SIZE,
        "train_wall_time_s": 1.25 if training_env else 0.0,
        "curve_wall_time_s": 0.5 if agent == "ppo" else 0.0,
        "eval_wall_time_s": 0.75,
    }


def _records(rng: np.random.Generator, preset: str, agent: str) -> pd.DataFrame:
    level = _LEVEL[agent] * (1.5 if preset == "long-sessions" else 1.0)
    rows = []
    for episode in range(EPISODES):
        length = int(rng.integers(3, 10))
        # Clicks fall with the position, as the position logits make them.
        clicks_p = [int(rng.binomial(length, min(0.9, level / 10) * 0.7**p)) for p in range(SLATE_SIZE)]
        clicks = sum(clicks_p)
        purchases = int(rng.binomial(clicks, 0.4))
        rows.append(
            {
                "episode": episode,
                "round": episode // NUM_ENVS,
                "env_index": episode % NUM_ENVS,
                "return": float(clicks + purchases),
                "clicks": clicks,
                "purchases": purchases,
                "length": length,
                "revenue": purchases * float(rng.lognormal(0, 0.3)),
                "ndcg": float(rng.uniform(0.3, 0.6) + 0.05 * level),
                "ild": float(rng.uniform(0.4, 0.8)),
                "novelty": float(rng.uniform(5, 8)),
                **{f"clicks_p{p}": clicks_p[p] for p in range(SLATE_SIZE)},
            }
        )
    return pd.DataFrame(rows)


def _curve(rng: np.random.Generator, preset: str) -> pd.DataFrame:
    scale = 1.5 if preset == "long-sessions" else 1.0
    rows = []
    for point, steps in enumerate(CURVE_STEPS):
        value = scale * (0.5 + 0.5 * point) + float(rng.normal(0, 0.1))
        rows.append(
            {
                "steps": steps,
                "episodes": 20,
                "return": value,
                "return_low": value - 0.3,
                "return_high": value + 0.3,
            }
        )
    return pd.DataFrame(rows)


def _scores(episodes: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (preset, agent, seed), group in episodes.groupby(["preset", "agent", "seed"], sort=False):
        slates = group["length"].sum()
        row = {"preset": preset, "agent": agent, "seed": seed, "episodes": len(group)}
        row |= {
            m: group[m].mean() for m in ("return", "purchases", "revenue", "length", "ndcg", "ild", "novelty")
        }
        row["ctr"] = group["clicks"].sum() / slates
        row["coverage"] = 0.1 + 0.01 * seed
        row |= {f"ctr_p{p}": group[f"clicks_p{p}"].sum() / slates for p in range(SLATE_SIZE)}
        rows.append(row)
    scores = pd.DataFrame(rows)
    oracle = scores[scores["agent"] == "planning-oracle"].set_index(["preset", "seed"])["return"]
    scores["regret"] = [
        oracle[(preset, seed)] - value
        for preset, seed, value in zip(scores["preset"], scores["seed"], scores["return"], strict=True)
    ]
    return scores


def _metric_names(scores: pd.DataFrame) -> list[str]:
    return [c for c in scores.columns if c not in ("preset", "agent", "seed")]


def _summary(scores: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (preset, agent), group in scores.groupby(["preset", "agent"], sort=False):
        row = {"preset": preset, "agent": agent, "seeds": len(group)}
        for metric in _metric_names(scores):
            values = group[metric].to_numpy(dtype=float)
            mean, half = values.mean(), 4.3 * values.std(ddof=1) / np.sqrt(len(values))
            iqm = float(np.median(values))  # the middle one of 3 seeds is their IQM, near enough
            row |= {metric: mean, f"{metric}_low": mean - half, f"{metric}_high": mean + half}
            row |= {f"{metric}_iqm": iqm, f"{metric}_iqm_low": iqm - half, f"{metric}_iqm_high": iqm + half}
        rows.append(row)
    return pd.DataFrame(rows)


def _improvement(scores: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for preset, group in scores.groupby("preset", sort=False):
        returns = {agent: g["return"].to_numpy() for agent, g in group.groupby("agent", sort=False)}
        for x, ours in returns.items():
            for y, theirs in returns.items():
                if x == y:
                    continue
                probability = float((ours[:, None] > theirs[None, :]).mean())
                rows.append(
                    {
                        "preset": preset,
                        "x": x,
                        "y": y,
                        "probability": probability,
                        "low": max(0.0, probability - 0.2),
                        "high": min(1.0, probability + 0.2),
                        "seeds_x": len(ours),
                        "seeds_y": len(theirs),
                    }
                )
    return pd.DataFrame(rows)
