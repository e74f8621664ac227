"""Reports: report.md and a self-contained report.html, from a directory's files alone."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import tyro

from shopgym.experiments import plots
from shopgym.experiments import report as report_module
from shopgym.experiments.plots import plot_experiment
from shopgym.experiments.report import ReportConfig, report_command, write_report
from shopgym.simulator.errors import ConfigError, DataError

from .fake_experiment import AGENTS, DESCRIPTION, PRESETS, WORLD_HASH, write_fake_experiment

FIGURES = ("final_scores", "learning_curves", "reward_curves", "position_ctr")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A fake experiment directory with its report written (read-only)."""
    out = write_fake_experiment(tmp_path_factory.mktemp("report") / "experiment")
    assert not (out / "figures").exists()
    assert write_report(out) == (out / "report.md", out / "report.html")
    return out


class _Page(HTMLParser):
    """The tags and attributes of an HTML page, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag: str) -> int:
        return sum(1 for name, _ in self.tags if name == tag)


def _page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    return page


def test_the_report_draws_the_missing_figures_and_links_them(report):
    assert {path.name for path in (report / "figures").iterdir()} == {
        f"{stem}.{suffix}" for stem in FIGURES for suffix in ("png", "svg")
    }
    markdown = (report / "report.md").read_text()
    links = re.findall(r"\]\((figures/[^)]+)\)", markdown)
    assert sorted(links) == sorted(
        f"figures/{stem}.{suffix}" for stem in FIGURES for suffix in ("png", "svg")
    )
    assert all((report / link).is_file() for link in links)


def test_the_markdown_says_what_was_run_and_what_came_out(report):
    markdown = (report / "report.md").read_text()
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    for heading in (
        "Experiment fake-comparison",
        "What was run",
        "World",
        "Results",
        "Probability of improvement",
        "Regret to the planning oracle",
        "Provenance",
        "What each agent was trained on",
        "Wall times",
        "Figures",
        *(f"Preset {preset}" for preset in PRESETS),
    ):
        assert heading in headings, heading
    # The description, its angle brackets escaped so that no renderer reads a tag.
    assert DESCRIPTION.replace("<", "\\<").replace(">", "\\>") in markdown
    assert "max_steps=100, patience=20.0" in markdown  # a preset's options
    assert "n_epochs=4" in markdown  # an agent's options
    assert WORLD_HASH in markdown and "hr@10" in markdown and "position logits" in markdown
    # Results: mean [CI] and IQM [CI] tables per preset, metrics by their labels, agents in order.
    assert markdown.count("| metric | ppo | bpr-mf | planning-oracle |") == 2 * len(PRESETS)
    assert "| return per session | " in markdown and "| regret to planning oracle |" in markdown
    # What the static recommender was trained on: its log and the logging policy.
    bpr_row = next(line for line in markdown.splitlines() if line.startswith("| bpr-mf | bpr-mf | 200 |"))
    assert "uniformly random slates" in bpr_row and "clicks: 24" in bpr_row
    # Regret: the reference itself is not listed; paired by seed, not by shopper.
    regret = markdown.split("## Regret to the planning oracle")[1].split("## ")[0]
    assert "| ppo |" in regret and "| planning-oracle |" not in regret
    assert "paired by preset and seed" in regret and "not of per-shopper returns" in regret
    assert "same held-out shoppers" not in markdown
    # Provenance: every run made by the one code version of the fake runs, one invocation.
    provenance = markdown.split("## Provenance")[1].split("## ")[0]
    runs = len(PRESETS) * len(AGENTS) * 3
    assert f"| 0.3.0 | 5f1c0ffee0ddba11 | ? | ? | {runs} |" in provenance
    assert provenance.count("| 1 | ") == 1 and "| 2 | " not in provenance


def test_the_html_is_self_contained_and_escaped(report):
    text = (report / "report.html").read_text()
    page = _page(report / "report.html")
    names = {name for name, _ in page.tags}
    assert not names & {"script", "link", "iframe", "object", "embed"}
    for name, attributes in page.tags:
        for key in ("src", "href", "srcset", "data"):
            value = attributes.get(key)
            if value is not None:
                assert value.startswith("data:image/png;base64,"), (name, key, value[:40])
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|file:|//)""", text, flags=re.IGNORECASE)
    assert "url(" not in text and "@import" not in text
    assert html.escape(DESCRIPTION) in text and DESCRIPTION not in text
    assert page.count("img") == len(FIGURES)
    # Tables: presets and agents, provenance (code versions, invocations), the World's fit, mean
    # and IQM per preset, P(improvement) and regret per preset, training and wall times.
    assert page.count("table") == 2 + 2 + 1 + 2 * len(PRESETS) + 2 * len(PRESETS) + 2
    # Folded JSON: the resolved config, each preset's shopper config, each agent's describe().
    assert page.count("details") == 1 + len(PRESETS) + len(AGENTS)


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").is_file():
        found = "/usr/bin/chromium"
    return found


# On load, the page writes what it rendered into itself, for --dump-dom to show.
_PROBE = """<script>
window.addEventListener("load", () => {
  const shown = (element) => {
    const box = element.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  };
  const result = {
    rows: document.querySelectorAll("table tr").length,
    shownRows: [...document.querySelectorAll("table tr")].filter(shown).length,
    images: document.images.length,
    decoded: [...document.images].filter((img) => img.complete && img.naturalWidth > 0 && shown(img)).length,
    svgs: [...document.querySelectorAll("svg")].filter(shown).length,
  };
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify(result);
  document.body.appendChild(probe);
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="needs Chromium (apt-get install chromium)")
def test_chromium_renders_the_tables_and_images(report, tmp_path):
    page = _page(report / "report.html")
    copy = tmp_path / "report.html"
    copy.write_text((report / "report.html").read_text().replace("</body>", _PROBE + "\n</body>"))
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        copy.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, flags=re.DOTALL)
    assert match, done.stdout[-2000:]
    rendered = json.loads(html.unescape(match[1]))
    assert rendered["rows"] == page.count("tr") > 10
    assert rendered["shownRows"] == rendered["rows"]
    assert rendered["images"] == rendered["decoded"] == len(FIGURES)
    assert rendered["svgs"] == page.count("svg")  # inline SVGs, if a report ever has them


def test_a_shopgym_run_directory_gets_a_smaller_report(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    markdown_path, html_path = write_report(run)
    markdown = markdown_path.read_text()
    assert markdown.startswith("# shopgym run: shopgym/SyntheticShopper-v0")
    for heading in (
        "## What was run",
        "## World",
        "## Results",
        "## What each agent was trained on",
        "## Figures",
    ):
        assert heading in markdown
    # No presets, no improvement table (a run has no improvement.csv).
    assert "### Preset" not in markdown and "Probability of improvement" not in markdown
    assert (
        "| metric | random | popularity | linucb | bpr-mf | ppo | myopic-oracle | planning-oracle |"
        in markdown
    )
    assert "uniformly random slates" in markdown  # what BPR-MF's log was collected with
    assert "online, during evaluation" in markdown  # where LinUCB learns
    page = _page(html_path)
    assert page.count("img") == len(list((run / "figures").glob("*.png"))) >= 3


def test_report_command_parses_the_directory_as_a_positional_argument(report, tmp_path, capsys):
    for name in ("experiment.json", "summary.csv"):
        shutil.copy(report / name, tmp_path)
    shutil.copytree(report / "figures", tmp_path / "figures")
    config = tyro.cli(ReportConfig, args=[str(tmp_path)])
    assert config == ReportConfig(run_dir=tmp_path)
    assert report_command(config) == (tmp_path / "report.md", tmp_path / "report.html")
    assert "wrote" in capsys.readouterr().out
    assert "## Results" in (tmp_path / "report.md").read_text()


def _copy(experiment: Path, target: Path) -> Path:
    """A copy of an experiment directory without its figures and reports."""
    shutil.copytree(experiment, target, ignore=shutil.ignore_patterns("figures", "report.*"))
    return target


def test_the_report_redraws_figures_drawn_before_the_tables_changed(report, tmp_path):
    extended = _copy(report, tmp_path / "extended")
    write_report(extended)
    before = (extended / "figures" / "final_scores.png").read_bytes()
    # The tables change after the figures were drawn (more seeds, say): ppo does better.
    summary = pd.read_csv(extended / "summary.csv")
    columns = [c for c in summary.columns if c.startswith("return")]
    summary.loc[summary["agent"] == "ppo", columns] += 1.0
    summary.to_csv(extended / "summary.csv", index=False)
    write_report(extended)
    # The same figure as one drawn afresh from the new tables, embedded in the page.
    fresh = _copy(extended, tmp_path / "fresh")
    plot_experiment(fresh)
    after = (extended / "figures" / "final_scores.png").read_bytes()
    assert after != before
    assert after == (fresh / "figures" / "final_scores.png").read_bytes()
    assert base64.b64encode(after).decode("ascii") in (extended / "report.html").read_text()


def test_the_report_and_its_figures_are_written_atomically(report, tmp_path, monkeypatch):
    copy = _copy(report, tmp_path / "copy")
    written = []

    def recording(path, content):
        written.append(Path(path))
        return atomic_write(path, content)

    atomic_write = report_module.atomic_write
    monkeypatch.setattr(report_module, "atomic_write", recording)
    monkeypatch.setattr(plots, "atomic_write", recording)
    write_report(copy)
    figures = [copy / "figures" / f"{stem}.{suffix}" for stem in FIGURES for suffix in ("png", "svg")]
    assert sorted(written) == sorted([*figures, copy / "report.md", copy / "report.html"])
    assert sorted(copy.glob("**/.*.tmp")) == []


def test_the_provenance_lists_every_code_version_and_invocation(report, tmp_path):
    copy = _copy(report, tmp_path / "copy")
    # An earlier invocation (2 seeds, older code) made one of the runs.
    experiment = json.loads((copy / "experiment.json").read_text())
    earlier = {**experiment, "seeds": [0, 1], "written": "2026-01-01T10:00:00"}
    earlier["code"] = {"version": "0.2.0", "source": "0ldc0de0ldc0de00", "commit": "ab" * 20, "dirty": True}
    earlier["command"] = ["shopgym", "compare", "fake.toml", "--set", "seeds=2"]
    experiment["history"] = [earlier]
    experiment["command"] = ["shopgym", "compare", "fake.toml"]
    (copy / "experiment.json").write_text(json.dumps(experiment))
    run = copy / "runs" / "base__ppo__seed0" / "config.json"
    run.write_text(json.dumps({**json.loads(run.read_text()), "code": earlier["code"]}))
    markdown = write_report(copy)[0].read_text()
    provenance = markdown.split("## Provenance")[1].split("## ")[0]
    runs = len(PRESETS) * len(AGENTS) * 3
    assert f"| 0.3.0 | 5f1c0ffee0ddba11 | ? | ? | {runs - 1} |" in provenance
    assert f"| 0.2.0 | 0ldc0de0ldc0de00 | {'ab' * 8} | yes | 1 |" in provenance
    assert (
        "| 1 | 2026-01-01T10:00:00 | shopgym compare fake.toml --set seeds=2 | 0, 1 | cpu | 0.2.0 |"
        in provenance
    )
    assert "| 2 | ? | shopgym compare fake.toml | 0, 1, 2 | cpu | 0.3.0 | 5f1c0ffee0ddba11 |" in provenance


def _relabel(folder: Path, old: str, new: str) -> None:
    """Rename the agent label ``old`` to ``new`` in every file and run folder of ``folder``."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".csv", ".json", ".txt"):
            path.write_text(path.read_text().replace(old, new))
    for run in sorted((folder / "runs").iterdir()):
        run.rename(run.with_name(run.name.replace(old, new)))


def test_the_regret_reference_is_the_planning_oracle_by_name_not_label(report, tmp_path):
    copy = _copy(report, tmp_path / "copy")
    _relabel(copy, "planning-oracle", "lookahead")
    experiment = json.loads((copy / "experiment.json").read_text())
    assert [agent["name"] for agent in experiment["agents"]] == ["ppo", "bpr-mf", "lookahead"]
    experiment["agents"][2]["name"] = "planning-oracle"  # labelled "lookahead"
    (copy / "experiment.json").write_text(json.dumps(experiment))
    markdown = write_report(copy)[0].read_text()
    regret = markdown.split("## Regret to the planning oracle")[1].split("## ")[0]
    assert "planning oracle (lookahead," in regret
    assert "| ppo |" in regret and "| lookahead |" not in regret


def test_the_report_shows_the_fraction_of_the_oracle_over_all_presets(report, tmp_path):
    copy = _copy(report, tmp_path / "copy")
    overall = pd.DataFrame(
        {
            "agent": ["bpr-mf", "ppo", "planning-oracle"],  # not in the experiment's order
            "presets": [2, 2, 2],
            "seeds": [6, 6, 6],
            "oracle_fraction_iqm": [0.375, 0.5125, 1.0],
            "oracle_fraction_iqm_low": [0.25, 0.4, 0.9],
            "oracle_fraction_iqm_high": [0.5, 0.625, 1.1],
        }
    )
    overall.to_csv(copy / "overall.csv", index=False)
    heading = "All presets: fraction of the planning oracle's return (IQM, 95% stratified bootstrap)"
    markdown_path, html_path = write_report(copy)
    section = markdown_path.read_text().split(f"## {heading}")[1].split("## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows == [
        "| agent | IQM [95% CI] | presets | seeds |",
        "| ppo | 0.512 [0.400, 0.625] | 2 | 6 |",
        "| bpr-mf | 0.375 [0.250, 0.500] | 2 | 6 |",
        "| planning-oracle | 1.000 [0.900, 1.100] | 2 | 6 |",
    ]
    page = html_path.read_text()
    assert f"<h2>{html.escape(heading)}</h2>" in page
    assert "<td>ppo</td><td>0.512 [0.400, 0.625]</td><td>2</td><td>6</td>" in page
    # Without overall.csv (one preset, or no oracle), no such section.
    assert heading not in (report / "report.md").read_text()


def test_write_report_names_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        write_report(tmp_path / "absent")
    with pytest.raises(DataError):
        write_report(tmp_path)
