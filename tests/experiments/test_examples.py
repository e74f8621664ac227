"""The example scripts run end to end (on the small synthetic World, with tiny budgets)."""

from __future__ import annotations

import importlib

import pytest

EXAMPLES = {
    "slateq_shopper": {"BUDGET": 600, "EPISODES": 20, "SHOPPERS": 10},
    "ppo_learning_curve": {"BUDGET": 640, "POINTS": 2, "EPISODES": 20, "SHOPPERS": 10},
    "linucb_online": {"EPISODES": 40, "SHOPPERS": 10},
    "sb3_ppo_score_vector": {"BUDGET": 640, "SHOPPERS": 10},
}


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_and_prints_its_result(name, monkeypatch, tmp_path, capsys):
    module = importlib.import_module(f"shopgym.experiments.examples.{name}")
    monkeypatch.setattr(module, "ENV", "shopgym/SyntheticShopper-v0")
    for constant, value in EXAMPLES[name].items():
        monkeypatch.setattr(module, constant, value)
    monkeypatch.chdir(tmp_path)  # where the examples save their models
    module.main()
    printed = capsys.readouterr().out
    assert "return" in printed, printed
