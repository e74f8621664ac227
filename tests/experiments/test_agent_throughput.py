"""The agent-throughput script, on a tiny budget of the synthetic shopper."""

from __future__ import annotations

import json

import pytest

from shopgym.experiments.agent_throughput import main

from .helpers import SYNTHETIC_ID


def test_measures_each_kind_of_agent(tmp_path, capsys):
    out = tmp_path / "throughput.json"
    argv = ["--env", SYNTHETIC_ID, "--agents", "random,epsilon-greedy,static-mf,myopic-oracle"]
    argv += ["--budget", "200", "--num-envs", "5", "--eval-steps", "50", "--out", str(out)]
    document = main([*argv, "--agent-steps", "myopic-oracle=100"])
    printed = capsys.readouterr().out

    saved = json.loads(out.read_text())
    assert saved["rows"] == json.loads(json.dumps(document["rows"]))
    assert saved["header"]["device"] == "cpu" and saved["header"]["torch_threads"] == 1
    assert {"torch", "load_average", "num_envs"} <= set(saved["header"])
    rows = {row["agent"]: row for row in saved["rows"]}
    assert list(rows) == ["random", "epsilon-greedy", "static-mf", "myopic-oracle"]
    assert [rows[name]["kind"] for name in rows] == ["none", "online", "fit", "none"]
    for row in rows.values():
        assert row["error"] is None
        assert row["steps"] >= row["budget"] and row["wall_s"] > 0
        assert row["steps_per_s"] == pytest.approx(row["steps"] / row["wall_s"])
    assert rows["static-mf"]["eval_steps"] >= 50 and rows["static-mf"]["eval_steps_per_s"] > 0
    assert rows["random"]["eval_steps_per_s"] is None
    assert rows["myopic-oracle"]["budget"] == 100 and rows["myopic-oracle"]["reduced"]

    assert "| agent | kind | budget |" in printed and saved["table"] in printed
    assert "| myopic-oracle * | none | 100 |" in printed
    table_lines = [line for line in printed.splitlines() if line.startswith("|")]
    assert len(table_lines) == 2 + len(rows)  # the header, the rule, a line per agent


def test_rejects_a_malformed_step_count(tmp_path):
    argv = ["--env", SYNTHETIC_ID, "--agents", "random", "--agent-steps", "random=many"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2
