"""The default World shipped in the package: its hash is pinned, and default_world()
loads it (never fits it) for the default configs, on any device."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import tomllib
from dataclasses import asdict
from pathlib import Path

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
SHIPPED_HASH = "0ae7b53f9a93c0df"
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
