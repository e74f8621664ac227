"""``shopgym report RUN_DIR``: a run or experiment directory as report.md and report.html.

Both are written from the directory's files alone (experiment.json or config.json,
world.json, the CSV tables, each run's meta.json, the figures), so a report can be
made again anywhere the directory is copied. The HTML page is self-contained: its CSS
is inline, its figures are embedded as base64 PNGs, it loads nothing, and all text in
it is escaped. The Markdown file links the figures in ``figures/``.

The figures are redrawn from the tables each time, so that a report never shows figures
of older tables beside newer ones. The report is built once as a list of blocks
(headings, paragraphs, tables, figures, collapsed JSON) that two renderers write out, so
that both files say the same.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import tyro

from shopgym.experiments.atomic import atomic_write
from shopgym.experiments.metrics import REFERENCE, regret_reference
from shopgym.experiments.plots import (
    agent_order,
    metric_labels,
    plot_experiment,
    preset_order,
    read_json,
    read_table,
    summary_metrics,
)
from shopgym.simulator.errors import ConfigError, DataError

# The figures of plots.draw_experiment, in the report's order, with what they show.
FIGURE_CAPTIONS = {
    "final_scores": "Final scores on held-out shoppers: mean over seeds (filled circle) and IQM (hollow "
    "diamond, where the summary has it), each with its 95% interval, from summary.csv.",
    "learning_curves": "Learning curves of the agents that train before evaluation: return on held-out "
    "shoppers against training slates, mean and 95% Student-t interval over seeds. A dashed line marks "
    "the mean final return (scores.csv) of each agent without a learning curve.",
    "reward_curves": "Return against evaluation episodes on held-out shoppers (agents that learn online "
    "learn here), mean and 95% Student-t interval over seeds.",
    "position_ctr": "CTR at each slate position (clicks there per slate shown), mean and 95% Student-t "
    "interval over seeds.",
}
# Probability-of-improvement matrices up to this many agents; beyond, the table lists the
# pairs of improvement.csv one per row.
MATRIX_AGENTS = 8


# The blocks of a report.


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Items:
    """A bulleted list."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Picture:
    """A figure of figures/: ``stem`` names its .png and .svg."""

    stem: str
    caption: str


@dataclass(frozen=True)
class Collapsed:
    """A JSON value shown folded under a one-line summary (a config, a describe() dict)."""

    summary: str
    value: Any


Block = Heading | Text | Items | Table | Picture | Collapsed


# Entry points.


@dataclass(frozen=True)
class ReportConfig:
    """Write report.md and report.html (self-contained) of a run or experiment directory."""

    run_dir: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR")]
    """The directory that shopgym compare or shopgym run wrote."""


def report_command(config: ReportConfig) -> tuple[Path, Path]:
    """``shopgym report RUN_DIR``: :func:`write_report`, printing the files written."""
    paths = write_report(config.run_dir)
    print(f"wrote {paths[0]}, {paths[1]}", flush=True)
    return paths


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``run_dir/report.md`` and ``run_dir/report.html`` (each atomically);
    returns their paths.

    The figures are (re)drawn first (:func:`~shopgym.experiments.plots.plot_experiment`),
    always: figures drawn before the tables last changed (a comparison extended by
    seeds) would not show what the tables say."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a directory")
    plot_experiment(run_dir)
    blocks = build_report(run_dir)
    title = blocks[0].text if blocks and isinstance(blocks[0], Heading) else "shopgym report"
    markdown, page = run_dir / "report.md", run_dir / "report.html"
    atomic_write(markdown, render_markdown(blocks))
    atomic_write(page, render_html(blocks, title, run_dir / "figures"))
    return markdown, page


def build_report(run_dir: str | Path) -> list[Block]:
    """The blocks of the report of ``run_dir``: an experiment directory (experiment.json)
    or, smaller, a ``shopgym run`` directory (config.json)."""
    run_dir = Path(run_dir)
    experiment = read_json(run_dir / "experiment.json")
    config = read_json(run_dir / "config.json")
    summary = read_table(run_dir / "summary.csv")
    if experiment is None and config is None and summary is None:
        raise DataError(f"{run_dir} holds no experiment.json, config.json or summary.csv: nothing to report")
    episodes = read_table(run_dir / "episodes.csv")
    agents = agent_order(run_dir, summary, episodes)
    presets = preset_order(run_dir, summary, episodes)
    runs = _runs(run_dir, agents, presets)
    # The regret reference: the planning oracle by agent name in an experiment (its label
    # may differ); a shopgym run directory's labels are the agent names.
    if experiment is not None:
        reference = regret_reference(experiment.get("agents", []))
    else:
        reference = REFERENCE if REFERENCE in agents else None

    blocks: list[Block] = []
    if experiment is not None:
        blocks += _experiment_header(experiment)
        blocks += _provenance_section(experiment, runs)
        blocks += _worlds_section(_worlds_of_experiment(run_dir, experiment))
    elif config is not None:
        blocks += _run_header(config)
        # config.json's "world" already holds the summary: hash, name, data, fit metrics, calibration.
        blocks += _worlds_section([(config["world"], [])] if config.get("world") else [])
    else:
        blocks.append(Heading(f"shopgym report: {run_dir.name}", 1))
    if summary is not None:
        blocks += _results_section(summary, agents, presets, experiment is not None)
    blocks += _overall_section(read_table(run_dir / "overall.csv"), agents, reference)
    blocks += _improvement_section(read_table(run_dir / "improvement.csv"), agents, presets)
    if summary is not None:
        blocks += _regret_section(summary, agents, presets, reference)
    blocks += _training_section(runs, agents)
    blocks += _wall_time_section(runs, agents)
    blocks += _figures_section(run_dir / "figures")
    return blocks


# Sections.


def _experiment_header(experiment: dict) -> list[Block]:
    name = experiment.get("name") or "experiment"
    blocks: list[Block] = [Heading(f"Experiment {name}", 1)]
    if experiment.get("description"):
        blocks.append(Text(str(experiment["description"])))
    resolved = experiment.get("experiment") or {}
    facts = [
        f"Seeds: {_join(experiment.get('seeds', []))}",
        *(
            f"{label}: {resolved[key]}"
            for key, label in (
                ("episodes", "Evaluation episodes per run (held-out shoppers)"),
                ("train_slates", "Default training budget (slates)"),
                ("num_envs", "Shoppers in parallel"),
                ("curve_points", "Learning-curve points"),
            )
            if key in resolved
        ),
        f"Device: {experiment.get('device', '?')}",
    ]
    if experiment.get("versions"):
        facts.append("Versions: " + ", ".join(f"{k} {v}" for k, v in experiment["versions"].items()))
    if experiment.get("written"):
        facts.append(f"Written: {experiment['written']}")
    blocks += [Heading("What was run"), Items(tuple(facts))]

    presets = experiment.get("presets", [])
    blocks.append(
        Table(
            ("preset", "environment", "options (changes to the environment's config)", "World"),
            tuple(
                (
                    str(p.get("label")),
                    str(p.get("env")),
                    _options(p.get("options")),
                    _short(p.get("world_hash", "")),
                )
                for p in presets
            ),
            caption="Presets",
        )
    )
    blocks.append(
        Table(
            ("agent", "name", "options", "training budget (slates)"),
            tuple(
                (
                    str(a.get("label")),
                    str(a.get("name")),
                    _options(a.get("options")),
                    "none (does not train first)"
                    if a.get("train_slates") is None
                    else str(a["train_slates"]),
                )
                for a in experiment.get("agents", [])
            ),
            caption="Agents",
        )
    )
    if resolved:
        blocks.append(Collapsed("The experiment's resolved configuration (every field)", resolved))
    for preset in presets:
        if preset.get("shopper_config"):
            blocks.append(
                Collapsed(f"Shopper configuration of preset {preset.get('label')}", preset["shopper_config"])
            )
    return blocks


def _provenance_section(experiment: dict, runs: list[dict]) -> list[Block]:
    """The code each run was made with (its config.json) and every invocation of the
    comparison (experiment.json and its ``history``): a resumed or extended comparison
    can hold runs of several code versions."""
    codes: dict[str, dict] = {}  # distinct code dicts, in the order of the runs' folders
    counts: Counter[str] = Counter()
    for run in runs:
        key = json.dumps(run["code"], sort_keys=True, default=str)
        codes.setdefault(key, run["code"])
        counts[key] += 1
    blocks: list[Block] = [Heading("Provenance")]
    if codes:
        blocks.append(
            Table(
                ("version", "source hash", "commit", "uncommitted changes", "runs"),
                tuple((*_code_cells(code), str(counts[key])) for key, code in codes.items()),
                caption="Code versions of the runs (runs/*/config.json)",
            )
        )
    invocations = [*experiment.get("history", []), experiment]
    rows = []
    for number, invocation in enumerate(invocations, 1):
        if not isinstance(invocation, dict):
            continue
        command = invocation.get("command")
        rows.append(
            (
                str(number),
                str(invocation.get("written", "?")),
                " ".join(str(part) for part in command) if isinstance(command, list) else str(command or "?"),
                _join(invocation.get("seeds", [])),
                str(invocation.get("device", "?")),
                *_code_cells(invocation.get("code") or {}),
            )
        )
    blocks.append(
        Table(
            (
                "#",
                "written",
                "command",
                "seeds",
                "device",
                "version",
                "source hash",
                "commit",
                "uncommitted changes",
            ),
            tuple(rows),
            caption="Invocations of the comparison, first to last (experiment.json and its history)",
        )
    )
    return blocks


def _code_cells(code: dict) -> tuple[str, ...]:
    """Version, source hash, commit and dirty flag (yes/no) of a ``code`` dict, "?" where unknown."""
    dirty = {True: "yes", False: "no"}.get(code.get("dirty"), "?")
    return (
        *("?" if code.get(key) is None else _short(code[key]) for key in ("version", "source", "commit")),
        dirty,
    )


def _run_header(config: dict) -> list[Block]:
    run = config.get("run") or {}
    blocks: list[Block] = [Heading(f"shopgym run: {run.get('env', '?')}", 1)]
    if config.get("command"):
        blocks.append(Text("Command: " + " ".join(str(part) for part in config["command"])))
    facts = [
        f"{label}: {run[key]}"
        for key, label in (
            ("env", "Environment"),
            ("agents", "Agents"),
            ("seeds", "Seeds (0 .. seeds-1)"),
            ("episodes", "Evaluation episodes per (agent, seed), held-out shoppers"),
            ("train_slates", "Training budget (slates)"),
            ("num_envs", "Shoppers in parallel"),
            ("curve_points", "Learning-curve points"),
            ("curve_episodes", "Episodes per learning-curve point"),
        )
        if key in run
    ]
    facts.append(f"Device: {config.get('device', '?')}")
    if config.get("versions"):
        facts.append("Versions: " + ", ".join(f"{k} {v}" for k, v in config["versions"].items()))
    blocks += [Heading("What was run"), Items(tuple(facts))]
    options = config.get("agent_options") or {}
    if any(options.values()):  # a table of "the defaults" only would say nothing
        blocks.append(
            Table(
                ("agent", "options"),
                tuple((str(name), _options(values)) for name, values in options.items()),
                caption="Agent options (--agent-options)",
            )
        )
    if run:
        blocks.append(Collapsed("The run's options", run))
    if config.get("shopper_config"):
        blocks.append(Collapsed("Shopper configuration", config["shopper_config"]))
    if config.get("seeding"):
        blocks.append(Collapsed("Seeding", config["seeding"]))
    return blocks


def _worlds_of_experiment(run_dir: Path, experiment: dict) -> list[tuple[dict, list[str]]]:
    """(World summary, preset labels on it) per distinct World of world.json, which holds
    either one World (``hash, folder, card``) or one per preset label."""
    document = read_json(run_dir / "world.json")
    if not document:
        return []
    per_preset = {"": document} if "hash" in document else document
    found: dict[str, tuple[dict, list[str]]] = {}
    for preset, world in per_preset.items():
        if not isinstance(world, dict):
            continue
        card = world.get("card") or {}
        summary = {
            "hash": world.get("hash") or card.get("world_hash"),
            "name": card.get("name"),
            "folder": world.get("folder"),
            "data": card.get("data"),
            "split": card.get("split"),
            "preference_model": card.get("preference_model"),
            "fit_test_metrics": (card.get("fit") or {}).get("test_metrics"),
            "calibration": (card.get("ground_truth") or {}).get("calibration"),
        }
        entry = found.setdefault(str(summary["hash"]), (summary, []))
        if preset:
            entry[1].append(preset)
    return list(found.values())


def _worlds_section(worlds: list[tuple[dict, list[str]]]) -> list[Block]:
    if not worlds:
        return []
    blocks: list[Block] = [Heading("World")]
    for world, presets in worlds:
        if len(worlds) > 1 or presets:
            blocks.append(Heading(f"World {world.get('name') or '?'} ({_short(world.get('hash'))})", 3))
        facts = [f"Name: {world.get('name') or '?'}", f"Hash: {world.get('hash') or '?'}"]
        if presets:
            facts.append(f"Presets on it: {_join(presets)}")
        if world.get("folder"):
            facts.append(f"Folder: {world['folder']}")
        data = world.get("data")
        facts.append(
            "Data: " + (_options(data, short=True) if data else "none (a synthetic World, drawn not fitted)")
        )
        for key, label in (("split", "Split"), ("preference_model", "Preference model")):
            if world.get(key):
                facts.append(f"{label}: {_options(world[key], short=True)}")
        calibration = world.get("calibration") or {}
        if calibration:
            target = calibration.get("target") or {}
            parts = [
                f"beta {_number(calibration.get('beta'))}",
                f"no-click utility {_number(calibration.get('no_click_utility'))}",
                f"position logits {_numbers(calibration.get('position_logits'))}",
            ]
            if target:
                parts.append(
                    f"target CTR per position {_numbers(target.get('ctr'))} ({target.get('source', '')})"
                )
            facts.append("Calibration: " + "; ".join(parts))
        blocks.append(Items(tuple(facts)))
        metrics = world.get("fit_test_metrics") or {}
        if metrics:
            names = list(dict.fromkeys(key for values in metrics.values() for key in values))
            blocks.append(
                Table(
                    ("model", *names),
                    tuple(
                        (str(model), *(_number(values.get(name)) for name in names))
                        for model, values in metrics.items()
                    ),
                    caption="Fit of the preference model on held-out interactions (test split)",
                )
            )
    return blocks


def _results_section(
    summary: pd.DataFrame, agents: list[str], presets: list[str], t_interval: bool
) -> list[Block]:
    metrics = summary_metrics(summary)
    labels = metric_labels()
    has_iqm = any(f"{m}_iqm" in summary.columns for m in metrics)
    seeds = _seeds_text(summary)
    interval = "95% Student-t interval over seeds" if t_interval else "95% interval from summary.csv"
    blocks: list[Block] = [
        Heading("Results"),
        Text(
            f"Held-out shoppers, {seeds}. Each cell: the mean over seeds [{interval}]"
            + (
                "; the IQM tables: the interquartile mean over seeds (25% trimmed mean) "
                "[95% bootstrap interval]."
                if has_iqm
                else "."
            )
        ),
    ]
    for preset in presets or [None]:
        table = summary if preset is None else summary[summary["preset"] == preset]
        table = table.set_index("agent")
        present = [a for a in agents if a in table.index]
        if preset is not None:
            blocks.append(Heading(f"Preset {preset}", 3))
        for suffix, kind in [("", "mean"), *([("_iqm", "IQM")] if has_iqm else [])]:
            rows = tuple(
                (
                    labels.get(metric, metric),
                    *(_cell(table.loc[agent], f"{metric}{suffix}") for agent in present),
                )
                for metric in metrics
                if f"{metric}{suffix}" in table.columns
            )
            blocks.append(Table(("metric", *present), rows, caption=f"{kind} [95% CI]"))
    return blocks


def _improvement_section(
    improvement: pd.DataFrame | None, agents: list[str], presets: list[str]
) -> list[Block]:
    if improvement is None or improvement.empty:
        return []
    blocks: list[Block] = [
        Heading("Probability of improvement"),
        Text(
            "P(row > column): the probability that the row agent's return on a random seed beats the "
            "column agent's on another (ties count half), with its 95% bootstrap interval, from "
            "improvement.csv."
        ),
    ]
    for preset in presets or [None]:
        table = (
            improvement
            if preset is None or "preset" not in improvement
            else improvement[improvement["preset"] == preset]
        )
        if table.empty:
            continue
        if preset is not None:
            blocks.append(Heading(f"Preset {preset}", 3))
        cells = {(row.x, row.y): _interval(row.probability, row.low, row.high) for row in table.itertuples()}
        order = [a for a in agents if a in set(table["x"]) | set(table["y"])]
        if len(order) <= MATRIX_AGENTS:
            rows = tuple(
                (x, *("—" if x == y else cells.get((x, y), "") for y in order))
                for x in order
                if any((x, y) in cells for y in order)
            )
            blocks.append(Table(("P(row > column)", *order), rows))
        else:
            rows = tuple(
                (row.x, row.y, cells[(row.x, row.y)], f"{row.seeds_x} vs {row.seeds_y}")
                for row in table.itertuples()
            )
            blocks.append(Table(("x", "y", "P(x > y) [95% CI]", "seeds"), rows))
    return blocks


def _overall_section(overall: pd.DataFrame | None, agents: list[str], reference: str | None) -> list[Block]:
    """overall.csv (an experiment of several presets with a planning oracle): per agent,
    the IQM over every preset and seed of its return as a fraction of the oracle's."""
    if overall is None or overall.empty:
        return []
    order = [a for a in agents if a in set(overall["agent"])]
    table = overall.set_index("agent")
    rows = tuple(
        (
            agent,
            _interval(
                float(table.loc[agent, "oracle_fraction_iqm"]),
                float(table.loc[agent, "oracle_fraction_iqm_low"]),
                float(table.loc[agent, "oracle_fraction_iqm_high"]),
            ),
            str(table.loc[agent, "presets"]),
            str(table.loc[agent, "seeds"]),
        )
        for agent in order
    )
    return [
        Heading("All presets: fraction of the planning oracle's return (IQM, 95% stratified bootstrap)"),
        Text(
            "Per preset and seed, the agent's return divided by the mean return of the planning oracle "
            f"({reference or REFERENCE}) in that preset; the interquartile mean over all presets and "
            "seeds, with a 95% bootstrap interval that resamples seeds within each preset. From overall.csv."
        ),
        Table(("agent", "IQM [95% CI]", "presets", "seeds"), rows),
    ]


def _regret_section(
    summary: pd.DataFrame, agents: list[str], presets: list[str], reference: str | None
) -> list[Block]:
    if "regret" not in summary_metrics(summary):
        return []
    has_iqm = "regret_iqm" in summary.columns
    blocks: list[Block] = [
        Heading("Regret to the planning oracle"),
        Text(
            f"Per seed, the mean return of the planning oracle ({reference or REFERENCE}, which plans with "
            "the true simulator: an upper reference) minus the agent's mean return, paired by preset and "
            "seed (the same evaluation seed); lower is better. It is a difference of per-seed means, not of "
            "per-shopper returns: only the first sessions of a seed (one per parallel shopper) meet the same "
            "shoppers, the later ones come from a stream whose position depends on when sessions end. "
            "Mean [95% CI]" + (" and IQM [95% CI]" if has_iqm else "") + " over seeds."
        ),
    ]
    headers = ("agent", "mean [95% CI]", *(["IQM [95% CI]"] if has_iqm else []))
    for preset in presets or [None]:
        table = summary if preset is None else summary[summary["preset"] == preset]
        table = table.set_index("agent")
        rows = tuple(
            (
                agent,
                _cell(table.loc[agent], "regret"),
                *([_cell(table.loc[agent], "regret_iqm")] if has_iqm else []),
            )
            for agent in agents
            if agent in table.index and agent != reference
        )
        blocks.append(Table(headers, rows, caption="" if preset is None else f"Preset {preset}"))
    return blocks


def _training_section(runs: list[dict], agents: list[str]) -> list[Block]:
    """What each agent learnt from: its describe()'s training data (a static
    recommender's log and logging policy, an RL agent's slates), else its training
    note (bandits learn online), else the training env's budget."""
    if not runs:
        return []
    rows, details = [], []
    for agent in agents:
        own = [run for run in runs if run["agent"] == agent]
        if not own:
            continue
        describe = own[0]["meta"].get("agent") or {}
        data = [run["meta"].get("agent", {}).get("training_data") for run in own]
        if any(isinstance(d, dict) for d in data):
            trained_on = _training_data_text([d for d in data if isinstance(d, dict)])
        elif describe.get("training"):
            trained_on = str(describe["training"])
        elif own[0]["meta"].get("training_env"):
            trained_on = "train shoppers: " + _options(own[0]["meta"]["training_env"], short=True)
        else:
            trained_on = "nothing (does not train)"
        budgets = {
            run["meta"]["training_env"].get("budget_slates") for run in own if run["meta"].get("training_env")
        }
        budget = _join(sorted(b for b in budgets if b is not None)) or "—"
        rows.append(
            (
                agent,
                str(describe.get("model") or describe.get("policy") or describe.get("name", agent)),
                budget,
                trained_on,
            )
        )
        details.append(Collapsed(f"{agent}: describe() of its first run ({own[0]['name']})", describe))
    return [
        Heading("What each agent was trained on"),
        Text(
            "From each run's record of its agent (describe()); numbers that differ between runs "
            "show their range."
        ),
        Table(("agent", "model", "training budget (slates)", "trained on"), tuple(rows)),
        *details,
    ]


def _wall_time_section(runs: list[dict], agents: list[str]) -> list[Block]:
    keys = ("train_wall_time_s", "curve_wall_time_s", "eval_wall_time_s")
    rows = []
    for agent in agents:
        own = [run["meta"] for run in runs if run["agent"] == agent]
        if not own or not any(key in meta for meta in own for key in keys):
            continue
        means = [np.mean([float(meta.get(key) or 0.0) for meta in own]) for key in keys]
        total = sum(float(meta.get(key) or 0.0) for meta in own for key in keys)
        rows.append((agent, str(len(own)), *(f"{value:.2f}" for value in means), f"{total:.1f}"))
    if not rows:
        return []
    return [
        Heading("Wall times"),
        Table(
            (
                "agent",
                "runs",
                "training (s per run)",
                "learning curve (s per run)",
                "evaluation (s per run)",
                "total (s)",
            ),
            tuple(rows),
            caption="Means per run; the training time leaves the learning-curve evaluations out.",
        ),
    ]


def _figures_section(folder: Path) -> list[Block]:
    stems = [path.stem for path in sorted(folder.glob("*.png"))]
    ordered = [stem for stem in FIGURE_CAPTIONS if stem in stems] + [
        s for s in stems if s not in FIGURE_CAPTIONS
    ]
    if not ordered:
        return []
    return [
        Heading("Figures"),
        Text("Every agent has the same colour in every figure. PNG and SVG of each are in figures/."),
        *(Picture(stem, FIGURE_CAPTIONS.get(stem, stem.replace("_", " "))) for stem in ordered),
    ]


# The runs of a directory.


def _runs(run_dir: Path, agents: list[str], presets: list[str]) -> list[dict]:
    """Per finished run: ``name``, ``preset`` (None in a ``shopgym run`` directory),
    ``agent``, ``seed``, its ``meta`` (runs/*/meta.json of an experiment, records/*.json
    of a run) and its ``code`` (runs/*/config.json's; empty in a run directory)."""
    found = []
    seeds = (read_json(run_dir / "experiment.json") or {}).get("seeds")
    if (run_dir / "runs").is_dir():
        for folder in sorted((run_dir / "runs").iterdir()):
            meta = read_json(folder / "meta.json")
            if meta is None:
                continue
            config = read_json(folder / "config.json") or {}
            preset, agent, seed = _parse_run_name(folder.name, presets, agents)
            # The run's config.json names its preset and agent; the folder name is the fallback.
            named = config.get("agent")
            named = named.get("label") if isinstance(named, dict) else named
            agent = str(named or agent)
            preset = str(config.get("preset") or preset)
            # Folders of runs the experiment no longer holds (a resume with fewer
            # presets, agents or seeds keeps them) are not its runs.
            if (agents and agent not in agents) or (presets and preset not in presets):
                continue
            if seeds is not None and seed not in seeds:
                continue
            found.append(
                {
                    "name": folder.name,
                    "preset": preset,
                    "agent": agent,
                    "seed": seed,
                    "meta": meta,
                    "code": config.get("code") or {},
                }
            )
    elif (run_dir / "records").is_dir():
        for path in sorted((run_dir / "records").glob("*__seed*.json")):
            match = re.fullmatch(r"(.+)__seed(\d+)\.json", path.name)
            meta = read_json(path)
            if match and meta is not None:
                found.append(
                    {
                        "name": path.stem,
                        "preset": None,
                        "agent": match[1],
                        "seed": int(match[2]),
                        "meta": meta,
                        "code": {},
                    }
                )
    return found


def _parse_run_name(
    name: str, presets: Sequence[str], agents: Sequence[str]
) -> tuple[str | None, str | None, int | None]:
    """(preset, agent, seed) of a folder ``<preset>__<agent>__seed<s>``, matching the
    known labels first (a label may hold "__")."""
    match = re.fullmatch(r"(.+)__seed(\d+)", name)
    if not match:
        return None, None, None
    head, seed = match[1], int(match[2])
    for preset in presets:
        for agent in agents:
            if head == f"{preset}__{agent}":
                return preset, agent, seed
    preset, _, agent = head.partition("__")
    return preset, agent or None, seed


# Renderers.


def render_markdown(blocks: Sequence[Block]) -> str:
    """The report as Markdown (GitHub's: tables, <details> for the folded JSON)."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {_md(block.text)}")
        elif isinstance(block, Text):
            parts.append(_md(block.text))
        elif isinstance(block, Items):
            parts.append("\n".join(f"- {_md(item)}" for item in block.items))
        elif isinstance(block, Table):
            lines = [f"*{_md(block.caption)}*", ""] if block.caption else []
            lines.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
            lines.append("|" + "|".join("---" for _ in block.headers) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            parts.append("\n".join(lines))
        elif isinstance(block, Picture):
            parts.append(
                f"![{_md(block.stem)}](figures/{block.stem}.png)\n\n"
                f"{_md(block.caption)} ([SVG](figures/{block.stem}.svg))"
            )
        elif isinstance(block, Collapsed):
            text = json.dumps(block.value, indent=2, default=str)
            summary = html.escape(block.summary, quote=False)
            parts.append(f"<details><summary>{summary}</summary>\n\n```json\n{text}\n```\n\n</details>")
    return "\n\n".join(parts) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 72rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .2rem; margin-top: 2.2rem; }
.scroll { overflow-x: auto; margin: .6rem 0 1.2rem; }
table { border-collapse: collapse; font-size: .88rem; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: .3rem; }
th, td { border: 1px solid #ccc; padding: .25rem .55rem; text-align: left; vertical-align: top; }
td { font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9rem; color: #444; }
details { margin: .4rem 0; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; font-size: .8rem; }
"""


def render_html(blocks: Sequence[Block], title: str, figures: Path) -> str:
    """The report as one self-contained HTML page: inline CSS, figures as base64 PNG data
    URIs read from ``figures``, every text escaped."""
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_h(block.text)}</h{block.level}>")
        elif isinstance(block, Text):
            body.append(f"<p>{_h(block.text)}</p>")
        elif isinstance(block, Items):
            body.append("<ul>" + "".join(f"<li>{_h(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            caption = f"<caption>{_h(block.caption)}</caption>" if block.caption else ""
            head = "<tr>" + "".join(f"<th>{_h(h)}</th>" for h in block.headers) + "</tr>"
            rows = "".join("<tr>" + "".join(f"<td>{_h(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            body.append(
                f'<div class="scroll"><table>{caption}<thead>{head}</thead>'
                f"<tbody>{rows}</tbody></table></div>"
            )
        elif isinstance(block, Picture):
            data = base64.b64encode((figures / f"{block.stem}.png").read_bytes()).decode("ascii")
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{_h(block.caption)}">'
                f"<figcaption>{_h(block.caption)}</figcaption></figure>"
            )
        elif isinstance(block, Collapsed):
            text = json.dumps(block.value, indent=2, default=str)
            body.append(f"<details><summary>{_h(block.summary)}</summary><pre>{_h(text)}</pre></details>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_h(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# Formatting.


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _md(text: str) -> str:
    """``text`` for Markdown: backslashes and angle brackets escaped, so that a label or
    description is never read as HTML."""
    return str(text).replace("\\", "\\\\").replace("<", "\\<").replace(">", "\\>")


def _md_cell(text: str) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def _number(value: Any) -> str:
    """A number in a table: 3 decimals below 1000, integers as they are; text as it is."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(value)
    if np.isnan(value):
        return "—"
    return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.3f}"


def _numbers(values: Any) -> str:
    if not isinstance(values, list | tuple):
        return _number(values)
    return "[" + ", ".join(_number(v) for v in values) + "]"


def _interval(value: float, low: float, high: float) -> str:
    if pd.isna(low) or pd.isna(high):
        return f"{_number(value)} [—]"  # one seed: no interval
    return f"{_number(value)} [{_number(low)}, {_number(high)}]"


def _cell(row: pd.Series, column: str) -> str:
    """``column`` of a summary row with its interval (``column_low``, ``column_high``)."""
    low, high = row.get(f"{column}_low", np.nan), row.get(f"{column}_high", np.nan)
    return _interval(float(row[column]), float(low), float(high))


def _seeds_text(summary: pd.DataFrame) -> str:
    if "seeds" not in summary.columns:
        return "seeds unknown"
    seeds = sorted(set(int(s) for s in summary["seeds"]))
    return f"{seeds[0]} seeds" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]} seeds per agent"


def _training_data_text(data: list[dict]) -> str:
    """The training data of an agent's runs: the first run's fields, with the range over
    runs of the numbers that differ between them."""
    parts = []
    for key, value in data[0].items():
        values = [d.get(key) for d in data]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric and len(set(values)) > 1:
            text = f"{_number(min(values))}–{_number(max(values))} (mean {np.mean(values):.1f})"
        else:
            text = _number(value) if not isinstance(value, dict | list) else json.dumps(value, default=str)
        parts.append(f"{key.replace('_', ' ')}: {text}")
    return "; ".join(parts)


def _options(options: Any, short: bool = False) -> str:
    """A dict of options as ``key=value, ...`` (``key value`` when ``short``); empty: the defaults."""
    if not options:
        return "none (the defaults)"
    if not isinstance(options, dict):
        return str(options)
    separator = " " if short else "="
    return ", ".join(
        f"{key}{separator}{_short(value) if short else json.dumps(value, default=str)}"
        for key, value in options.items()
    )


def _short(value: Any) -> str:
    """A value in running text; a long hex digest cut to 16 digits."""
    text = str(value)
    if re.fullmatch(r"[0-9a-f]{20,}", text):
        return text[:16]
    return _number(value) if isinstance(value, float) else text


def _join(values: Sequence[Any]) -> str:
    return ", ".join(str(value) for value in values)
