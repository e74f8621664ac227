"""The default World shipped in the package: its hash is pinned, and default_world()
loads it (never fits it) for the default configs, on any device."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import shutil
import subprocess
import tomllib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

import shopgym.simulator.build as build
import shopgym.simulator.models as models
import shopgym.simulator.models.training as training
from shopgym.simulator.build import (
    BUILDER_VERSION,
    FitConfig,
    WorldConfig,
    default_world,
    resolve_world,
    shipped_world_path,
)
from shopgym.simulator.interactions import embedded_ratings_path, file_sha256
from shopgym.simulator.world import FORMAT_VERSION, World

# The shipped World's hash. A change here is a change of shopgym/Shopper-v0: rebuild
# with the command in data/worlds/README.md, and update the README and docs/benchmarks.md.
SHIPPED_HASH = "a6670f12db65b7c9"
REPOSITORY = Path(__file__).resolve().parents[2]


class FitCalled(AssertionError):
    """Raised by the patched fitting functions: the shipped World is never refitted."""


@pytest.fixture
def no_fitting(monkeypatch):
    def refuse(*args, **kwargs):
        raise FitCalled("a fit was started for the default configs")

    for module, name in [(build, "build_world"), (build, "fit_model"), (models, "fit_model")]:
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(training, "fit_model", refuse)
    # Read the folder again, not a World an earlier test left in the process caches.
    build._shipped_default.cache_clear()
    build._load_cached.cache_clear()
    yield
    build._shipped_default.cache_clear()
    build._load_cached.cache_clear()


@pytest.fixture(scope="module")
def shipped() -> World:
    return World.load(shipped_world_path())


def test_the_shipped_world_has_the_pinned_hash(shipped):
    assert shipped.hash == SHIPPED_HASH


def test_default_world_is_the_shipped_world_without_fitting(no_fitting, tmp_path, monkeypatch):
    # An empty cache: nothing to fall back on but the shipped files.
    monkeypatch.setenv("SHOPGYM_HOME", str(tmp_path))
    world = default_world(device="cpu", progress=False)
    assert world.hash == SHIPPED_HASH
    # Configs that resolve to the defaults name the same World.
    spelled_out = default_world(FitConfig(model="neumf", dim=32), WorldConfig(seed=0), device="cpu")
    assert spelled_out.hash == SHIPPED_HASH
    assert resolve_world("default", device="cpu").hash == SHIPPED_HASH
    assert not (tmp_path / "worlds").exists()


def test_other_configs_are_fitted_not_shipped(no_fitting, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPGYM_HOME", str(tmp_path))
    with pytest.raises(FitCalled):
        default_world(FitConfig(seed=1), device="cpu", progress=False)
    with pytest.raises(FitCalled):
        default_world(world_config=WorldConfig(learned_features_model=None), device="cpu", progress=False)


@pytest.mark.gpu
def test_default_world_on_cuda_is_the_shipped_world_moved(no_fitting):
    world = default_world(device="cuda", progress=False)
    assert world.device.type == "cuda" and world.learned_item_features.device.type == "cuda"
    assert world.hash == SHIPPED_HASH


def test_the_shipped_card_matches_the_code_and_data(shipped):
    card = shipped.card
    assert card["builder_version"] == BUILDER_VERSION, "BUILDER_VERSION changed: rebuild the shipped World"
    stored = json.loads((shipped_world_path() / "card.json").read_text())
    assert stored["ground_truth"]["format_version"] == FORMAT_VERSION
    assert card["data"]["sha256"] == file_sha256(embedded_ratings_path())
    assert card["world_config"] == asdict(WorldConfig())
    resolved = FitConfig().resolved().to_dict()
    assert {k: v for k, v in card["preference_model"].items() if k != "best_epoch"} == resolved
    assert card["fit"]["device"] == "cpu"
    assert shipped.model_name == "neumf"
    learned = card["learned_features"]
    assert learned["model"] == "bpr"
    assert shipped.learned_item_features.shape == (shipped.num_items, learned["dim"])
    metrics = learned["test_metrics"]["bpr"]
    assert metrics["ndcg@10"] > card["fit"]["test_metrics"]["popularity"]["ndcg@10"]


def test_the_shipped_files_are_small_packaged_and_tracked():
    folder = shipped_world_path()
    files = sorted(path.name for path in folder.iterdir())
    assert files == ["card.json", "tensors.pt"]
    assert sum(path.stat().st_size for path in folder.iterdir()) < 6_000_000
    if not (REPOSITORY / "pyproject.toml").is_file():
        pytest.skip("not a source checkout")
    data = REPOSITORY / "data"
    patterns = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["shopgym.data"]
    for path in [*folder.iterdir(), data / "worlds" / "README.md"]:
        relative = path.relative_to(data).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
    if shutil.which("git") is None or not (REPOSITORY / ".git").exists():
        pytest.skip("not a git checkout")
    names = [str(path) for path in folder.iterdir()]
    ignored = subprocess.run(["git", "check-ignore", *names], cwd=REPOSITORY, capture_output=True, text=True)
    assert ignored.returncode == 1 and not ignored.stdout, f"git ignores {ignored.stdout}"


def test_item_quality_is_the_shrunk_mean_rating_standardised():
    from shopgym.simulator.build import QUALITY_PRIOR_RATINGS, item_quality
    from shopgym.simulator.splits import Split

    split = Split(
        user_ids=np.arange(3),
        item_ids=np.arange(4),
        train=np.array([[0, 0], [0, 1], [1, 1], [2, 2], [1, 3], [2, 3]]),
        valid=np.zeros((0, 2), dtype=np.int64),
        test=np.zeros((0, 2), dtype=np.int64),
        train_values=np.array([5.0, 1.0, 2.0, 4.0, 3.0, 3.5]),
    )
    catalogue = np.array([1, 2, 3])
    mean, m = split.train_values.mean(), QUALITY_PRIOR_RATINGS
    shrunk = np.array([(1 + 2 + m * mean) / (2 + m), (4 + m * mean) / (1 + m), (6.5 + m * mean) / (2 + m)])
    expected = (shrunk - shrunk.mean()) / shrunk.std()
    np.testing.assert_allclose(item_quality(split, catalogue).numpy(), expected, rtol=1e-5)
    implicit = dataclasses.replace(split, train_values=np.ones(6))
    assert item_quality(implicit, catalogue) is None


def test_the_shipped_world_holds_the_quality_of_the_embedded_ratings():
    shipped = World.load(shipped_world_path())
    quality = shipped.item_quality
    assert quality is not None and quality.shape == (shipped.num_items,)
    assert abs(float(quality.mean())) < 1e-5 and abs(float(quality.std()) - 1) < 1e-3
