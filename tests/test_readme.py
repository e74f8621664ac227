"""The README's set-up commands are what CI runs and what the package provides."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("python3 -m venv")]


def test_ci_runs_the_readme_test_command_verbatim():
    readme = _commands((ROOT / "README.md").read_text())
    ci = _commands((ROOT / ".ci" / "run").read_text())
    assert len(readme) == 2, "README must give exactly two set-up commands (run, test)"
    assert readme[1].endswith("&& pytest -n 2")  # two pytest-xdist workers on the 2 cores
    assert ci == [readme[1]]


def test_readme_main_command_installs_and_runs_shopgym():
    run_command = _commands((ROOT / "README.md").read_text())[0]
    assert run_command.endswith("&& shopgym compare default")
    assert "pip install -e ." in run_command
