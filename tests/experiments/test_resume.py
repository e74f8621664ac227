"""An interrupted run resumes: finished (agent, seed) records are kept, the rest redone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from .helpers import TINY_RUN, run_cli


def _copy(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    return out


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every file: a rewritten file (atomic replace) changes both."""
    return {
        str(path.relative_to(folder)): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _contents(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_resume_redoes_only_the_missing_run_and_reproduces_it(tiny_run, tmp_path, capsys):
    out = _copy(tiny_run, tmp_path)
    missing = out / "records" / "bpr-mf__seed1.csv"
    missing.unlink()
    before = _stamps(out / "records")
    assert run_cli([*TINY_RUN, "--out", str(out)]) == 0
    assert "resuming: 13 (agent, seed) runs already recorded" in capsys.readouterr().out
    after = _stamps(out / "records")
    redone = {f"bpr-mf__seed1.{suffix}" for suffix in ("csv", "json", "curve.csv", "training.csv")}
    for name, stamp in before.items():
        if name not in redone:
            assert after[name] == stamp, f"{name} was rewritten"
    assert after["bpr-mf__seed1.json"] != before["bpr-mf__seed1.json"]
    assert (out / "records" / "bpr-mf__seed1.training.csv").read_bytes() == (
        tiny_run / "records" / "bpr-mf__seed1.training.csv"
    ).read_bytes()
    # Same seed, same numbers: the redone records and the whole table are unchanged.
    pd.testing.assert_frame_equal(
        pd.read_csv(missing), pd.read_csv(tiny_run / "records" / "bpr-mf__seed1.csv")
    )
    pd.testing.assert_frame_equal(pd.read_csv(out / "episodes.csv"), pd.read_csv(tiny_run / "episodes.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), pd.read_csv(tiny_run / "summary.csv"))


def test_more_seeds_on_the_same_out_runs_only_the_new_seeds(tiny_run, tmp_path):
    out = _copy(tiny_run, tmp_path)
    before = _stamps(out / "records")
    argv = [*TINY_RUN, "--out", str(out), "--agents", "random,myopic-oracle"]
    argv[argv.index("--seeds") + 1] = "3"
    assert run_cli(argv) == 0
    after = _stamps(out / "records")
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) == {
        f"{agent}__seed2.{ext}" for agent in ("random", "myopic-oracle") for ext in ("csv", "json")
    }
    episodes = pd.read_csv(out / "episodes.csv")
    assert episodes.groupby("agent")["seed"].nunique().to_dict() == {"random": 3, "myopic-oracle": 3}
    assert len(episodes) == 2 * 3 * 20


@pytest.mark.parametrize(
    ("flag", "value", "key"),
    [
        ("--episodes", "30", "episodes"),
        ("--num-envs", "4", "num_envs"),
        ("--train-slates", "100", "train_slates"),
    ],
)
def test_resume_with_different_options_is_refused_and_keeps_the_files(
    tiny_run, tmp_path, capsys, flag, value, key
):
    out = _copy(tiny_run, tmp_path)
    (out / "records" / "random__seed0.csv").unlink()  # something to resume
    before = _contents(out)
    argv = [*TINY_RUN, "--out", str(out)]
    argv[argv.index(flag) + 1] = value
    assert run_cli(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("shopgym: error: ")
    assert error.count("\n") == 1
    assert f"{key}=" in error and str(out) in error
    assert _contents(out) == before


def test_resume_on_another_env_is_refused(tiny_run, tmp_path, capsys):
    out = _copy(tiny_run, tmp_path)
    before = _contents(out)
    argv = [*TINY_RUN, "--out", str(out)]
    argv[argv.index("--env") + 1] = "shopgym/Shopper-v0"
    argv += ["--world", "synthetic"]  # a different env ID on the same World
    assert run_cli(argv) == 2
    assert "env=" in capsys.readouterr().err
    assert _contents(out) == before


def test_config_json_describes_the_last_invocation_and_keeps_the_earlier_ones(tiny_run, tmp_path):
    import json

    out = _copy(tiny_run, tmp_path)
    assert run_cli([*TINY_RUN, "--out", str(out), "--seeds", "3"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["seeds"] == 3 and config["code"]["source"]
    assert [entry["run"]["seeds"] for entry in config["history"]] == [2]


def test_records_of_other_code_or_another_device_are_not_merged(tiny_run, tmp_path, capsys):
    import json

    out = _copy(tiny_run, tmp_path)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "code": {"source": "0000"}}))
    assert run_cli([*TINY_RUN, "--out", str(out)]) == 2
    assert "holds records of other code" in capsys.readouterr().err
    assert run_cli([*TINY_RUN, "--out", str(out), "--allow-code-change"]) == 0
    # cuda and cuda:0 are one device; cpu is another.
    from shopgym.experiments.provenance import device_name

    assert device_name("cpu") == "cpu" and device_name("cuda") == device_name("cuda:0") == "cuda:0"


def test_environment_options_reach_the_shoppers_and_change_what_resumes(tiny_run, tmp_path, capsys):
    import json

    out = tmp_path / "slates-of-2"
    assert run_cli([*TINY_RUN, "--agents", "random", "--out", str(out), "--env-options", "slate_size=2"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["shopper_config"]["slate_size"] == 2 and config["env_options"] == {"slate_size": 2}
    assert "clicks_p1" in pd.read_csv(out / "episodes.csv") and "clicks_p2" not in pd.read_csv(
        out / "episodes.csv"
    )
    assert run_cli([*TINY_RUN, "--agents", "random", "--out", str(out)]) == 2
    assert "env_options" in capsys.readouterr().err
    assert run_cli([*TINY_RUN, "--env-options", "slate_sise=2"]) == 2
    assert "'slate_sise' is not an environment option" in capsys.readouterr().err
    assert run_cli([*TINY_RUN, "--seeds", "10001"]) == 2
    assert "--seeds must be <= 10000" in capsys.readouterr().err
