"""The ``shopgym`` command: smoke runs on tiny budgets, listings, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pandas as pd
import pytest

import shopgym.experiments.runner as runner
from shopgym.agents import AGENTS
from shopgym.envs import PRESETS
from shopgym.experiments.cli import main
from shopgym.experiments.runner import RunConfig, run_experiment
from shopgym.experiments.stats import summarize

from .helpers import SYNTHETIC_ID, TINY_RUN, run_cli

DEFAULT_AGENTS = RunConfig().agent_names()

EPISODE_COLUMNS = {"agent", "seed", "episode", "return", "clicks", "purchases", "length"}


def _check_run_directory(out: Path, agents: list[str], seeds: int, episodes: int) -> pd.DataFrame:
    for name in ("config.json", "episodes.csv", "summary.csv", "reward_curve.png"):
        assert (out / name).is_file(), name
    assert (out / "reward_curve.png").stat().st_size > 0
    frame = pd.read_csv(out / "episodes.csv")
    assert set(frame.columns) >= EPISODE_COLUMNS
    assert len(frame) == len(agents) * seeds * episodes
    counts = frame.groupby(["agent", "seed"]).size()
    assert counts.to_dict() == {(a, s): episodes for a in agents for s in range(seeds)}
    expected = {f"{a}__seed{s}.{ext}" for a in agents for s in range(seeds) for ext in ("csv", "json")}
    # Agents that train first also have a learning curve.
    trained = [a for a in agents if AGENTS[a].trains_before_evaluation]
    expected |= {f"{a}__seed{s}.curve.csv" for a in trained for s in range(seeds)}
    assert {path.name for path in (out / "records").iterdir()} == expected
    if trained:
        curves = pd.read_csv(out / "curves.csv")
        assert set(curves["agent"]) == set(trained)
        assert (curves["steps"] > 0).all() and (curves["episodes"] > 0).all()
        assert (out / "learning_curve.png").stat().st_size > 0
    assert not list(out.rglob("*.tmp"))
    return frame


def test_tiny_synthetic_run_writes_the_run_directory(tiny_run, synthetic):
    agents = DEFAULT_AGENTS
    frame = _check_run_directory(tiny_run, agents, seeds=2, episodes=20)
    assert frame["agent"].unique().tolist() == agents
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["world"]["hash"] == synthetic.hash
    assert config["run"]["env"] == SYNTHETIC_ID
    assert config["run"]["episodes"] == 20 and config["run"]["seeds"] == 2
    assert config["evaluation"]["shoppers"].startswith("test")
    assert config["shopper_config"]["slate_size"] == 3
    for agent in agents:
        for seed in range(2):
            meta = json.loads((tiny_run / "records" / f"{agent}__seed{seed}.json").read_text())
            assert meta["world_hash"] == synthetic.hash
            assert meta["seed"] == seed
            assert meta["agent"]["name"] == agent
            records = pd.read_csv(tiny_run / "records" / f"{agent}__seed{seed}.csv")
            pd.testing.assert_frame_equal(
                records,
                frame[(frame["agent"] == agent) & (frame["seed"] == seed)].reset_index(drop=True),
            )
    static_mf = json.loads((tiny_run / "records" / "static-mf__seed0.json").read_text())
    assert static_mf["training_env"]["shoppers"] == "train"
    assert static_mf["agent"]["training_data"]["slates"] >= 200
    # Agents that do not train before evaluation get no training environment.
    assert "training_env" not in json.loads((tiny_run / "records" / "random__seed0.json").read_text())


def test_summary_can_be_recomputed_from_episodes_csv_alone(tiny_run):
    recomputed = summarize(pd.read_csv(tiny_run / "episodes.csv"))
    pd.testing.assert_frame_equal(recomputed, pd.read_csv(tiny_run / "summary.csv"))


def test_default_env_smoke_run(movielens, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--seeds", "2", "--episodes", "20", "--train-slates", "200"]
    assert run_cli([*argv, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert movielens.hash in printed
    table = printed[printed.index("agent  ") :]
    assert [line.split()[0] for line in table.splitlines()[2:7]] == DEFAULT_AGENTS
    _check_run_directory(out, DEFAULT_AGENTS, seeds=2, episodes=20)
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["env"] == "shopgym/Shopper-v0"
    assert config["world"]["hash"] == movielens.hash


def test_runner_fits_on_train_shoppers_and_evaluates_held_out_ones(monkeypatch, tmp_path):
    made, evaluated = [], []
    make_env, evaluate = runner._make_env, runner.evaluate

    def spy_make_env(config, world, device, shoppers, oracle, episodes=None):
        env = make_env(config, world, device, shoppers, oracle, episodes)
        made.append((shoppers, oracle, env))
        return env

    def spy_evaluate(agent, env, episodes, seed):
        evaluated.append((agent.name, env, seed))
        return evaluate(agent, env, episodes, seed)

    monkeypatch.setattr(runner, "_make_env", spy_make_env)
    monkeypatch.setattr(runner, "evaluate", spy_evaluate)
    config = RunConfig(
        env=SYNTHETIC_ID,
        seeds=2,
        episodes=10,
        num_envs=5,
        train_slates=50,
        curve_points=0,  # evaluations here are the final ones only
        out=tmp_path,
        device="cpu",
        progress=False,
    )
    run_experiment(config)
    assert len(evaluated) == len(DEFAULT_AGENTS) * 2
    test_envs = {id(env) for shoppers, _, env in made if shoppers == "test"}
    for name, env, _ in evaluated:
        assert id(env) in test_envs
        # Only the oracle sees true utilities.
        assert env.oracle_info == AGENTS[name].needs_oracle
    assert all(not oracle for shoppers, oracle, _ in made if shoppers == "train")
    world = made[0][2].simulator.world
    for shoppers, _, env in made:
        population = env.simulator.population.members
        assert set(population.tolist()) == set(world.shopper_indices(shoppers).tolist())
    assert sorted(seed for _, _, seed in evaluated) == [0] * len(DEFAULT_AGENTS) + [1] * len(DEFAULT_AGENTS)


def test_learning_curves_change_no_final_record(tmp_path):
    frames = []
    for points in (0, 3):
        out = tmp_path / f"points{points}"
        config = RunConfig(
            env=SYNTHETIC_ID,
            agents="random,static-mf",
            seeds=1,
            episodes=20,
            num_envs=5,
            train_slates=200,
            curve_points=points,
            out=out,
            device="cpu",
            progress=False,
        )
        run_experiment(config)
        frames.append(pd.read_csv(out / "episodes.csv"))
        assert (out / "curves.csv").is_file() == (points > 0)
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_agents_command_lists_every_agent(capsys):
    assert main(["agents"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(AGENTS)


def test_envs_command_lists_every_registered_id(capsys):
    assert main(["envs"]) == 0
    output = capsys.readouterr().out
    listed = [line.split()[0] for line in output.splitlines()]
    assert set(PRESETS) <= set(listed)
    registered = sorted(env_id for env_id in gym.registry if env_id.startswith("shopgym/"))
    assert sorted(listed) == registered


def test_console_script_runs():
    script = Path(sys.executable).parent / "shopgym"
    result = subprocess.run([str(script), "agents"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    for name in AGENTS:
        assert name in result.stdout


BAD_INPUT = [
    (["--agents", "random,bogus"], "--agents", "bogus"),
    (["--agents", "random,random"], "--agents", "twice"),
    (["--agents", ","], "--agents", "at least one"),
    (["--env", "shopgym/Nope-v0"], "--env", "shopgym/Nope-v0"),
    (["--seeds", "0"], "--seeds", ">= 1"),
    (["--episodes", "0"], "--episodes", ">= 1"),
    (["--num-envs", "0"], "--num-envs", ">= 1"),
    (["--device", "bogus"], "--device", "bogus"),
    (["--world", "/nonexistent"], "--world", "/nonexistent"),
]


@pytest.mark.parametrize(("flags", "option", "detail"), BAD_INPUT)
def test_bad_input_gives_one_line_error_and_exit_code_2(flags, option, detail, capsys, tmp_path):
    out = tmp_path / "run"
    argv = [*TINY_RUN, "--out", str(out)]
    # Replace the flag's value where TINY_RUN already sets it.
    if flags[0] in argv:
        argv[argv.index(flags[0]) + 1] = flags[1]
    else:
        argv += flags
    assert main(argv) == 2
    captured = capsys.readouterr()
    error = captured.err
    assert error.startswith("shopgym: error: ")
    assert error.count("\n") == 1 and error.endswith("\n"), error
    assert option in error and detail in error
    assert "Traceback" not in error + captured.out
    assert not out.exists()  # nothing written before the input is checked


def test_unknown_flag_exits_with_code_2_from_tyro(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["run", "--bogus"])
    assert raised.value.code == 2
    assert "--bogus" in capsys.readouterr().err


def test_out_naming_a_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    assert run_cli([*TINY_RUN, "--out", str(path)]) == 2
    assert capsys.readouterr().err.startswith("shopgym: error: --out")
