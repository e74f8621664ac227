"""The throughput benchmark runs on a tiny budget and rejects bad options."""

import pytest

from shopgym.experiments.benchmark import BenchmarkConfig, run_benchmark
from shopgym.experiments.cli import main


def test_benchmark_prints_one_row_per_configuration(capsys):
    rows = run_benchmark(
        BenchmarkConfig(env="shopgym/SyntheticShopper-v0", batch_sizes=(1, 8), seconds=0.05, device="cpu")
    )
    assert [(row["what"], row["B"]) for row in rows] == [
        ("single env (reference)", 1),
        ("simulator core", 1),
        ("vector env", 1),
        ("simulator core", 8),
        ("vector env", 8),
    ]
    assert all(row["steps_per_s"] > 0 for row in rows)
    assert rows[0]["x_single_env"] == 1.0
    assert "shopper-steps/s" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--env", "shopgym/Nope-v0"], "--env"),
        (["--batch-sizes", "0"], "--batch-sizes"),
        (["--seconds", "0"], "--seconds"),
    ],
)
def test_bad_options_are_one_line_errors(flags, named, capsys):
    assert main(["benchmark", *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("shopgym: error:") and named in error and "\n" not in error
