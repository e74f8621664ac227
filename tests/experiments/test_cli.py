"""The ``shopgym`` command: smoke runs on tiny budgets, listings, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pandas as pd
import pytest
import tyro

import shopgym.experiments.agent_run as agent_run
import shopgym.experiments.runner as runner
from shopgym.agents import AGENTS
from shopgym.envs import PRESETS
from shopgym.experiments.cli import main
from shopgym.experiments.runner import RunConfig, agent_hyperparameters, run_experiment
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
    # Agents that train first also have a learning curve and a training log.
    trained = [a for a in agents if AGENTS[a].trains_before_evaluation]
    expected |= {
        f"{a}__seed{s}.{ext}" for a in trained for s in range(seeds) for ext in ("curve.csv", "training.csv")
    }
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
    static = json.loads((tiny_run / "records" / "bpr-mf__seed0.json").read_text())
    assert static["training_env"]["shoppers"] == "train"
    assert static["agent"]["training_data"]["slates"] >= 200
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
    assert [line.split()[0] for line in table.splitlines()[2 : 2 + len(DEFAULT_AGENTS)]] == DEFAULT_AGENTS
    _check_run_directory(out, DEFAULT_AGENTS, seeds=2, episodes=20)
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["env"] == "shopgym/Shopper-v1"
    assert config["world"]["hash"] == movielens.hash


def test_runner_fits_on_train_shoppers_and_evaluates_held_out_ones(monkeypatch, tmp_path):
    made, evaluated = [], []
    make_env, evaluate = agent_run.make_env, agent_run.evaluate_detailed

    def spy_make_env(run, world, device, shoppers, oracle, episodes=None):
        env = make_env(run, world, device, shoppers, oracle, episodes)
        made.append((shoppers, oracle, env))
        return env

    def spy_evaluate(agent, env, episodes, seed):
        evaluated.append((agent.name, env, seed))
        return evaluate(agent, env, episodes, seed)

    monkeypatch.setattr(agent_run, "make_env", spy_make_env)
    monkeypatch.setattr(agent_run, "evaluate_detailed", spy_evaluate)
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
            agents="random,static-mf,ppo",
            seeds=1,
            episodes=20,
            num_envs=5,
            train_slates=1600,  # 10 of PPO's rollouts
            curve_points=points,
            out=out,
            device="cpu",
            progress=False,
        )
        run_experiment(config)
        frames.append(pd.read_csv(out / "episodes.csv"))
        assert (out / "curves.csv").is_file() == (points > 0)
    pd.testing.assert_frame_equal(frames[0], frames[1])
    # --curve-points sets how many points an agent that trains in steps takes, the last at the end.
    ppo = pd.read_csv(out / "curves.csv").query("agent == 'ppo'")
    assert ppo["steps"].tolist() == sorted(set(ppo["steps"])) and len(ppo) == 3
    assert ppo["steps"].iloc[-1] == 1600


def test_agents_command_lists_every_agent(capsys):
    assert main(["agents"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # One unindented line per agent (its hyperparameters indented below it), then a footer.
    listed = [line.split()[0] for line in lines if line and not line[0].isspace()]
    assert listed[: len(AGENTS)] == list(AGENTS)
    assert "--agent-options" in lines[-2]


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


# --agent-options: hyperparameters and training budgets per agent.

OPTIONS_RUN = [
    "run",
    "--env",
    SYNTHETIC_ID,
    "--agents",
    "random,epsilon-greedy,static-mf",
    "--seeds",
    "1",
    "--episodes",
    "10",
    "--num-envs",
    "5",
    "--train-slates",
    "100",
    "--curve-points",
    "0",
    "--no-progress",
]


def _options_run(out: Path, *options: str, flags: tuple[str, ...] = ()) -> int:
    argv = [*OPTIONS_RUN, *flags, "--out", str(out)]
    return run_cli([*argv, "--agent-options", *options] if options else argv)


def _meta(out: Path, agent: str, seed: int = 0) -> dict:
    return json.loads((out / "records" / f"{agent}__seed{seed}.json").read_text())


def _contents(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_agent_options_are_parsed_as_literals_else_strings():
    config = RunConfig(
        agents="slateq,ppo,planning-oracle",
        agent_options=(
            "slateq.lr=1e-3",
            "slateq.target=q-learning",  # not a literal: a string
            " slateq.double_q = False ",
            "ppo.hidden_sizes=[32, 32]",  # a list where the default is a tuple: a tuple
            "ppo.target_kl=None",
            "ppo.train_slates=500",
            "planning-oracle.horizon=3",
        ),
    )
    config.validate()
    options = config.options()
    assert options["slateq"] == {"lr": 0.001, "target": "q-learning", "double_q": False}
    assert options["ppo"] == {"hidden_sizes": (32, 32), "target_kl": None, "train_slates": 500}
    assert config.agent_kwargs("ppo") == {"hidden_sizes": (32, 32), "target_kl": None}
    assert config.train_budget("ppo") == 500
    assert config.train_budget("slateq") == config.train_slates  # the global --train-slates
    assert config.options()["planning-oracle"] == {"horizon": 3}


def test_agent_options_flag_takes_several_values():
    args = ["--agent-options", "ppo.n_epochs=8", "slateq.lr=1e-3", "--seeds", "2"]
    command = tyro.cli(RunConfig, args=args)
    assert command.agent_options == ("ppo.n_epochs=8", "slateq.lr=1e-3")
    assert command.seeds == 2


def test_agent_hyperparameters_follow_the_constructors_kwargs():
    # bpr-mf passes **training on to the base class: its parameters are bpr-mf's too.
    parameters, open_ = agent_hyperparameters(AGENTS["bpr-mf"])
    assert {"dim", "weight_decay", "logging_policy", "epochs", "lr"} <= set(parameters) and not open_
    assert parameters["weight_decay"].default == 0.001  # the subclass's default, not the base's
    assert not {"observation_space", "action_space", "seed", "device"} & set(parameters)
    assert agent_hyperparameters(AGENTS["random"]) == ({}, False)
    # The SB3 agents pass other keywords to the SB3 algorithm.
    parameters, open_ = agent_hyperparameters(AGENTS["sb3-ppo"])
    assert {"log_std_init", "slate_gamma", "hidden"} <= set(parameters) and open_


def test_agent_options_reach_the_agents_and_the_records(monkeypatch, tmp_path):
    built = []
    make_agent = runner.make_agent

    def spy_make_agent(name, observation_space, action_space, seed, device, **kwargs):
        agent = make_agent(name, observation_space, action_space, seed, device, **kwargs)
        built.append((name, seed, kwargs, agent))
        return agent

    # The options check builds agents in the runner, the runs in agent_run.
    monkeypatch.setattr(runner, "make_agent", spy_make_agent)
    monkeypatch.setattr(agent_run, "make_agent", spy_make_agent)
    out = tmp_path / "run"
    options = ("epsilon-greedy.epsilon=0.5", "static-mf.epochs=2", "static-mf.train_slates=60")
    assert _options_run(out, *options) == 0
    # Built once to check the options (seed 0), then for the run.
    runs = {name: (kwargs, agent) for name, seed, kwargs, agent in built}
    assert runs["epsilon-greedy"][0] == {"epsilon": 0.5} and runs["epsilon-greedy"][1].epsilon == 0.5
    assert runs["static-mf"][0] == {"epochs": 2} and runs["static-mf"][1].epochs == 2
    assert runs["random"][0] == {}
    assert _meta(out, "epsilon-greedy")["agent"]["epsilon"] == 0.5
    static_mf = _meta(out, "static-mf")
    assert static_mf["options"] == {"epochs": 2, "train_slates": 60}
    # Its own budget, not --train-slates 100.
    assert static_mf["training_env"]["budget_slates"] == 60
    assert 60 <= static_mf["agent"]["training_data"]["slates"] < 100
    config = json.loads((out / "config.json").read_text())
    assert config["agent_options"] == {
        "random": {},
        "epsilon-greedy": {"epsilon": 0.5},
        "static-mf": {"epochs": 2, "train_slates": 60},
    }
    assert config["run"]["agent_options"] == list(options)


BAD_OPTIONS = [
    ("epsilon-greedy.epsilon", "not AGENT.PARAM=VALUE"),
    ("epsilon-greedy=0.5", "not AGENT.PARAM=VALUE"),
    (".epsilon=0.5", "not AGENT.PARAM=VALUE"),
    ("epsilon-greedy.epsilon=", "not AGENT.PARAM=VALUE"),
    ("ucb1.exploration=1", "not among --agents"),
    ("bogus.x=1", "not among --agents"),
    ("epsilon-greedy.bogus=1", "it takes epsilon, prior_impressions"),
    ("static-mf.bogus=1", "train_slates"),  # the accepted list names the budget too
    ("epsilon-greedy.seed=3", "the runner sets it"),
    ("epsilon-greedy.epsilon=abc", "takes a number"),
    ("static-mf.epochs=2.5", "takes an int"),
    ("epsilon-greedy.epsilon=2", "epsilon must be in [0, 1]"),  # the constructor's own check
    ("static-mf.train_slates=0", "int >= 1"),
    ("static-mf.train_slates=1.5", "int >= 1"),
    ("random.train_slates=5", "does not train before evaluation"),
]


@pytest.mark.parametrize(("entry", "detail"), BAD_OPTIONS)
def test_bad_agent_options_give_one_line_errors_naming_the_entry(entry, detail, capsys, tmp_path):
    out = tmp_path / "run"
    assert _options_run(out, entry) == 2
    captured = capsys.readouterr()
    error = captured.err
    assert error.startswith("shopgym: error: --agent-options")
    assert error.count("\n") == 1, error
    assert repr(entry) in error and detail in error, error
    assert "Traceback" not in error + captured.out
    assert not out.exists()  # nothing written before the options are checked


def test_agent_option_given_twice_is_an_error(capsys, tmp_path):
    assert _options_run(tmp_path / "run", "epsilon-greedy.epsilon=0.2", "epsilon-greedy.epsilon=0.3") == 2
    assert "given twice" in capsys.readouterr().err


def test_resume_with_other_agent_options_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert _options_run(out, "epsilon-greedy.epsilon=0.5", "static-mf.train_slates=60") == 0
    (out / "records" / "random__seed0.csv").unlink()  # something to resume
    before = _contents(out)
    for options in (
        ("epsilon-greedy.epsilon=0.4", "static-mf.train_slates=60"),
        ("static-mf.train_slates=60",),  # epsilon-greedy back at its defaults
        ("epsilon-greedy.epsilon=0.5", "static-mf.train_slates=80"),
    ):
        capsys.readouterr()
        assert _options_run(out, *options) == 2
        error = capsys.readouterr().err
        assert error.startswith("shopgym: error: ") and error.count("\n") == 1, error
        assert str(out) in error and "agent options" in error and "choose another --out" in error
        assert _contents(out) == before
    # The same options (an option at its default value is no change) resume it.
    same = ("static-mf.train_slates=60", "epsilon-greedy.epsilon=0.5", "static-mf.dim=16")
    assert _options_run(out, *same) == 0
    assert "resuming: 2 (agent, seed) runs already recorded" in capsys.readouterr().out


def test_resume_records_the_options_of_agents_new_to_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert _options_run(out, "epsilon-greedy.epsilon=0.5") == 0
    # A new agent with options of its own joins the run directory.
    options = ("epsilon-greedy.epsilon=0.5", "ucb1.exploration=0.7")
    assert _options_run(out, *options, flags=("--agents", "epsilon-greedy,ucb1")) == 0
    recorded = json.loads((out / "config.json").read_text())["agent_options"]
    assert recorded["ucb1"] == {"exploration": 0.7} and recorded["epsilon-greedy"] == {"epsilon": 0.5}
    assert _meta(out, "ucb1")["agent"]["exploration"] == 0.7
    capsys.readouterr()
    # ... so a later run cannot give it other ones.
    assert _options_run(out, flags=("--agents", "ucb1")) == 2
    assert "ucb1 records" in capsys.readouterr().err


def test_run_directory_without_recorded_agent_options_resumes_at_the_defaults(tiny_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(tiny_run, out)
    # As written before --agent-options: no "agent_options" in config.json.
    config = json.loads((out / "config.json").read_text())
    del config["agent_options"]
    (out / "config.json").write_text(json.dumps(config))
    (out / "records" / "random__seed0.csv").unlink()
    argv = [*TINY_RUN, "--out", str(out), "--agents", "random,linucb"]
    assert run_cli([*argv, "--agent-options", "linucb.exploration=0.9"]) == 2
    assert "linucb records with agent options none (the defaults)" in capsys.readouterr().err
    assert run_cli([*argv, "--agent-options", "linucb.exploration=0.5"]) == 0  # its default
    assert "resuming: 3 (agent, seed) runs already recorded" in capsys.readouterr().out


def test_agents_command_lists_hyperparameters_with_defaults(capsys):
    assert main(["agents"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("epsilon-greedy "))
    assert lines[start + 1 : start + 3] == ["    epsilon=0.1", "    prior_impressions=1.0"]
    slateq = lines[next(i for i, line in enumerate(lines) if line.startswith("slateq ")) :]
    assert slateq[1].startswith("    train_slates=")  # agents that train have a budget
    assert "    lr=0.001" in slateq
    assert "    logging_policy='random'" in lines  # inherited by the static recommenders


def test_agents_command_prints_one_agents_documentation(capsys):
    assert main(["agents", "epsilon-greedy"]) == 0
    output = capsys.readouterr().out
    assert output.startswith("epsilon-greedy\n")
    assert "epsilon: exploration probability" in output  # from the docstring's Args
    assert output.rstrip().endswith("    prior_impressions=1.0")
    assert main(["agents", "bogus"]) == 2
    assert "unknown agent 'bogus'" in capsys.readouterr().err
