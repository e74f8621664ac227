"""Figures of a run or experiment directory, drawn from its CSV files alone.

Every band over seeds is the Student-t 95% interval of the mean over seeds
(:func:`shopgym.experiments.stats.mean_interval`). Every agent has one colour (and line
style) in every figure of a directory, fixed by its place in the experiment's order
(:func:`agent_colours`). Figures are drawn on a bare :class:`matplotlib.figure.Figure`,
never through pyplot, so importing this module leaves the caller's backend (a
notebook's) as it was.

:func:`plot_experiment` (``shopgym plot RUN_DIR``) redraws every figure of a directory
into ``RUN_DIR/figures/``, each as a PNG and an SVG of the same stem.
"""

from __future__ import annotations

import io
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import matplotlib
import numpy as np
import pandas as pd
import tyro
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from shopgym.experiments.atomic import atomic_write
from shopgym.experiments.metrics import METRIC_LABELS, METRICS, per_position_ctr
from shopgym.experiments.stats import mean_interval
from shopgym.simulator.errors import ConfigError, DataError

# tab10, then the light halves of tab20's pairs: 20 colours that stay apart; a 21st agent
# takes the first colour again with the next line style.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
LINE_STYLES = ("-", "--", ":", "-.")
# The final-score figure's metrics, those present of them, one panel each.
FINAL_SCORE_METRICS = ("return", "ctr", "regret")
FIGURE_DPI = 120
# The CSV columns that hold labels: read as text, so a label like "1" stays one.
_LABEL_COLUMNS = {"preset": str, "agent": str, "x": str, "y": str}
_BAND_ALPHA = 0.2


def agent_colours(labels: Sequence[str]) -> dict[str, str]:
    """One colour (hex) per agent label, by the label's place in ``labels`` (the
    experiment's order): the same in every figure drawn with the same labels."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}


def agent_line_styles(labels: Sequence[str]) -> dict[str, str]:
    """One line style per agent label: solid for the first 20, then the next style each
    time the palette comes round again, so that no two agents look alike."""
    return {label: LINE_STYLES[(i // len(PALETTE)) % len(LINE_STYLES)] for i, label in enumerate(labels)}


def save_figure(figure: Figure, path: str | Path) -> list[Path]:
    """Save ``figure`` as ``path`` with the suffixes .png and .svg; returns both paths.

    Each file is rendered in memory and written atomically, so that a report or a
    reader never finds a half-written figure."""
    path = Path(path)
    return [_write_figure(figure, path.with_suffix(suffix)) for suffix in (".png", ".svg")]


def _write_figure(figure: Figure, path: Path) -> Path:
    """Render ``figure`` in memory in the format of ``path``'s suffix, then write it
    atomically (no reader ever sees half a file); returns ``path``."""
    file_format = path.suffix.lstrip(".").lower() or "png"
    # No date in the metadata and a fixed salt for the SVG's element ids (random by
    # default): a redraw of the same data writes the same SVG bytes.
    metadata = {"Date": None} if file_format == "svg" else None
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "shopgym"}):
        figure.savefig(buffer, format=file_format, metadata=metadata)
    return atomic_write(path, buffer.getvalue())


# Reward curves: return against evaluation episodes (online learners learn there).


def reward_curves(episodes: pd.DataFrame, max_points: int = 20) -> pd.DataFrame:
    """Mean return per evaluation round, across seeds.

    Round r holds every parallel shopper slot's (r+1)-th session (see
    :func:`shopgym.experiments.evaluation.evaluate`); rounds are merged into at most
    ``max_points`` consecutive blocks. Per seed, a block's value is its mean return;
    across seeds, the mean with a 95% Student-t interval.

    Returns:
        Columns ``preset`` (where episodes has one), ``agent, episode`` (episodes
        completed by the block's end), ``mean, low, high``.
    """
    keys = _group_keys(episodes)
    rows = []
    for key, group in episodes.groupby(keys, sort=False):
        rounds = int(group["round"].max()) + 1
        block_of_round = np.arange(rounds) * min(max_points, rounds) // rounds
        blocks = group.assign(block=block_of_round[group["round"].to_numpy()])
        per_seed = blocks.groupby(["block", "seed"])["return"].mean().unstack("seed")  # (blocks, seeds)
        episodes_per_seed = blocks.groupby(["block", "seed"]).size().unstack("seed").mean(axis=1).cumsum()
        for block, values in per_seed.iterrows():
            values = values.dropna().to_numpy()
            low, high = mean_interval(values)
            rows.append(
                {
                    **dict(zip(keys, key, strict=True)),
                    "episode": float(episodes_per_seed[block]),
                    "mean": values.mean(),
                    "low": low,
                    "high": high,
                }
            )
    return pd.DataFrame(rows, columns=[*keys, "episode", "mean", "low", "high"])


def reward_curve_figure(
    episodes: pd.DataFrame,
    colours: dict[str, str] | None = None,
    title: str = "",
    presets: Sequence[str] = (),
) -> Figure:
    """Return against evaluation episode, one line and 95% band per agent, one panel per preset."""
    seeds = episodes.groupby(_group_keys(episodes))["seed"].nunique().min()
    return _band_figure(
        reward_curves(episodes),
        "episode",
        xlabel="evaluation episode (held-out shoppers)",
        ylabel="return per episode",
        title=title or f"Reward curves: mean and 95% t-interval over {seeds} seeds",
        colours=colours,
        presets=presets,
    )


def plot_reward_curves(
    episodes: pd.DataFrame, path: str | Path, title: str = "", colours: dict[str, str] | None = None
) -> Path:
    """Write the reward curves (:func:`reward_curve_figure`) to ``path``, in the format
    of its suffix (a PNG for ``shopgym run``'s reward_curve.png)."""
    return _write_figure(reward_curve_figure(episodes, colours, title), Path(path))


# Learning curves: held-out return against training slates, for agents that train first.


def learning_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean held-out return at each point of training, across seeds.

    The n-th point of every seed's curve makes the n-th point of the mean curve (at
    their mean number of steps): a logging agent's log can differ in size between
    seeds by a few slates, and grouping by the exact step count would part them.

    Args:
        curves: learning-curve records (``[preset,] agent, seed, steps, return``, ...),
            one row per (preset, agent, seed, point), as the runner writes them.

    Returns:
        Columns ``[preset,] agent, steps, mean, low, high, seeds`` (95% Student-t
        interval over seeds).
    """
    keys = _group_keys(curves)
    ordered = curves.sort_values([*keys, "seed", "steps"], kind="stable")
    ordered = ordered.assign(point=ordered.groupby([*keys, "seed"], sort=False).cumcount())
    rows = []
    for key, group in ordered.groupby([*keys, "point"], sort=False):
        values = group["return"].to_numpy(dtype=float)
        low, high = mean_interval(values)
        rows.append(
            {
                **dict(zip(keys, key[:-1], strict=True)),
                "steps": float(group["steps"].mean()),
                "mean": float(values.mean()),
                "low": low,
                "high": high,
                "seeds": len(values),
            }
        )
    return pd.DataFrame(rows, columns=[*keys, "steps", "mean", "low", "high", "seeds"])


def final_returns(scores: pd.DataFrame, untrained: Collection[str] = ()) -> pd.DataFrame:
    """Mean final return over seeds per agent (and preset), for the level lines of the
    learning-curve figure.

    Args:
        scores: per-seed metrics (scores.csv: ``[preset,] agent, seed, return, ...``).
        untrained: the agents that do not train before evaluation; the others' lines say
            "final return" only, as they train but have no learning curve.

    Returns:
        Columns ``[preset,] agent, mean, label``; ``label`` is the legend entry, e.g.
        "popularity (no training)".
    """
    keys = _group_keys(scores)
    levels = scores.groupby(keys, sort=False)["return"].mean().rename("mean").reset_index()
    levels["label"] = [
        f"{agent} (no training)" if agent in untrained else f"{agent} (final return)"
        for agent in levels["agent"]
    ]
    return levels


def learning_curve_figure(
    curves: pd.DataFrame,
    colours: dict[str, str] | None = None,
    title: str = "",
    presets: Sequence[str] = (),
    levels: pd.DataFrame | None = None,
) -> Figure:
    """Held-out return against training slates, one line and 95% band per agent, one
    panel per preset. ``levels`` (:func:`final_returns`): a dashed horizontal line at
    the mean final return of each agent that has no curve in a panel, so that the
    curves can be read against the agents that do not train."""
    seeds = curves.groupby(_group_keys(curves))["seed"].nunique().min()
    return _band_figure(
        learning_curves(curves),
        "steps",
        xlabel="training slates (shopper-steps on train shoppers)",
        ylabel="return per episode (held-out shoppers)",
        title=title or f"Learning curves: mean and 95% t-interval over {seeds} seeds",
        colours=colours,
        presets=presets,
        marker="o",
        levels=levels,
    )


def plot_learning_curves(
    curves: pd.DataFrame, path: str | Path, title: str = "", colours: dict[str, str] | None = None
) -> Path:
    """Write the learning curves (:func:`learning_curve_figure`) to ``path``, in the
    format of its suffix (a PNG for ``shopgym run``'s learning_curve.png)."""
    return _write_figure(learning_curve_figure(curves, colours, title), Path(path))


# Per-position CTR: clicks per slate at each slate position.


def position_ctr_figure(
    episodes: pd.DataFrame,
    colours: dict[str, str] | None = None,
    title: str = "",
    presets: Sequence[str] = (),
) -> Figure | None:
    """CTR by slate position, mean and 95% band over seeds per agent, one panel per
    preset; None where the episodes have no per-position clicks."""
    per_seed = per_position_ctr(episodes)  # [preset,] agent, seed, position (0 = top), ctr
    if per_seed.empty:
        return None
    keys = [*_group_keys(episodes), "position"]
    rows = []
    for key, group in per_seed.groupby(keys, sort=False):
        values = group["ctr"].to_numpy(dtype=float)
        low, high = mean_interval(values)
        rows.append({**dict(zip(keys, key, strict=True)), "mean": values.mean(), "low": low, "high": high})
    summary = pd.DataFrame(rows)
    summary["position"] += 1  # shown 1-based: "position 1" is the top of the slate
    seeds = per_seed.groupby(keys[:-1])["seed"].nunique().min()
    figure = _band_figure(
        summary,
        "position",
        xlabel="slate position (1 = top)",
        ylabel="CTR at the position (clicks per slate)",
        title=title or f"Per-position CTR: mean and 95% t-interval over {seeds} seeds",
        colours=colours,
        presets=presets,
        marker="o",
    )
    for axis in figure.axes:
        axis.set_xticks(sorted(summary["position"].unique()))
    return figure


# Final scores: per preset, agents as rows, mean and IQM with their intervals.


def summary_metrics(summary: pd.DataFrame) -> list[str]:
    """The metrics of a summary table to show: those of
    ``shopgym.experiments.metrics.METRICS`` (in its order) that have ``m``, ``m_low`` and
    ``m_high`` columns. The summary's other columns (per-position CTR, episode counts)
    are in the figures."""
    return [m for m in METRICS if {m, f"{m}_low", f"{m}_high"} <= set(summary.columns)]


def metric_labels() -> dict[str, str]:
    """Metric name -> label for tables and axes (``metrics.METRIC_LABELS``)."""
    return dict(METRIC_LABELS)


def final_score_figure(
    summary: pd.DataFrame,
    colours: dict[str, str] | None = None,
    metrics: Sequence[str] = FINAL_SCORE_METRICS,
    agents: Sequence[str] = (),
    presets: Sequence[str] = (),
) -> Figure | None:
    """Interval plot of the final scores: a row of panels per preset, one panel per
    metric (those of ``metrics`` present), agents as rows; a filled circle marks the
    mean over seeds and a hollow diamond the interquartile mean (where the summary has
    one), each with its 95% interval. None where none of ``metrics`` is present."""
    metrics = [m for m in metrics if m in summary_metrics(summary)]
    if not metrics:
        return None
    agents = list(agents) or _unique(summary["agent"])
    colours = colours or agent_colours(agents)
    styles = agent_line_styles(list(colours))
    presets = _presets(summary, presets)
    labels = metric_labels()
    figure = Figure(
        figsize=(3.6 * len(metrics) + 1.4, 0.45 * len(agents) * len(presets) + 1.6), dpi=FIGURE_DPI
    )
    axes = figure.subplots(len(presets), len(metrics), squeeze=False, sharey=True)
    has_iqm = any(f"{m}_iqm" in summary.columns for m in metrics)
    for row, preset in enumerate(presets):
        table = summary if preset is None else summary[summary["preset"] == preset]
        table = table.set_index("agent")
        for column, metric in enumerate(metrics):
            axis = axes[row][column]
            for place, agent in enumerate(agents):
                if agent not in table.index:
                    continue
                y = len(agents) - 1 - place  # the first agent on top
                entry = table.loc[agent]
                marks = [("", "o", colours[agent], 0.0)]
                if f"{metric}_iqm" in table.columns:
                    marks = [("", "o", colours[agent], 0.14), ("_iqm", "D", "white", -0.14)]
                for suffix, marker, face, offset in marks:
                    value, low, high = (entry[f"{metric}{suffix}{end}"] for end in ("", "_low", "_high"))
                    axis.hlines(
                        y + offset, low, high, color=colours[agent], linewidth=2, linestyle=styles[agent]
                    )
                    axis.plot(
                        [value],
                        [y + offset],
                        marker=marker,
                        markersize=6,
                        color=colours[agent],
                        markerfacecolor=face,
                        linestyle="none",
                        label=agent,
                    )
            axis.set_yticks(range(len(agents)), list(reversed(agents)))
            axis.set_ylim(-0.6, len(agents) - 0.4)
            axis.grid(axis="x", alpha=0.3)
            axis.set_title(_panel_title(preset, labels.get(metric, metric)), fontsize=9)
    kinds = [Line2D([], [], color="black", marker="o", linestyle="none", label="mean [95% CI]")]
    if has_iqm:
        kinds.append(
            Line2D(
                [],
                [],
                color="black",
                marker="D",
                markerfacecolor="white",
                linestyle="none",
                label="IQM [95% CI]",
            )
        )
    figure.legend(handles=kinds, loc="lower center", ncol=len(kinds), frameon=False, fontsize=8)
    seeds = int(summary["seeds"].min()) if "seeds" in summary.columns else None
    figure.suptitle(f"Final scores over {seeds} seeds" if seeds else "Final scores", fontsize=10)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    return figure


# Whole directories.


def agent_order(run_dir: str | Path, *frames: pd.DataFrame | None) -> list[str]:
    """The agent labels of a directory in the experiment's order: experiment.json's
    agents (``shopgym compare``), else config.json's ``--agents`` (``shopgym run``), then
    any other label of ``frames`` in the order it first appears."""
    run_dir = Path(run_dir)
    listed: list[str] = []
    experiment, config = read_json(run_dir / "experiment.json"), read_json(run_dir / "config.json")
    if experiment is not None:
        listed = [str(agent["label"]) for agent in experiment.get("agents", [])]
    elif config is not None:
        listed = [
            name.strip() for name in str(config.get("run", {}).get("agents", "")).split(",") if name.strip()
        ]
    seen = [label for frame in frames if frame is not None and "agent" in frame for label in frame["agent"]]
    return _unique([*listed, *seen])


def preset_order(run_dir: str | Path, *frames: pd.DataFrame | None) -> list[str]:
    """The preset labels of a directory in experiment.json's order, then any other of
    ``frames``; empty for a ``shopgym run`` directory (no presets)."""
    experiment = read_json(Path(run_dir) / "experiment.json") or {}
    listed = [str(preset["label"]) for preset in experiment.get("presets", [])]
    seen = [label for frame in frames if frame is not None and "preset" in frame for label in frame["preset"]]
    return _unique([*listed, *seen])


def read_table(path: str | Path) -> pd.DataFrame | None:
    """A CSV file of a run directory (labels read as text), or None where it is absent."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, dtype=_LABEL_COLUMNS)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable table ({exc})") from exc


def draw_experiment(run_dir: str | Path) -> dict[str, Figure]:
    """Every figure that the CSV files of ``run_dir`` allow, by file stem:

    - ``learning_curves`` (curves.csv): held-out return against training slates, with
      the mean final return (scores.csv) of each agent without a curve as a dashed line;
    - ``final_scores`` (summary.csv): mean and IQM of return, CTR and regret with intervals;
    - ``reward_curves`` (episodes.csv): return against evaluation episodes;
    - ``position_ctr`` (episodes.csv with ``clicks_p*`` columns): CTR by slate position.

    Agents have the colours of :func:`agent_colours` over :func:`agent_order` in all of them.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a directory")
    episodes = read_table(run_dir / "episodes.csv")
    curves = read_table(run_dir / "curves.csv")
    summary = read_table(run_dir / "summary.csv")
    scores = read_table(run_dir / "scores.csv")
    if episodes is None and summary is None:
        raise DataError(
            f"{run_dir} holds neither episodes.csv nor summary.csv: not a run or experiment directory"
        )
    agents = agent_order(run_dir, summary, episodes, curves)
    presets = preset_order(run_dir, summary, episodes, curves)
    colours = agent_colours(agents)
    experiment = read_json(run_dir / "experiment.json") or {}
    untrained = {str(a["label"]) for a in experiment.get("agents", []) if a.get("train_slates") is None}
    levels = None if scores is None or scores.empty else final_returns(scores, untrained)
    candidates = {
        "learning_curves": lambda: learning_curve_figure(curves, colours, presets=presets, levels=levels),
        "final_scores": lambda: final_score_figure(summary, colours, agents=agents, presets=presets),
        "reward_curves": lambda: reward_curve_figure(episodes, colours, presets=presets),
        "position_ctr": lambda: position_ctr_figure(episodes, colours, presets=presets),
    }
    sources = {
        "learning_curves": curves,
        "final_scores": summary,
        "reward_curves": episodes,
        "position_ctr": episodes,
    }
    figures = {}
    for name, draw in candidates.items():
        if sources[name] is None or sources[name].empty:
            continue
        figure = draw()
        if figure is not None:
            figures[name] = figure
    return figures


def plot_experiment(run_dir: str | Path) -> list[Path]:
    """(Re)draw every figure of ``run_dir`` (see :func:`draw_experiment`) into
    ``run_dir/figures/`` as PNG and SVG; returns the files written."""
    run_dir = Path(run_dir)
    figures = draw_experiment(run_dir)
    folder = run_dir / "figures"
    folder.mkdir(exist_ok=True)
    return [path for name, figure in figures.items() for path in save_figure(figure, folder / name)]


@dataclass(frozen=True)
class PlotConfig:
    """Redraw the figures of a run or experiment directory from its CSV files (into RUN_DIR/figures)."""

    run_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    """The directory that shopgym compare or shopgym run wrote."""


def plot_command(config: PlotConfig) -> list[Path]:
    """``shopgym plot RUN_DIR``: :func:`plot_experiment`, printing the files written."""
    written = plot_experiment(config.run_dir)
    print(f"wrote {', '.join(str(path) for path in written)}", flush=True)
    return written


# Drawing helpers.


def _band_figure(
    summary: pd.DataFrame,
    x: str,
    xlabel: str,
    ylabel: str,
    title: str,
    colours: dict[str, str] | None = None,
    presets: Sequence[str] = (),
    marker: str = "",
    levels: pd.DataFrame | None = None,
) -> Figure:
    """One line (``mean`` against ``x``) and its ``low``..``high`` band per agent, in one
    panel per preset (the summary's ``preset`` column; one panel without it). An agent
    without a line in a panel but with a row of ``levels`` (``[preset,] agent, mean,
    label``) gets a dashed horizontal line at its ``mean`` there."""
    colours = colours or agent_colours(_unique(summary["agent"]))
    styles = agent_line_styles(list(colours))
    presets = _presets(summary, presets)
    columns = min(len(presets), 3)
    rows = -(-len(presets) // columns)
    figure = Figure(figsize=(4.6 * columns + 1.8, 3.4 * rows + 0.6), dpi=FIGURE_DPI)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    handles: dict[str, Line2D] = {}
    for axis, preset in zip(axes, presets, strict=False):
        panel = _panel(summary, preset)
        flat = _panel(levels, preset) if levels is not None else None
        for agent in colours:
            curve = panel[panel["agent"] == agent]
            if curve.empty:
                level = flat[flat["agent"] == agent] if flat is not None else None
                if level is not None and not level.empty:
                    line = axis.axhline(
                        level["mean"].iloc[0],
                        color=colours[agent],
                        linestyle="--",
                        linewidth=1.4,
                        label=level["label"].iloc[0],
                    )
                    handles.setdefault(agent, line)
                continue
            (line,) = axis.plot(
                curve[x],
                curve["mean"],
                marker=marker or None,
                markersize=3,
                label=agent,
                linewidth=1.8,
                color=colours[agent],
                linestyle=styles[agent],
            )
            axis.fill_between(curve[x], curve["low"], curve["high"], alpha=_BAND_ALPHA, color=colours[agent])
            if len(curve) == 1:  # a band over one x has no width: show the interval as a bar
                axis.vlines(curve[x], curve["low"], curve["high"], color=colours[agent], linewidth=1.5)
            handles.setdefault(agent, line)
        axis.set_xlabel(xlabel, fontsize=8)
        axis.set_ylabel(ylabel, fontsize=8)
        if preset is not None:
            axis.set_title(f"preset {preset}", fontsize=9)
        axis.grid(alpha=0.3)
    for axis in axes[len(presets) :]:
        axis.set_visible(False)
    figure.suptitle(title, fontsize=10)
    # One legend for all panels, right of them, in the experiment's order; the figure
    # widens by the legend's width (estimated from its longest label, about 0.06 inch a
    # character at 8 points) so that long labels neither cover nor squeeze the panels.
    longest = max((len(str(line.get_label())) for line in handles.values()), default=0)
    legend_width = max(1.6, 0.5 + 0.06 * longest)
    figure.set_figwidth(4.6 * columns + 0.2 + legend_width)
    figure.legend(handles=list(handles.values()), loc="center right", frameon=False, fontsize=8)
    figure.tight_layout(rect=(0, 0, 1 - legend_width / figure.get_figwidth(), 1))
    return figure


def _panel(frame: pd.DataFrame, preset: str | None) -> pd.DataFrame:
    """The rows of ``frame`` in the panel of ``preset`` (all of them without presets)."""
    return frame if preset is None or "preset" not in frame.columns else frame[frame["preset"] == preset]


def _group_keys(frame: pd.DataFrame) -> list[str]:
    """The grouping keys above the seed: ``preset`` (an experiment) where present, ``agent``."""
    return [key for key in ("preset", "agent") if key in frame.columns]


def _presets(frame: pd.DataFrame, order: Sequence[str]) -> list[str | None]:
    """The presets of ``frame`` in ``order`` (others after them); [None] where it has none."""
    if "preset" not in frame.columns:
        return [None]
    present = set(frame["preset"])
    return [p for p in _unique([*order, *frame["preset"]]) if p in present]


def _panel_title(preset: str | None, text: str) -> str:
    return text if preset is None else f"{preset}: {text}"


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(str(value) for value in values))


def read_json(path: str | Path) -> dict | None:
    """A JSON file of a run directory, or None where it is absent."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable JSON ({exc})") from exc
