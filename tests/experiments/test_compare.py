"""``shopgym compare``: experiment files, the grid, resumption, the lock, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from shopgym.experiments import compare as compare_module
from shopgym.experiments.compare import CompareConfig, compare, directory_lock
from shopgym.experiments.experiment import CONFIGS, expand_runs, experiment_path, load_experiment
from shopgym.simulator.errors import ConfigError, DataError

from .helpers import run_cli

# A grid that runs in seconds: two agents (one that trains, with a learning curve) x
# two seeds on the small synthetic World, and the planning oracle for the regret.
TINY = """
name = "tiny"
description = "A test grid."
seeds = 2
episodes = 12
train_slates = 120
num_envs = 4
curve_points = 2
curve_episodes = 8

[[presets]]
env = "shopgym/SyntheticShopper-v0"
label = "synthetic"

[[agents]]
name = "popularity"

[[agents]]
name = "ppo"
options = { n_steps = 8 }

[[agents]]
name = "planning-oracle"
"""
# The files that must come out byte for byte the same however the grid was run.
DETERMINISTIC = ("records.csv", "curve.csv", "items.csv", "training.csv")
TABLES = (
    "episodes.csv",
    "curves.csv",
    "items.csv",
    "training.csv",
    "scores.csv",
    "summary.csv",
    "improvement.csv",
)


def _file(tmp_path: Path, text: str = TINY, name: str = "tiny.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _outputs(out: Path) -> dict[str, bytes]:
    files = {name: (out / name).read_bytes() for name in TABLES}
    for folder in sorted((out / "runs").iterdir()):
        for name in DETERMINISTIC:
            if (folder / name).is_file():
                files[f"{folder.name}/{name}"] = (folder / name).read_bytes()
    return files


@pytest.fixture(scope="module")
def tiny_compare(tmp_path_factory) -> Path:
    """An uninterrupted comparison of the tiny grid, with its report. Read-only."""
    root = tmp_path_factory.mktemp("compare")
    return compare(CompareConfig(file=_file(root), out=root / "out", quiet=True))


def test_experiment_file_expands_into_runs(tmp_path):
    text = TINY.replace('label = "synthetic"', 'label = "synthetic"\nsweep = { slate_size = [2, 3] }')
    config = load_experiment(_file(tmp_path, text))
    runs = expand_runs(config)
    assert len(runs) == 2 * 3 * 2
    assert runs[0].name == "synthetic[slate_size=2]__popularity__seed0"
    assert {run.run.env_options["slate_size"] for run in runs} == {2, 3}
    assert {run.run.agent_options.get("n_steps") for run in runs if run.agent == "ppo"} == {8}
    smoke = load_experiment(_file(tmp_path, text + "\n[smoke]\nseeds = 1\nagents = ['ppo']\n"), smoke=True)
    assert [run.name for run in expand_runs(smoke)] == [
        "synthetic[slate_size=2]__ppo__seed0",
        "synthetic[slate_size=3]__ppo__seed0",
    ]
    assert all(run.run.train_slates == smoke.smoke.train_slates for run in expand_runs(smoke))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("seeds = 2", "seeds = 2\nsede = 3"), "unknown key(s) ['sede']"),
        (("seeds = 2", 'seeds = "two"'), "seeds: expected"),
        (("seeds = 2", "seeds = [1, 10000]"), "[0, 10000)"),
        (('name = "popularity"', 'name = "populrity"'), "unknown agent 'populrity'"),
        (("options = { n_steps = 8 }", "options = { n_stepz = 8 }"), "does not take 'n_stepz'"),
        (("options = { n_steps = 8 }", "options = { n_steps = 'x' }"), "takes an int"),
        (
            ('label = "synthetic"', "options = { slate_sise = 3 }"),
            "['slate_sise'] are not environment options",
        ),
        (('label = "synthetic"', "options = { slate_size = 0 }"), "rejects these options"),
        (('env = "shopgym/SyntheticShopper-v0"', 'env = "shopgym/Nope-v0"'), "unknown environment"),
        (('name = "planning-oracle"', 'name = "ppo"'), "agent labels ['ppo'] are used twice"),
    ],
)
def test_bad_experiment_files_name_the_key(tmp_path, change, message):
    path = _file(tmp_path, TINY.replace(*change))
    with pytest.raises(ConfigError) as error:
        load_experiment(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_compare_writes_the_experiment_directory(tiny_compare):
    out = tiny_compare
    experiment = json.loads((out / "experiment.json").read_text())
    assert experiment["seeds"] == [0, 1]
    assert experiment["code"]["source"]
    assert [agent["label"] for agent in experiment["agents"]] == ["popularity", "ppo", "planning-oracle"]
    world = json.loads((out / "world.json").read_text())["synthetic"]
    assert (Path(world["folder"]) / "card.json").is_file()  # the synthetic World, saved once
    runs = sorted(path.name for path in (out / "runs").iterdir())
    assert len(runs) == 6 and not [name for name in runs if name.startswith(".")]
    ppo = out / "runs" / "synthetic__ppo__seed1"
    config = json.loads((ppo / "config.json").read_text())
    assert config["run"]["seed"] == 1 and config["world_hash"] == world["hash"]
    assert config["code"] == experiment["code"]
    assert {"records.csv", "curve.csv", "items.csv", "training.csv", "meta.json", "log.txt"} <= {
        p.name for p in ppo.iterdir()
    }
    training = pd.read_csv(ppo / "training.csv")
    assert training["steps"].is_monotonic_increasing and training["value_loss"].notna().all()
    for name in ("curve.csv", "training.csv"):
        assert not (out / "runs" / "synthetic__popularity__seed0" / name).exists()
    summary = (out / "summary.csv").read_text()
    assert "return_iqm_low" in summary and "regret" in summary
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert list((out / "figures").glob("*.svg")) and list((out / "figures").glob("*.png"))


def test_a_rerun_skips_finished_runs_and_refuses_a_changed_grid(tiny_compare, tmp_path, monkeypatch):
    out = tmp_path / "out"
    subprocess.run(["cp", "-r", str(tiny_compare), str(out)], check=True)
    before = _outputs(out)

    def fail(*args, **kwargs):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(compare_module, "execute_task", fail)
    compare(CompareConfig(file=_file(tmp_path), out=out, quiet=True, report=False))
    assert _outputs(out) == before
    history = json.loads((out / "experiment.json").read_text())["history"]
    assert len(history) == 1  # the first invocation, kept

    described = {
        name: (out / name).read_bytes() for name in ("experiment.json", "experiment.toml", "world.json")
    }
    changed = _file(tmp_path, TINY.replace("episodes = 12", "episodes = 16"), "changed.toml")
    with pytest.raises(ConfigError, match=r"run\.episodes 12 where the experiment now has 16"):
        compare(CompareConfig(file=changed, out=out, quiet=True))
    # Refused before anything was rewritten: the directory still describes its records.
    assert {name: (out / name).read_bytes() for name in described} == described
    # A budget that only the agents that train first use: their runs differ, not the others'.
    more = _file(tmp_path, TINY.replace("train_slates = 120", "train_slates = 240"), "more.toml")
    old, new = expand_runs(load_experiment(_file(tmp_path))), expand_runs(load_experiment(more))
    assert [a.run == b.run for a, b in zip(old, new, strict=True)] == [run.agent != "ppo" for run in old]
    with pytest.raises(ConfigError, match=r"run\.train_slates 120 where the experiment now has 240"):
        compare(CompareConfig(file=more, out=out, quiet=True))
    with pytest.raises(ConfigError, match="threads 1 where the experiment now has 2"):
        compare(CompareConfig(file=_file(tmp_path), out=out, quiet=True, set=("threads=2",)))
    with monkeypatch.context() as patch:
        other_code = {**compare_module.code_version(), "source": "0123456789abcdef"}
        patch.setattr(compare_module, "code_version", lambda: other_code)
        with pytest.raises(ConfigError, match="made by other code"):
            compare(CompareConfig(file=_file(tmp_path), out=out, quiet=True))
    monkeypatch.setattr(compare_module, "library_versions", lambda: {"torch": "0.0", "numpy": "0.0"})
    with pytest.raises(ConfigError, match=r"made by other libraries .*libraries\.torch"):
        compare(CompareConfig(file=_file(tmp_path), out=out, quiet=True))


def test_a_finished_run_that_lost_a_file_is_an_error_not_a_missing_seed(tiny_compare, tmp_path):
    out = tmp_path / "out"
    subprocess.run(["cp", "-r", str(tiny_compare), str(out)], check=True)
    (out / "runs" / "synthetic__ppo__seed1" / "records.csv").unlink()
    with pytest.raises(DataError, match=r"synthetic__ppo__seed1: the finished run lacks records\.csv"):
        compare(CompareConfig(file=_file(tmp_path), out=out, quiet=True))
    (out / "runs" / "synthetic__ppo__seed1" / "records.csv").write_text("x\n")
    (out / "runs" / "synthetic__ppo__seed0" / "training.csv").unlink()
    with pytest.raises(DataError, match=r"synthetic__ppo__seed0: the finished run lacks training\.csv"):
        compare(CompareConfig(file=_file(tmp_path), out=out, quiet=True))
    (out / "experiment.json").write_text("[]")
    for seed in (0, 1):  # now those runs are simply not done
        (out / "runs" / f"synthetic__ppo__seed{seed}").rename(tmp_path / f"moved{seed}")
    with pytest.raises(ConfigError, match=r"experiment\.json is not an experiment description"):
        compare(CompareConfig(file=_file(tmp_path), out=out, quiet=True))


def test_the_name_of_a_shipped_experiment_is_its_file_beside_a_folder_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke").mkdir()  # as `shopgym compare smoke --out smoke` leaves it
    assert experiment_path("smoke") == CONFIGS / "smoke.toml"
    (tmp_path / "mine.toml").write_text(TINY)
    assert experiment_path("mine.toml") == Path("mine.toml")


def test_a_failed_run_keeps_the_runs_that_finish_meanwhile(tiny_compare, tmp_path):
    runs = expand_runs(load_experiment(_file(tmp_path)))
    world = json.loads((tiny_compare / "world.json").read_text())["synthetic"]
    good = [
        compare_module.Task(spec.name, compare_module.asdict(spec.run), world["folder"], world["hash"])
        for spec in runs
        if spec.agent == "ppo"
    ]
    bad = replace(good[0], name="bad", world_hash="0" * 16)  # fails at once, as the others start
    finished = []
    with pytest.raises(compare_module.RunFailed, match="run bad failed"):
        for name, _ in compare_module._local_executor(2)([bad, *good], "cpu", 1):
            finished.append(name)
    assert finished  # the run that was going on when "bad" failed was kept


def test_a_run_made_by_a_process_with_other_code_is_refused(tiny_compare):
    folder = tiny_compare / "runs" / "synthetic__ppo__seed1"
    expected = json.loads((folder / "config.json").read_text())
    meta = json.loads((folder / "meta.json").read_text())
    files = {"meta.json": json.dumps(meta)}
    compare_module._check_worker_code("x", files, expected, allow_code_change=False)  # the same code: fine
    meta["code"]["source"] = "0123456789abcdef"
    files = {"meta.json": json.dumps(meta)}
    with pytest.raises(compare_module.RunFailed, match="install the same shopgym"):
        compare_module._check_worker_code("x", files, expected, allow_code_change=False)
    compare_module._check_worker_code("x", files, expected, allow_code_change=True)


def test_a_second_comparison_on_the_same_directory_is_refused(tmp_path):
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    with (
        directory_lock(out),
        pytest.raises(ConfigError, match=f"in use by another shopgym compare \\(pid {os.getpid()}"),
    ):
        compare(CompareConfig(file=_file(tmp_path), out=out, quiet=True))


def test_cli_compare_reports_errors_without_a_traceback(tmp_path, capsys):
    assert run_cli(["compare", str(tmp_path / "missing.toml")]) == 2
    assert "no such experiment file" in capsys.readouterr().err
    assert run_cli(["compare", str(_file(tmp_path)), "--set", "sedes=3"]) == 2
    assert "KEY one of" in capsys.readouterr().err


def _start(file: Path, out: Path, workers: int) -> subprocess.Popen:
    """The comparison as a user starts it; what it prints to stderr goes to ``out``'s sibling log."""
    command = [sys.executable, "-m", "shopgym.experiments.cli", "compare", str(file), "--out", str(out)]
    with open(out.with_name("stderr.txt"), "ab") as log:
        return subprocess.Popen(
            [*command, "--workers", str(workers), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )


def _finished_runs(out: Path) -> int:
    runs = out / "runs"
    return sum(1 for path in runs.iterdir() if not path.name.startswith(".")) if runs.is_dir() else 0


def _children(pid: int) -> list[int]:
    """The PIDs of the processes whose parent is ``pid`` (Linux /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_when(process: subprocess.Popen, ready, timeout: float = 120) -> bool:
    """SIGKILL ``process`` once ``ready()``, then check that its worker processes end
    too (none is left running runs that nobody will write); False if it ended first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if ready():
            workers = _children(process.pid)
            process.send_signal(signal.SIGKILL)
            process.wait()
            ended_by = time.monotonic() + 30
            while [pid for pid in workers if _alive(pid)] and time.monotonic() < ended_by:
                time.sleep(0.1)
            assert not [pid for pid in workers if _alive(pid)], "workers outlived the killed comparison"
            return True
        assert time.monotonic() < deadline, "the comparison did not get there in time"
        time.sleep(0.05)
    return False


def test_sigkill_at_several_moments_loses_and_duplicates_nothing(tiny_compare, tmp_path):
    """Kill the comparison (with two worker processes) before any run has finished,
    after the first, after most; rerun it to the end each time: the records are byte
    for byte those of the uninterrupted run."""
    file, out = _file(tmp_path), tmp_path / "killed"
    started = time.monotonic()
    moments = [
        lambda: time.monotonic() - started > 1.0 and _finished_runs(out) == 0,
        lambda: _finished_runs(out) >= 1,
        lambda: _finished_runs(out) >= 4,
    ]
    killed = 0
    for ready in moments:
        process = _start(file, out, workers=2)
        killed += _kill_when(process, ready)
        assert process.returncode in (0, -signal.SIGKILL), (tmp_path / "stderr.txt").read_text()
    assert killed >= 2  # at least two of the moments were reached before the grid finished
    process = _start(file, out, workers=1)
    assert process.wait(timeout=300) == 0, (tmp_path / "stderr.txt").read_text()
    assert _outputs(out) == _outputs(tiny_compare)
    assert not [path for path in (out / "runs").iterdir() if path.name.startswith(".")]


def test_workers_return_the_records_of_the_main_process(tiny_compare, tmp_path):
    tasks = compare_module.Task
    runs = expand_runs(load_experiment(_file(tmp_path)))
    spec = next(run for run in runs if run.agent == "ppo" and run.run.seed == 1)
    world = json.loads((tiny_compare / "world.json").read_text())["synthetic"]
    task = tasks(spec.name, compare_module.asdict(spec.run), world["folder"], world["hash"])
    results = dict(compare_module._local_executor(2)([task, replace(task, name="again")], "cpu", 1))
    recorded = (tiny_compare / "runs" / spec.name / "records.csv").read_bytes()
    assert [files["records.csv"].encode() for files in results.values()] == [recorded, recorded]


def test_ray_runs_the_grid_to_the_same_records(tiny_compare, tmp_path):
    """The tiny grid as Ray tasks on a local Ray instance started here."""
    ray = pytest.importorskip("ray", reason="Ray is in the ray and dev extras: pip install -e '.[dev]'")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        out = compare(
            CompareConfig(file=_file(tmp_path), out=tmp_path / "ray", backend="ray", workers=2, quiet=True)
        )
    finally:
        ray.shutdown()
    assert _outputs(out) == _outputs(tiny_compare)
    metas = [json.loads((path / "meta.json").read_text()) for path in (out / "runs").iterdir()]
    assert {meta["code"]["source"] for meta in metas} == {compare_module.code_version()["source"]}
    assert all(meta["host"] for meta in metas)  # every run recorded where it ran


def test_an_option_the_agent_rejects_stops_the_comparison_before_any_run(tmp_path):
    file = _file(tmp_path, TINY.replace("n_steps = 8", "n_steps = 0"))
    with pytest.raises(ConfigError, match="agent ppo on synthetic rejects its options"):
        compare(CompareConfig(file=file, out=tmp_path / "out", quiet=True))
    assert not list((tmp_path / "out" / "runs").iterdir())


def test_tensorboard_logs_hold_the_learning_curves_and_final_metrics(tiny_compare, tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out = tmp_path / "out"
    subprocess.run(["cp", "-r", str(tiny_compare), str(out)], check=True)
    compare_module.write_tensorboard(out)
    events = accumulator.EventAccumulator(str(out / "tensorboard" / "synthetic" / "ppo" / "seed1"))
    events.Reload()
    curve = [(point.step, point.value) for point in events.Scalars("held_out/return")]
    expected = pd.read_csv(out / "runs" / "synthetic__ppo__seed1" / "curve.csv")
    assert curve == [
        (int(s), pytest.approx(r)) for s, r in zip(expected["steps"], expected["return"], strict=True)
    ]
    assert "final/regret" in events.Tags()["scalars"]
    training = pd.read_csv(out / "runs" / "synthetic__ppo__seed1" / "training.csv")
    losses = [(point.step, point.value) for point in events.Scalars("train/value_loss")]
    assert losses == [
        (int(s), pytest.approx(v)) for s, v in zip(training["steps"], training["value_loss"], strict=True)
    ]


def test_the_table_over_presets_puts_returns_on_the_oracle_scale():
    rows = [
        {
            "preset": preset,
            "agent": agent,
            "seed": seed,
            "return": scale * (1.0 if agent == "oracle" else 0.5),
        }
        for preset, scale in (("a", 10.0), ("b", 2.0))
        for agent in ("oracle", "x")
        for seed in range(3)
    ]
    overall = compare_module.oracle_fraction_over_presets(pd.DataFrame(rows), "oracle").set_index("agent")
    assert overall.loc["x", "oracle_fraction_iqm"] == pytest.approx(0.5)
    assert overall.loc["oracle", "oracle_fraction_iqm"] == pytest.approx(1.0)
    assert overall.loc["x", "presets"] == 2 and overall.loc["x", "seeds"] == 6


def test_a_resume_with_fewer_agents_leaves_no_table_of_the_others(tiny_compare, tmp_path):
    out = tmp_path / "out"
    subprocess.run(["cp", "-r", str(tiny_compare), str(out)], check=True)
    assert (out / "training.csv").is_file() and (out / "curves.csv").is_file()
    fewer = _file(
        tmp_path, TINY.replace('name = "ppo"\noptions = { n_steps = 8 }', 'name = "random"'), "fewer.toml"
    )
    compare(CompareConfig(file=fewer, out=out, quiet=True))
    # ppo's folders stay (nothing is deleted), but no table or report section speaks of them.
    assert (out / "runs" / "synthetic__ppo__seed0").is_dir()
    assert not (out / "training.csv").exists() and not (out / "curves.csv").exists()
    assert set(pd.read_csv(out / "scores.csv")["agent"]) == {"popularity", "random", "planning-oracle"}
    assert "| 6 |" in (out / "report.md").read_text().split("## Provenance")[1].split("*Invocations")[0]
