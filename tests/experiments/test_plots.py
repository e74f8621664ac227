"""Figures: reward and learning curves, final scores, per-position CTR, whole directories redrawn."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tyro
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from shopgym.experiments import plots
from shopgym.experiments.plots import (
    PlotConfig,
    agent_colours,
    agent_line_styles,
    draw_experiment,
    learning_curves,
    plot_command,
    plot_experiment,
    plot_reward_curves,
    reward_curves,
    save_figure,
)
from shopgym.experiments.stats import mean_interval
from shopgym.simulator.errors import ConfigError, DataError

from .fake_experiment import AGENTS, PRESETS, write_fake_experiment


def _records(agents=("random", "oracle"), seeds=3, rounds=50, num_envs=4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for level, agent in enumerate(agents):
        for seed in range(seeds):
            for r in range(rounds):
                for index in range(num_envs):
                    rows.append(
                        {
                            "agent": agent,
                            "seed": seed,
                            "episode": r * num_envs + index,
                            "round": r,
                            "env_index": index,
                            "return": level + 0.01 * r + rng.normal(0, 0.1),
                            "clicks": 1,
                            "purchases": 0,
                            "length": 3,
                        }
                    )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("rounds", "points"), [(50, 20), (20, 20), (7, 7), (1, 1)])
def test_curves_have_at_most_20_increasing_points_per_agent(rounds, points):
    curves = reward_curves(_records(rounds=rounds))
    assert list(curves.columns) == ["agent", "episode", "mean", "low", "high"]
    assert curves["agent"].unique().tolist() == ["random", "oracle"]
    for _, curve in curves.groupby("agent"):
        assert len(curve) == points
        assert (np.diff(curve["episode"].to_numpy()) > 0).all()
        # The last point covers all of a seed's episodes (4 per round).
        assert curve["episode"].iloc[-1] == pytest.approx(4 * rounds)
        assert (curve["low"] <= curve["mean"] + 1e-12).all()
        assert (curve["mean"] <= curve["high"] + 1e-12).all()


def test_curve_points_are_block_means_averaged_over_seeds():
    records = _records(agents=("a",), seeds=2, rounds=40, num_envs=2)
    curve = reward_curves(records, max_points=4)  # blocks of 10 rounds
    assert len(curve) == 4
    np.testing.assert_allclose(curve["episode"], [20, 40, 60, 80])
    for block, (_, point) in enumerate(curve.iterrows()):
        in_block = records[records["round"] // 10 == block]
        per_seed = in_block.groupby("seed")["return"].mean()
        assert point["mean"] == pytest.approx(per_seed.mean())
    # The slope of the returns (0.01 per round) shows up across blocks.
    assert (np.diff(curve["mean"]) > 0).all()


def test_plot_writes_a_non_empty_png(tmp_path):
    path = plot_reward_curves(_records(), tmp_path / "curve.png")
    assert path == tmp_path / "curve.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000


def test_reward_curves_emit_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reward_curves(_records(rounds=5))


def test_importing_the_plots_leaves_the_matplotlib_backend_alone():
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('svg'); "
        "import shopgym.experiments.plots, shopgym.experiments.report, shopgym.experiments.runner; "
        "print(matplotlib.get_backend())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "svg"


# Whole directories: figures of an experiment (tests/experiments/fake_experiment.py) and of a run.


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> tuple[Path, list[Path]]:
    """A fake experiment directory and the files of its figures, drawn once (read-only)."""
    out = write_fake_experiment(tmp_path_factory.mktemp("plots") / "experiment")
    return out, plot_experiment(out)


@pytest.fixture(scope="module")
def experiment(drawn) -> Path:
    return drawn[0]


def _agent_line_colours(figure: Figure, labels: Sequence[str]) -> dict[str, set[str]]:
    """Agent label -> the colours of the lines drawn for it (legend entries left out); a
    level line's label "ppo (no training)" counts for "ppo"."""
    found: dict[str, set[str]] = {}
    for axis in figure.axes:
        for line in axis.get_lines():
            agent = str(line.get_label()).split(" (")[0]
            if agent in labels:
                found.setdefault(agent, set()).add(to_hex(line.get_color()))
    return found


def test_agent_colours_follow_the_experiment_order():
    labels = [f"agent{i}" for i in range(23)]
    colours = agent_colours(labels)
    assert list(colours) == labels
    assert len(set(list(colours.values())[:20])) == 20  # 20 distinct colours first
    assert colours == agent_colours(labels)
    assert agent_colours(["b", "a"]) == {"b": colours["agent0"], "a": colours["agent1"]}
    # Past 20 agents the colours repeat, with another line style: no two agents look alike.
    styles = agent_line_styles(labels)
    looks = {(colours[label], styles[label]) for label in labels}
    assert len(looks) == len(labels)
    assert styles["agent0"] == "-" and styles["agent20"] != "-"


def test_plot_experiment_writes_every_figure_as_png_and_svg(drawn):
    experiment, written = drawn
    folder = experiment / "figures"
    stems = {"learning_curves", "final_scores", "reward_curves", "position_ctr"}
    assert {path.name for path in folder.iterdir()} == {f"{s}.{x}" for s in stems for x in ("png", "svg")}
    for stem in stems:
        assert (folder / f"{stem}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        svg = (folder / f"{stem}.svg").read_text()
        assert "<svg" in svg and svg.rstrip().endswith("</svg>")
    # The returned paths are the files, PNG and SVG side by side.
    assert sorted(written) == sorted(folder.iterdir())


def test_each_agent_has_one_colour_in_every_figure(experiment):
    figures = draw_experiment(experiment)
    assert set(figures) == {"learning_curves", "final_scores", "reward_curves", "position_ctr"}
    colours = agent_colours(AGENTS)
    for name, figure in figures.items():
        found = _agent_line_colours(figure, AGENTS)
        # Every agent, in the learning curves as a curve (ppo) or as a level line (the others).
        assert set(found) == set(AGENTS), name
        for label, seen in found.items():
            assert seen == {colours[label]}, (name, label)
        if name != "final_scores":  # one panel per preset
            assert len([axis for axis in figure.axes if axis.get_visible()]) == len(PRESETS)
    # The SVG files carry the same colours: ppo's blue is in all of them.
    for path in (experiment / "figures").glob("*.svg"):
        assert colours["ppo"] in path.read_text(), path.name


def test_agents_without_a_learning_curve_have_a_dashed_line_at_their_final_return(experiment):
    figure = draw_experiment(experiment)["learning_curves"]
    scores = pd.read_csv(experiment / "scores.csv")
    colours = agent_colours(AGENTS)
    panels = [axis for axis in figure.axes if axis.get_visible()]
    assert [axis.get_title() for axis in panels] == [f"preset {preset}" for preset in PRESETS]
    for axis, preset in zip(panels, PRESETS, strict=True):
        levels = {line.get_label(): line for line in axis.get_lines() if line.get_linestyle() == "--"}
        # bpr-mf trains but has no curve; the planning oracle does not train.
        assert set(levels) == {"bpr-mf (final return)", "planning-oracle (no training)"}
        for label, line in levels.items():
            agent = label.split(" (")[0]
            mine = scores[(scores["preset"] == preset) & (scores["agent"] == agent)]
            assert list(line.get_ydata()) == pytest.approx([mine["return"].mean()] * 2)
            assert to_hex(line.get_color()) == colours[agent]
    # One legend entry per agent, in the experiment's order.
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [
        "ppo",
        "bpr-mf (final return)",
        "planning-oracle (no training)",
    ]


def test_save_figure_writes_whole_files_with_the_same_bytes_each_time(experiment, tmp_path, monkeypatch):
    figure = draw_experiment(experiment)["final_scores"]
    written = {}

    def recording(path, content):
        written[Path(path).name] = content
        return atomic_write(path, content)

    atomic_write = plots.atomic_write
    monkeypatch.setattr(plots, "atomic_write", recording)
    (tmp_path / "first").mkdir()
    paths = save_figure(figure, tmp_path / "first" / "scores")
    assert paths == [tmp_path / "first" / "scores.png", tmp_path / "first" / "scores.svg"]
    # Rendered in memory, then written atomically: the files are the bytes written.
    assert set(written) == {"scores.png", "scores.svg"}
    assert all(path.read_bytes() == written[path.name] for path in paths)
    assert written["scores.png"].startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(path.name for path in (tmp_path / "first").iterdir()) == ["scores.png", "scores.svg"]
    # A redraw of the same data: the same bytes (no date, fixed SVG ids).
    (tmp_path / "second").mkdir()
    again = save_figure(draw_experiment(experiment)["final_scores"], tmp_path / "second" / "scores")
    for first, second in zip(paths, again, strict=True):
        assert first.read_bytes() == second.read_bytes(), first.name


def test_learning_curve_points_pool_the_seeds_nth_points():
    # A logging agent's log can be a few slates longer in one seed: still one point of 3 seeds.
    curves = pd.DataFrame(
        {
            "agent": ["bpr-mf"] * 3 + ["ppo"] * 6,
            "seed": [0, 1, 2, 0, 0, 1, 1, 2, 2],
            "steps": [200, 203, 201, 100, 200, 100, 200, 100, 200],
            "return": [1.0, 2.0, 3.0, 0.5, 1.5, 0.7, 1.7, 0.6, 1.6],
        }
    )
    summary = learning_curves(curves)
    assert list(summary.columns) == ["agent", "steps", "mean", "low", "high", "seeds"]
    bpr = summary[summary["agent"] == "bpr-mf"].iloc[0]
    assert bpr["seeds"] == 3 and bpr["steps"] == pytest.approx(201.33, abs=0.01)
    assert (bpr["mean"], bpr["low"], bpr["high"]) == pytest.approx((2.0, *mean_interval(np.array([1, 2, 3]))))
    ppo = summary[summary["agent"] == "ppo"]
    assert ppo["steps"].tolist() == [100, 200] and ppo["seeds"].tolist() == [3, 3]
    assert ppo["mean"].tolist() == pytest.approx([0.6, 1.6])


def test_one_seed_draws_no_band():
    low, high = reward_curves(_records(seeds=1, rounds=3)).iloc[0][["low", "high"]]
    assert np.isnan(low) and np.isnan(high)


def test_redraw_of_a_shopgym_run_directory(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = {path.name for path in run.iterdir()}
    written = plot_experiment(run)
    stems = {path.stem for path in written}
    # No presets, the older summary (no IQM), curves for the agents that train first.
    assert {"learning_curves", "final_scores", "reward_curves"} <= stems
    assert {path.name for path in written} == {f"{s}.{x}" for s in stems for x in ("png", "svg")}
    assert all(path.parent == run / "figures" and path.stat().st_size > 1000 for path in written)
    assert {path.name for path in run.iterdir()} == before | {"figures"}  # the run's own files stay
    # The agents in --agents order: random first, in the palette's first colour.
    assert (
        f"stroke: {agent_colours(['random'])['random']}"
        in (run / "figures" / "reward_curves.svg").read_text()
    )


def test_plot_command_parses_the_directory_as_a_positional_argument(experiment, tmp_path, capsys):
    shutil.copy(experiment / "summary.csv", tmp_path)  # a summary alone: one figure
    config = tyro.cli(PlotConfig, args=[str(tmp_path)])
    assert config == PlotConfig(run_dir=tmp_path)
    written = plot_command(config)
    assert written == [tmp_path / "figures" / "final_scores.png", tmp_path / "figures" / "final_scores.svg"]
    assert "wrote" in capsys.readouterr().out


def test_plot_experiment_names_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        plot_experiment(tmp_path / "absent")
    with pytest.raises(DataError, match=r"neither episodes\.csv nor summary\.csv"):
        plot_experiment(tmp_path)
