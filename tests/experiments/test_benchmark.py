"""``shopgym benchmark`` runs end to end on a tiny budget, writes its JSON, skips what
does not apply with a reason, and rejects bad options. No timing is asserted."""

from __future__ import annotations

import json

import pytest
import torch

from shopgym.experiments.benchmark import BenchmarkConfig, run_benchmark
from shopgym.experiments.cli import main
from shopgym.simulator.errors import ConfigError

SYNTHETIC = "shopgym/SyntheticShopper-v0"
IE = "shopgym/InterestEvolution-v0"
TINY = {"seconds": 0.01, "min_steps": 1, "device": "cpu", "threads": 1, "compile": False, "profile": ""}
HEADER_KEYS = {"date", "device", "torch", "torch_threads", "cpu_count", "load_average_start", "config"}


def test_benchmark_writes_every_row_and_the_header(tmp_path, capsys):
    out = tmp_path / "bench.json"
    config = BenchmarkConfig(
        envs=(SYNTHETIC, IE),
        batch_sizes=(1, 4),
        state_batch_sizes=(2, 4),
        out=out,
        **{**TINY, "profile": SYNTHETIC},
        profile_batch=4,
        profile_steps=1,
    )
    report = run_benchmark(config)

    expected = []
    for env in (SYNTHETIC, IE):
        expected += [(env, "single env", 1), (env, "reference", 1)]
        for batch in (1, 4):
            expected += [
                (env, "core", batch),
                (env, "torch env", batch),
                (env, "torch env, unchecked", batch),
                (env, "gym vector env", batch),
                (env, "SB3 VecEnv", batch),
            ]
    assert [(row.env, row.what, row.batch) for row in report.rows] == expected
    for row in report.rows:
        if row.env == IE and row.what == "SB3 VecEnv":
            assert row.steps_per_s is None and row.note.startswith("skipped:") and "SB3" in row.note
        else:
            assert row.steps_per_s > 0 and row.us_per_step > 0 and row.steps >= 1, row
    assert all(row.x_core is not None for row in report.rows if row.steps_per_s and row.what != "core")

    saved = json.loads(out.read_text())
    assert set(saved["header"]) >= HEADER_KEYS and saved["header"]["device"] == "cpu"
    assert saved["header"]["torch"] == torch.__version__ and saved["header"]["torch_threads"] == 1
    assert [(r["env"], r["what"], r["batch"]) for r in saved["rows"]] == expected
    assert [(s["env"], s["batch"]) for s in saved["state"]] == [
        (SYNTHETIC, 2),
        (SYNTHETIC, 4),
        (IE, 2),
        (IE, 4),
    ]
    for env in (SYNTHETIC, IE):
        per_shopper = {s["bytes_per_shopper"] for s in saved["state"] if s["env"] == env}
        assert len(per_shopper) == 1 and per_shopper.pop() > 0  # linear in B
    assert {(s["env"], s["core_batch"]) for s in saved["speedups"]} == {(SYNTHETIC, 4), (IE, 4)}
    assert all(t["status"] in ("met", "not met", "not measured") for t in saved["targets"])
    assert any("state linear in B" in t["target"] and t["status"] == "met" for t in saved["targets"])
    assert saved["profile"]["env"] == SYNTHETIC and saved["profile"]["ops"] and saved["profile"]["functions"]

    printed = capsys.readouterr().out
    assert "| env | what | B | shopper-steps/s |" in printed and "targets:" in printed
    assert f"wrote {out}" in printed


def test_the_reference_refuses_dynamics_it_does_not_model(tmp_path):
    report = run_benchmark(
        BenchmarkConfig(
            envs=("shopgym/Shopper-v1",),
            batch_sizes=(1,),
            adapters=("core",),
            state_batch_sizes=(1, 2),
            out=tmp_path / "v1.json",
            **TINY,
        )
    )
    reference = next(row for row in report.rows if row.what == "reference")
    assert reference.steps_per_s is None and "Shopper-v0's dynamics only" in reference.note
    assert report.speedups == []


def test_a_failed_compile_is_a_skipped_row_and_slow_cells_are_capped(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here\nsecond line")

    monkeypatch.setattr(torch, "compile", broken)
    report = run_benchmark(
        BenchmarkConfig(
            envs=(SYNTHETIC,),
            batch_sizes=(1, 1000),
            adapters=("core", "torch", "vector"),
            reference=False,
            state_batch_sizes=(1, 2),
            out=tmp_path / "compile.json",
            max_cell_seconds=1e-6,
            **{**TINY, "compile": True},
            compile_batch_sizes=(1,),
        )
    )
    rows = {(row.what, row.batch): row for row in report.rows}
    assert rows["core", 1].steps_per_s > 0
    compiled = rows["core, compiled", 1]
    assert (
        compiled.steps_per_s is None
        and "torch.compile failed (RuntimeError: no compiler here)" in compiled.note
    )
    compiled_env = rows["torch env, compiled", 1]
    assert compiled_env.steps_per_s is None and "no compiler here" in compiled_env.note
    assert rows["torch env", 1].steps_per_s > 0
    for what in ("core", "gym vector env"):
        assert rows[what, 1000].steps_per_s is None and "--max-cell-seconds" in rows[what, 1000].note


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"envs": ("shopgym/Nope-v0",)}, "--envs"),
        ({"envs": ()}, "--envs"),
        ({"profile": "shopgym/Nope-v0"}, "--profile"),
        ({"batch_sizes": (0,)}, "--batch-sizes"),
        ({"batch_sizes": (64, 1)}, "--batch-sizes"),
        ({"compile_batch_sizes": (-1,)}, "--compile-batch-sizes"),
        ({"state_batch_sizes": (4, 4)}, "--state-batch-sizes"),
        ({"adapters": ("core", "jax")}, "--adapters"),
        ({"seconds": 0.0}, "--seconds"),
        ({"max_cell_seconds": float("nan")}, "--max-cell-seconds"),
        ({"min_steps": 0}, "--min-steps"),
        ({"threads": -1}, "--threads"),
        ({"device": "tpu"}, "--device"),
    ],
)
def test_bad_config_values_are_config_errors(options, named):
    with pytest.raises(ConfigError, match=named):
        BenchmarkConfig(**options).validate()  # run_benchmark's first call (the CLI tests below)


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--envs", "shopgym/Nope-v0"], "--envs"),
        (["--batch-sizes", "0"], "--batch-sizes"),
        (["--seconds", "0"], "--seconds"),
        (["--adapters", "nope"], "--adapters"),
    ],
)
def test_bad_options_are_one_line_errors(flags, named, capsys):
    assert main(["benchmark", *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("shopgym: error:") and named in error and "\n" not in error
