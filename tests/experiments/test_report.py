"""Reports: report.md and a self-contained report.html, from a directory's files alone."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import tyro

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
    # Regret: the reference itself is not listed.
    regret = markdown.split("## Regret to the planning oracle")[1].split("## ")[0]
    assert "| ppo |" in regret and "| planning-oracle |" not in regret


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
    # Tables: presets and agents, the World's fit, mean and IQM per preset, P(improvement) and
    # regret per preset, training and wall times.
    assert page.count("table") == 2 + 1 + 2 * len(PRESETS) + 2 * len(PRESETS) + 2
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
    shutil.copytree(report / "figures", tmp_path / "figures")  # drawn already: not redrawn
    config = tyro.cli(ReportConfig, args=[str(tmp_path)])
    assert config == ReportConfig(run_dir=tmp_path)
    assert report_command(config) == (tmp_path / "report.md", tmp_path / "report.html")
    assert "wrote" in capsys.readouterr().out
    assert "## Results" in (tmp_path / "report.md").read_text()


def test_write_report_names_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        write_report(tmp_path / "absent")
    with pytest.raises(DataError):
        write_report(tmp_path)
