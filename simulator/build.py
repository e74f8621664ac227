"""Building Worlds: fitted on interaction logs, or synthetic with a known truth.

:func:`build_world` fits BPR-MF on a leave-last-out split, evaluates it next to a
popularity ranker, keeps the items with enough training events as the catalogue,
adds categories, prices and popularity, splits shoppers into train and test,
standardises utilities and calibrates the click level. :func:`default_world`
does this once for the embedded MovieLens data and caches the result.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from shopgym.simulator.calibration import calibrate_click_level
from shopgym.simulator.determinism import derived_seeds
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError, DataError
from shopgym.simulator.interactions import Interactions, load_movies, load_ratings
from shopgym.simulator.items import category_matrix, lognormal_prices
from shopgym.simulator.mf import MFConfig, fit_bpr
from shopgym.simulator.ranking import full_ranking_metrics, popularity_scorer
from shopgym.simulator.splits import leave_last_out
from shopgym.simulator.world import Calibration, World

# Part of the cache key of the default World: bump it whenever build_world gives
# different tensors for the same data and configs, so stale caches are not reused.
BUILDER_VERSION = 3


@dataclass(frozen=True)
class WorldConfig:
    """How a World is assembled around a fitted preference model."""

    min_item_events: int = 5
    """Catalogue: items with at least this many training events (the rest are too
    poorly estimated to define anyone's ground truth)."""
    test_fraction: float = 0.2
    """Share of shoppers held out for evaluation."""
    beta: float = 2.0
    """Choice temperature on standardised utilities (higher: shoppers follow their
    preferences more closely)."""
    position_decay: float = 0.2
    """Logit penalty per slate position."""
    target_click_rate: float = 0.15
    """Click probability of a uniformly random slate (a stated level)."""
    calibration_slate_size: int = 5
    median_price: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.median_price > 0:
            raise ConfigError(f"WorldConfig.median_price must be > 0, got {self.median_price}")
        if self.calibration_slate_size < 1:
            raise ConfigError(
                f"WorldConfig.calibration_slate_size must be >= 1, got {self.calibration_slate_size}"
            )
        if self.min_item_events < 1:
            raise ConfigError(f"WorldConfig.min_item_events must be >= 1, got {self.min_item_events}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"WorldConfig.test_fraction must be in (0, 1), got {self.test_fraction}")


def build_world(
    interactions: Interactions,
    movies: pd.DataFrame | None = None,
    mf_config: MFConfig = MFConfig(),
    world_config: WorldConfig = WorldConfig(),
    device: str | torch.device = "auto",
    progress: bool = True,
) -> World:
    """Fit a World on ``interactions`` (ratings are used as implicit feedback)."""
    device = resolve_device(device)
    started = time.perf_counter()
    split = leave_last_out(interactions)
    fit = fit_bpr(split, mf_config, device=device, progress=progress)
    seen = split.consumed_before_test()
    metrics = {
        "bpr-mf": full_ranking_metrics(fit.model.score_all, split.test, seen, split.num_items, device=device),
        "popularity": full_ranking_metrics(
            popularity_scorer(split.train, split.num_items, device),
            split.test,
            seen,
            split.num_items,
            device=device,
        ),
    }
    train_counts = np.bincount(split.train[:, 1], minlength=split.num_items)
    catalogue = np.flatnonzero(train_counts >= world_config.min_item_events)
    if len(catalogue) < world_config.calibration_slate_size:
        raise DataError(
            f"{interactions.source}: only {len(catalogue)} items have >= "
            f"{world_config.min_item_events} training events; lower min_item_events"
        )
    model = fit.model.cpu()
    item_ids = split.item_ids[catalogue]
    if movies is not None:
        categories, category_names = category_matrix(item_ids, movies)
    else:
        categories, category_names = torch.zeros(len(catalogue), 0), ()
    world = _assemble(
        user_embedding=model.user_embedding.detach(),
        item_embedding=model.item_embedding.detach()[catalogue],
        item_bias=model.item_bias.detach()[catalogue],
        item_category=categories,
        item_popularity=torch.as_tensor(train_counts[catalogue]).float(),
        category_names=category_names,
        config=world_config,
        card={
            "name": "movielens-small-bpr" if movies is not None else "bpr",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": {
                "source": interactions.source,
                "sha256": interactions.sha256,
                "events": len(interactions),
                "feedback": "implicit (every rated item counts as a positive)",
            },
            "split": split.describe(),
            "preference_model": {"model": "bpr-mf", **asdict(mf_config), "best_epoch": fit.best_epoch},
            "fit": {
                "wall_time_s": round(fit.wall_time_s, 2),
                "device": str(device),
                "test_metrics": metrics,
                "history": fit.history,
            },
            "catalogue": {
                "items": len(catalogue),
                "rule": f"items with >= {world_config.min_item_events} training events",
                "item_ids": item_ids.tolist(),
            },
            "shopper_ids": split.user_ids.tolist(),
            "prices": "log-normal per first category, seeded (the data has no prices)",
            "world_config": asdict(world_config),
            "build_wall_time_s": None,
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
        },
    )
    world.card["build_wall_time_s"] = round(time.perf_counter() - started, 2)
    return world


def synthetic_world(
    num_shoppers: int = 200,
    num_items: int = 40,
    dim: int = 4,
    num_categories: int = 4,
    personalization: float = 1.0,
    config: WorldConfig = WorldConfig(),
) -> World:
    """A small World whose truth is drawn, not fitted: Gaussian shopper and item
    vectors, one category per item. Fast, and its best slates are known exactly.

    ``personalization`` scales the shopper vectors: at 0 every shopper ranks items
    by the item bias alone, so one slate is best for everyone.
    """
    generator = torch.Generator().manual_seed(config.seed)
    category = torch.randint(num_categories, (num_items,), generator=generator)
    return _assemble(
        user_embedding=personalization * torch.randn(num_shoppers, dim, generator=generator),
        item_embedding=torch.randn(num_items, dim, generator=generator),
        item_bias=0.5 * torch.randn(num_items, generator=generator),
        item_category=torch.nn.functional.one_hot(category, num_categories).float(),
        item_popularity=torch.randint(1, 100, (num_items,), generator=generator).float(),
        category_names=tuple(f"category_{c}" for c in range(num_categories)),
        config=config,
        card={
            "name": "synthetic",
            "shape": {"shoppers": num_shoppers, "items": num_items, "dim": dim},
        },
    )


def _assemble(
    user_embedding: torch.Tensor,
    item_embedding: torch.Tensor,
    item_bias: torch.Tensor,
    item_category: torch.Tensor,
    item_popularity: torch.Tensor,
    category_names: tuple[str, ...],
    config: WorldConfig,
    card: dict,
) -> World:
    """Add prices, the shopper split, the utility standardisation and the calibration."""
    # Independent streams from one seed for the split, the prices and the calibration sample.
    split_seed, price_seed, calibration_seed = derived_seeds(config.seed, 3)
    generator = torch.Generator().manual_seed(split_seed)
    num_shoppers = user_embedding.shape[0]
    test_shopper = torch.zeros(num_shoppers, dtype=torch.bool)
    num_test = max(1, round(config.test_fraction * num_shoppers))
    test_shopper[torch.randperm(num_shoppers, generator=generator)[:num_test]] = True
    raw = user_embedding @ item_embedding.T + item_bias
    world = World(
        user_embedding=user_embedding.float().contiguous(),
        item_embedding=item_embedding.float().contiguous(),
        item_bias=item_bias.float().contiguous(),
        item_category=item_category.float().contiguous(),
        item_price=lognormal_prices(item_category, config.median_price, seed=price_seed),
        item_popularity=item_popularity.float().contiguous(),
        test_shopper=test_shopper,
        utility_shift=float(raw.mean()),
        utility_scale=float(raw.std()),
        calibration=Calibration(),  # replaced below: calibration needs the utilities
        category_names=category_names,
        card=card,
    )
    calibration = calibrate_click_level(
        world,
        config.target_click_rate,
        config.calibration_slate_size,
        beta=config.beta,
        position_decay=config.position_decay,
        seed=calibration_seed,
    )
    return replace(world, calibration=calibration)


# ------------------------------------------------------------------ default World
def cache_dir() -> Path:
    """Where fitted Worlds are cached: ``$SHOPGYM_HOME`` or ``~/.cache/shopgym``."""
    return Path(os.environ.get("SHOPGYM_HOME", Path.home() / ".cache" / "shopgym"))


def default_world(
    mf_config: MFConfig = MFConfig(),
    world_config: WorldConfig = WorldConfig(),
    device: str | torch.device = "auto",
    progress: bool = True,
) -> World:
    """The World fitted on the embedded MovieLens-small data: loaded from the cache
    when present (no refit), else fitted (about 15 s on 2 CPU cores) and cached."""
    interactions = load_ratings()
    device = resolve_device(device)
    key = json.dumps(
        {
            "builder": BUILDER_VERSION,
            "data": interactions.sha256,
            "mf": asdict(mf_config),
            "world": asdict(world_config),
            # Kernels differ between devices, so a World fitted on CUDA has another hash.
            "device": device.type,
        },
        sort_keys=True,
    )
    folder = cache_dir() / "worlds" / f"movielens-small-bpr-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (folder / "card.json").is_file():
        return _load_cached(folder)
    world = build_world(interactions, load_movies(), mf_config, world_config, device, progress)
    # Write to a temporary folder and rename, so a crash or a concurrent build never
    # leaves a half-written World behind.
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".building-"))
    world.save(staging)
    staging.chmod(0o755)  # mkdtemp makes it private; a shared cache must stay readable
    try:
        staging.rename(folder)
    except OSError:  # another process finished first: keep theirs
        shutil.rmtree(staging, ignore_errors=True)
    return _load_cached(folder)


@functools.lru_cache(maxsize=4)
def _load_cached(folder: Path) -> World:
    # Worlds are never modified after loading, so one copy per process is shared.
    return World.load(folder)


def resolve_world(
    world: World | str | Path | None = None, device: str | torch.device = "auto", progress: bool = True
) -> World:
    """A World from what a user can name: ``None`` or ``"default"`` (the embedded
    MovieLens World), ``"synthetic"`` (:func:`synthetic_world`), a saved World's
    folder, or a World itself."""
    if isinstance(world, World):
        return world
    if world is None or world == "default":
        return default_world(device=device, progress=progress)
    if world == "synthetic":
        return _synthetic_cached()
    return World.load(world)


@functools.lru_cache(maxsize=1)
def _synthetic_cached() -> World:
    return synthetic_world()
