"""The shipped experiment files stay valid: each loads, expands, and its smoke version
runs end to end (at a budget smaller still, so that the test takes seconds)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shopgym.experiments.compare import CompareConfig, compare
from shopgym.experiments.experiment import CONFIGS, expand_runs, load_experiment

FILES = sorted(CONFIGS.glob("*.toml"))
# Every run of a smoke version, but on 4 episodes, 40 training slates, no curve.
TINIER = ("seeds=[0]", "episodes=4", "num_envs=4", "train_slates=40", "curve_points=0")


def test_every_shipped_experiment_is_listed_in_the_docs():
    documented = (Path(__file__).parents[2] / "docs" / "experiments.md").read_text()
    assert len(FILES) == 7
    for path in FILES:
        assert f"`{path.name}`" in documented


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_shipped_experiment_and_its_smoke_version_run(path, tmp_path):
    full, smoke = load_experiment(path), load_experiment(path, smoke=True)
    assert full.description and len(full.seed_list()) >= 2
    assert len(expand_runs(smoke)) <= len(expand_runs(full))
    # The planning oracle tunes itself on 1,024 simulated train shoppers per policy: 16 here.
    text = path.read_text().replace(
        'name = "planning-oracle"', 'name = "planning-oracle"\noptions = { tuning_rows = 16 }'
    )
    file = tmp_path / path.name
    file.write_text(text)
    out = compare(
        CompareConfig(file=file, out=tmp_path / "out", smoke=True, set=TINIER, quiet=True, report=False)
    )
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == len(expand_runs(smoke)) // len(smoke.seed_list())
    assert scores["return"].notna().all()
