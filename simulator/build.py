"""Building Worlds: fitted on interaction logs, or synthetic with a known truth.

:func:`build_world` fits a preference model (MF, BPR-MF, GMF, MLP or NeuMF) on a
leave-last-out split, evaluates it next to a popularity ranker, keeps the items with
enough training events as the catalogue, adds categories, prices and popularity,
splits shoppers into train and test, standardises utilities and calibrates the
choice model to a click target. :func:`default_world` does this once for the
embedded MovieLens data and caches the result.
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

from shopgym.simulator.calibration import ClickTarget, calibrate
from shopgym.simulator.determinism import derived_seeds
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError, DataError
from shopgym.simulator.interactions import Interactions, load_movies, load_ratings
from shopgym.simulator.items import category_matrix, lognormal_prices
from shopgym.simulator.models import FitConfig, PreferenceModel, build_model, fit_model
from shopgym.simulator.ranking import popularity_scorer, ranking_report
from shopgym.simulator.splits import leave_last_out
from shopgym.simulator.world import Calibration, World

# Part of the cache key of the default World: bump it whenever build_world gives
# different tensors for the same data and configs, so stale caches are not reused.
BUILDER_VERSION = 5


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
    preferences more closely). Not identified by click rates; a stated constant."""
    click_target: str = "stated"
    """What the click level and position effects are calibrated to: "stated" (a
    stated click rate per random slate, decaying over positions) or "obd:<campaign>"
    (the Open Bandit Dataset's random-policy log: all, men or women; 3 positions)."""
    click_rate: float | None = None
    """Clicks per uniformly random slate. With "stated": the level (default 0.15).
    With "obd:...": rescale the log's position effects to this level (default: keep
    the log's own level, about 0.4% per impression)."""
    slate_size: int = 5
    """Slate size of a "stated" target (an OBD target has the log's 3 positions)."""
    position_decay: float = 0.2
    """Relative position effects of a "stated" target: weight exp(-decay * position)."""
    median_price: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.median_price > 0:
            raise ConfigError(f"WorldConfig.median_price must be > 0, got {self.median_price}")
        if self.slate_size < 1:
            raise ConfigError(f"WorldConfig.slate_size must be >= 1, got {self.slate_size}")
        if self.min_item_events < 1:
            raise ConfigError(f"WorldConfig.min_item_events must be >= 1, got {self.min_item_events}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"WorldConfig.test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.click_target != "stated" and not self.click_target.startswith("obd:"):
            raise ConfigError(
                f"--click-target must be 'stated' or 'obd:<campaign>', got {self.click_target!r}"
            )

    def target(self) -> ClickTarget:
        """The :class:`ClickTarget` this config names."""
        if self.click_target == "stated":
            rate = 0.15 if self.click_rate is None else self.click_rate
            return ClickTarget.stated(rate, self.slate_size, self.position_decay)
        from shopgym.simulator.obd import load_obd  # the OBD files are read only when asked for

        campaign = self.click_target.removeprefix("obd:")
        table = load_obd(campaign=campaign, policy="random").position_ctr()
        if table["position"].tolist() != list(range(len(table))):
            raise DataError(f"OBD random/{campaign}: positions {table['position'].tolist()} are not 0..k-1")
        target = ClickTarget.from_counts(
            table["clicks"].to_numpy(),
            table["impressions"].to_numpy(),
            f"Open Bandit Dataset random/{campaign}",
        )
        return target if self.click_rate is None else target.at_level(self.click_rate)


def build_world(
    interactions: Interactions,
    items: pd.DataFrame | None = None,
    fit_config: FitConfig = FitConfig(),
    world_config: WorldConfig = WorldConfig(),
    device: str | torch.device = "auto",
    progress: bool = True,
    checkpoint: str | Path | None = None,
) -> World:
    """Fit a World on ``interactions`` (ratings count as implicit feedback, except for
    the explicit-rating ``mf`` model). ``checkpoint`` lets an interrupted fit resume.

    Args:
        items: item attributes (:func:`~shopgym.simulator.interactions.load_item_attributes`
            or ``load_movies``): ``item``, ``genres`` (categories) and optionally
            ``price``, which every catalogue item then needs. Without prices, prices are
            drawn log-normally per category from the World's seed.
    """
    device = resolve_device(device)
    started = time.perf_counter()
    split = leave_last_out(interactions)
    fit = fit_model(split, fit_config, device=device, progress=progress, checkpoint=checkpoint)
    metrics = {
        fit.config.model: ranking_report(fit.model.score_all, split, device=device),
        "popularity": ranking_report(
            popularity_scorer(split.train, split.num_items, device), split, device=device
        ),
    }
    train_counts = np.bincount(split.train[:, 1], minlength=split.num_items)
    catalogue = np.flatnonzero(train_counts >= world_config.min_item_events)
    if len(catalogue) < world_config.slate_size:
        raise DataError(
            f"{interactions.source}: only {len(catalogue)} items have >= "
            f"{world_config.min_item_events} training events; lower min_item_events"
        )
    item_ids = split.item_ids[catalogue]
    if items is not None:
        categories, category_names = category_matrix(item_ids, items)
    else:
        categories, category_names = torch.zeros(len(catalogue), 0), ()
    prices = _catalogue_prices(item_ids, items, interactions.source)
    world = _assemble(
        model=fit.model.cpu(),
        model_name=fit.config.model,
        catalogue=torch.as_tensor(catalogue),
        item_category=categories,
        item_popularity=torch.as_tensor(train_counts[catalogue]).float(),
        category_names=category_names,
        item_price=prices,
        config=world_config,
        card={
            "name": f"{Path(interactions.source).parent.name}-{fit.config.model}",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": {
                "source": interactions.source,
                "sha256": interactions.sha256,
                "events": len(interactions),
                "feedback": "explicit ratings"
                if fit.config.model == "mf"
                else "implicit (every event a positive)",
            },
            "split": split.describe(),
            "preference_model": {**fit.config.to_dict(), "best_epoch": fit.best_epoch},
            "fit": {
                "wall_time_s": round(fit.wall_time_s, 2),
                "device": str(device),
                "test_metrics": metrics,
                "history": fit.history,
                "pretrained": {name: part.history for name, part in fit.pretrained.items()},
            },
            "catalogue": {
                "items": len(catalogue),
                "rule": f"items with >= {world_config.min_item_events} training events",
                "item_ids": item_ids.tolist(),
            },
            "shopper_ids": split.user_ids.tolist(),
            "prices": "log-normal per first category, seeded (the data has no prices)"
            if prices is None
            else "from the item attributes",
            "world_config": asdict(world_config),
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
    """A small World whose truth is drawn, not fitted: an MF model with Gaussian
    shopper and item vectors, one category per item. Fast, and its best slates are
    known exactly.

    ``personalization`` scales the shopper vectors: at 0 every shopper ranks items
    by the item bias alone, so one slate is best for everyone.
    """
    generator = torch.Generator().manual_seed(config.seed)
    model = build_model("bpr", num_shoppers, num_items, {"dim": dim})
    with torch.no_grad():
        model.user_embedding.copy_(personalization * torch.randn(num_shoppers, dim, generator=generator))
        model.item_embedding.copy_(torch.randn(num_items, dim, generator=generator))
        model.item_bias.copy_(0.5 * torch.randn(num_items, generator=generator))
    category = torch.randint(num_categories, (num_items,), generator=generator)
    return _assemble(
        model=model,
        model_name="bpr",
        catalogue=torch.arange(num_items),
        item_category=torch.nn.functional.one_hot(category, num_categories).float(),
        item_popularity=torch.randint(1, 100, (num_items,), generator=generator).float(),
        category_names=tuple(f"category_{c}" for c in range(num_categories)),
        config=config,
        card={
            "name": "synthetic",
            "shape": {"shoppers": num_shoppers, "items": num_items, "dim": dim},
            "personalization": personalization,
        },
    )


def _assemble(
    model: PreferenceModel,
    model_name: str,
    catalogue: torch.Tensor,
    item_category: torch.Tensor,
    item_popularity: torch.Tensor,
    category_names: tuple[str, ...],
    config: WorldConfig,
    card: dict,
    item_price: torch.Tensor | None = None,
) -> World:
    """Add prices (seeded, unless given), the shopper split, the utility
    standardisation and the calibration."""
    # Independent streams from one seed for the split, the prices and the calibration sample.
    split_seed, price_seed, calibration_seed = derived_seeds(config.seed, 3)
    generator = torch.Generator().manual_seed(split_seed)
    num_shoppers = model.num_users
    test_shopper = torch.zeros(num_shoppers, dtype=torch.bool)
    num_test = max(1, round(config.test_fraction * num_shoppers))
    test_shopper[torch.randperm(num_shoppers, generator=generator)[:num_test]] = True
    with torch.no_grad():
        raw = torch.cat(
            [model.score_all(users)[:, catalogue] for users in torch.arange(num_shoppers).split(1024)]
        )
    world = World(
        model=model,
        model_name=model_name,
        catalogue=catalogue.long(),
        item_category=item_category.float().contiguous(),
        item_price=lognormal_prices(item_category, config.median_price, seed=price_seed)
        if item_price is None
        else item_price.float().contiguous(),
        item_popularity=item_popularity.float().contiguous(),
        test_shopper=test_shopper,
        utility_shift=float(raw.mean()),
        utility_scale=float(raw.std()),
        calibration=Calibration(),  # replaced below: calibration needs the utilities
        category_names=category_names,
        card=card,
    )
    calibration = calibrate(world, config.target(), beta=config.beta, seed=calibration_seed)
    return replace(world, calibration=calibration)


def _catalogue_prices(item_ids: np.ndarray, items: pd.DataFrame | None, source: str) -> torch.Tensor | None:
    """(M,) prices of the catalogue items from ``items``; ``None`` if it has no prices."""
    if items is None or "price" not in items:
        return None
    price_of = dict(zip(items["item"].to_numpy(), items["price"].to_numpy(), strict=True))
    missing = [int(item) for item in item_ids if int(item) not in price_of]
    if missing:
        raise DataError(
            f"{source}: {len(missing)} catalogue item(s) have no price in the item attributes, "
            f"e.g. item {missing[0]}"
        )
    return torch.tensor([price_of[int(item)] for item in item_ids], dtype=torch.float32)


# ------------------------------------------------------------------ default World
def cache_dir() -> Path:
    """Where fitted Worlds are cached: ``$SHOPGYM_HOME`` or ``~/.cache/shopgym``."""
    return Path(os.environ.get("SHOPGYM_HOME", Path.home() / ".cache" / "shopgym"))


def default_world(
    fit_config: FitConfig = FitConfig(),
    world_config: WorldConfig = WorldConfig(),
    device: str | torch.device = "auto",
    progress: bool = True,
) -> World:
    """The World fitted on the embedded MovieLens-small data: loaded from the cache
    when present (no refit), else fitted and cached."""
    interactions = load_ratings()
    device = resolve_device(device)
    key = json.dumps(
        {
            "builder": BUILDER_VERSION,
            "data": interactions.sha256,
            "fit": fit_config.to_dict(),
            "world": asdict(world_config),
            # Kernels differ between devices, so a World fitted on CUDA has another hash.
            "device": device.type,
        },
        sort_keys=True,
    )
    name = f"movielens-small-{fit_config.model}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    folder = cache_dir() / "worlds" / name
    if (folder / "card.json").is_file():
        return _load_cached(folder)
    world = build_world(interactions, load_movies(), fit_config, world_config, device, progress)
    save_atomically(world, folder)
    return _load_cached(folder)


def save_atomically(world: World, folder: Path) -> None:
    """Save into a temporary folder and rename it, so a crash or a concurrent build
    never leaves a half-written World; if ``folder`` appeared meanwhile, keep it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".building-"))
    world.save(staging)
    staging.chmod(0o755)  # mkdtemp makes it private; a shared cache must stay readable
    try:
        staging.rename(folder)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)


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
