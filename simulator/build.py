"""Building Worlds: fitted on interaction logs, or synthetic with a known truth.

:func:`build_world` fits a preference model (MF, BPR-MF, GMF, MLP or NeuMF) on a
leave-last-out split, evaluates it next to a popularity ranker, keeps the items with
enough training events as the catalogue, adds categories, prices and popularity,
splits shoppers into train and test, standardises utilities and calibrates the
choice model to a click target. It also fits a second model of another family on
the same split, whose item vectors are the World's ``learned_item_features`` (what a
shop's own recommender would know about its items), and counts how often item
categories go together among the training shoppers (``category_lift``, for the
complementary-categories mechanism) and how well each item is rated
(``item_quality``, for the post-click experience).

:func:`default_world` loads the default World shipped with the package
(``shopgym/data/worlds/movielens-neumf``, fitted once on CPU, so that
``shopgym/Shopper-v0`` is the same environment on every machine and device); other
configurations of the embedded MovieLens data are fitted on first use and cached.
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

from shopgym.data import data_path
from shopgym.simulator.calibration import ClickTarget, calibrate
from shopgym.simulator.determinism import derived_seeds
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError, DataError
from shopgym.simulator.interactions import (
    Interactions,
    embedded_ratings_path,
    file_sha256,
    load_movies,
    load_ratings,
)
from shopgym.simulator.items import category_matrix, lognormal_prices
from shopgym.simulator.models import MODEL_CLASSES, FitConfig, PreferenceModel, build_model, fit_model
from shopgym.simulator.parts.complements import category_lift
from shopgym.simulator.ranking import popularity_scorer, ranking_report
from shopgym.simulator.splits import Split, leave_last_out
from shopgym.simulator.world import Calibration, World

# Part of the cache key of the default World: bump it whenever build_world gives
# different tensors for the same data and configs, so stale caches are not reused.
# 6: learned item features (a second model fitted on the same split).
# 7: category_lift (co-occurrence of categories among training shoppers).
# 8: item_quality (shrunk mean training rating per item, standardised).
BUILDER_VERSION = 8

# Pseudo-ratings at the overall mean added to every item's ratings for its quality,
# so an item rated once or twice is not called excellent or awful on that evidence.
QUALITY_PRIOR_RATINGS = 10

# The World shipped in the package: what default_world() gives for the default configs.
SHIPPED_DEFAULT_WORLD = ("worlds", "movielens-neumf")

# Model families: an agent's item features from the World's own family would let an
# agent of that architecture recover the truth, so learned features come from the other.
_NCF_MODELS = ("gmf", "mlp", "neumf")


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
    learned_features_model: str | None = "auto"
    """Model fitted, besides the World's, on the same training split; its item vectors
    are the World's learned_item_features (item features a shop's own recommender
    would know). "auto": bpr for an NCF World (gmf, mlp, neumf), gmf for an MF World
    (mf, bpr); or a model name of another architecture than the World's; None: no
    learned features. Fitted with that model's defaults and a seed derived from seed."""
    learned_features_epochs: int | None = None
    """Epoch budget of the learned-features fit (None: the model's default; early
    stopping on validation NDCG@10 applies either way)."""

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
        if self.learned_features_model not in (None, "auto", *MODEL_CLASSES):
            raise ConfigError(
                "--learned-features-model must be auto, None or one of "
                f"{sorted(MODEL_CLASSES)}, got {self.learned_features_model!r}"
            )
        if self.learned_features_epochs is not None and self.learned_features_epochs < 1:
            raise ConfigError(f"--learned-features-epochs must be >= 1, got {self.learned_features_epochs}")

    def learned_model(self, world_model: str) -> str | None:
        """The learned-features model for a World of ``world_model`` (``None``: none)."""
        name = self.learned_features_model
        if name == "auto":
            return "bpr" if world_model in _NCF_MODELS else "gmf"
        if name is not None and MODEL_CLASSES[name] is MODEL_CLASSES[world_model]:
            raise ConfigError(
                f"--learned-features-model {name} has the World's own architecture ({world_model}): "
                "its item vectors would be the truth's kind; choose another family, or auto"
            )
        return name

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
    learned_name = world_config.learned_model(fit_config.resolved().model)  # bad options fail before the fit
    split = leave_last_out(interactions)
    fit = fit_model(split, fit_config, device=device, progress=progress, checkpoint=checkpoint)
    learned_features, learned_card = _fit_learned_features(
        split, learned_name, world_config, device, progress, checkpoint
    )
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
        learned_item_features=None if learned_features is None else learned_features[catalogue],
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
            "learned_features": learned_card,
            "world_config": asdict(world_config),
            "builder_version": BUILDER_VERSION,
            # Fits are bit-for-bit reproducible only on the same build, CPU kind and threads.
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "machine": platform.machine(),
                "torch_threads": torch.get_num_threads(),
            },
        },
    )
    world = replace(
        world,
        category_lift=_category_lift(split, catalogue, categories),
        item_quality=item_quality(split, catalogue),
    )
    world.card["build_wall_time_s"] = round(time.perf_counter() - started, 2)
    return world


def _category_lift(split: Split, catalogue: np.ndarray, categories: torch.Tensor) -> torch.Tensor | None:
    """(C, C) category lift over the split's training shoppers (their training events
    on catalogue items; see ``parts.complements.category_lift``), ``None`` without categories."""
    if categories.shape[1] == 0:
        return None
    position = np.full(split.num_items, -1)
    position[catalogue] = np.arange(len(catalogue))
    events = split.train[position[split.train[:, 1]] >= 0]
    item_category = categories.float()[torch.as_tensor(position[events[:, 1]])]
    return category_lift(torch.as_tensor(events[:, 0]), item_category, split.num_users).contiguous()


def item_quality(split: Split, catalogue: np.ndarray) -> torch.Tensor | None:
    """(M,) quality of each catalogue item: its mean training rating, shrunk toward the
    overall mean by ``QUALITY_PRIOR_RATINGS`` pseudo-ratings, standardised over the
    catalogue (mean 0, spread 1, as utilities are). ``None`` when the data has no
    ratings (implicit feedback: every value the same)."""
    values = split.train_values
    if values is None or np.ptp(values) == 0:
        return None
    sums = np.bincount(split.train[:, 1], weights=values, minlength=split.num_items)[catalogue]
    counts = np.bincount(split.train[:, 1], minlength=split.num_items)[catalogue]
    prior = QUALITY_PRIOR_RATINGS
    shrunk = (sums + prior * values.mean()) / (counts + prior)
    spread = shrunk.std()
    if spread == 0:
        return None
    return torch.as_tensor((shrunk - shrunk.mean()) / spread, dtype=torch.float32)


def with_data_statistics(world: World, interactions: Interactions) -> World:
    """``world`` with the statistics of the ``interactions`` it was fitted on that
    ``build_world`` adds after the fit (``category_lift`` and ``item_quality``), for
    Worlds built before they existed. The result has another hash.

    Raises DataError when the interactions are not the World's (data hash, shoppers or
    catalogue differ from its card).
    """
    card = world.card
    if card.get("data", {}).get("sha256") != interactions.sha256:
        raise DataError(f"{interactions.source}: not the data this World was fitted on (data hash differs)")
    split = leave_last_out(interactions)
    item_ids = card.get("catalogue", {}).get("item_ids")
    if card.get("shopper_ids") != split.user_ids.tolist() or item_ids is None:
        raise DataError(f"{interactions.source}: the World's card does not describe this data's split")
    catalogue = np.searchsorted(split.item_ids, np.asarray(item_ids)).clip(max=split.num_items - 1)
    if len(catalogue) != world.num_items or not np.array_equal(split.item_ids[catalogue], item_ids):
        raise DataError(f"{interactions.source}: the World's catalogue is not in this data")
    lift = _category_lift(split, catalogue, world.item_category.cpu())
    quality = item_quality(split, catalogue)
    return replace(
        world,
        category_lift=None if lift is None else lift.to(world.device),
        item_quality=None if quality is None else quality.to(world.device),
    )


def _fit_learned_features(
    split: Split,
    model_name: str | None,
    config: WorldConfig,
    device: torch.device,
    progress: bool,
    checkpoint: str | Path | None,
    batch_size: int | None = None,
) -> tuple[torch.Tensor | None, dict | None]:
    """Fit ``model_name`` on ``split`` for the learned item features.

    Returns the (M', r) float32 CPU item representation of all the split's items
    (the caller keeps the catalogue's rows) and the card entry, or ``(None, None)``.
    """
    if model_name is None:
        return None, None
    seed = _world_seeds(config.seed)[3]
    fit_config = FitConfig(
        model=model_name, epochs=config.learned_features_epochs, batch_size=batch_size, seed=seed
    )
    # Its own checkpoint next to the World's, so an interrupted build resumes both fits.
    own_checkpoint = None if checkpoint is None else Path(checkpoint).with_suffix(".learned.pt")
    fit = fit_model(split, fit_config, device=device, progress=progress, checkpoint=own_checkpoint)
    with torch.no_grad():
        features = fit.model.item_representation().detach().float().cpu().contiguous()
    card = {
        "model": fit.config.model,
        "setting": config.learned_features_model,
        "dim": int(features.shape[1]),
        "fit_config": {**fit.config.to_dict(), "best_epoch": fit.best_epoch},
        "wall_time_s": round(fit.wall_time_s, 2),
        "test_metrics": {fit.config.model: ranking_report(fit.model.score_all, split, device=device)},
        "history": fit.history,
        "pretrained": {name: part.history for name, part in fit.pretrained.items()},
    }
    return features, card


def _world_seeds(seed: int) -> list[int]:
    """Independent streams from the World's seed: split, prices, calibration sample,
    learned-features fit (a prefix of SeedSequence children stays the same when more
    are drawn, so adding a stream left the first three unchanged)."""
    return derived_seeds(seed, 4)


def synthetic_world(
    num_shoppers: int = 200,
    num_items: int = 40,
    dim: int = 4,
    num_categories: int = 4,
    personalization: float = 1.0,
    config: WorldConfig = WorldConfig(),
    learned_features: bool = False,
    events_per_shopper: int = 20,
) -> World:
    """A small World whose truth is drawn, not fitted: an MF model with Gaussian
    shopper and item vectors, one category per item. Fast, and its best slates are
    known exactly.

    ``personalization`` scales the shopper vectors: at 0 every shopper ranks items
    by the item bias alone, so one slate is best for everyone.

    ``learned_features``: also fit ``config.learned_model("bpr")`` (GMF with "auto")
    on ``events_per_shopper`` distinct items per shopper drawn from the truth (with
    probability ∝ exp(standardised utility), in random order), for
    ``learned_item_features``; off by default (a few seconds, and the default
    synthetic World stays the one the tests and SyntheticShopper-v0 know).
    """
    generator = torch.Generator().manual_seed(config.seed)
    model = build_model("bpr", num_shoppers, num_items, {"dim": dim})
    with torch.no_grad():
        model.user_embedding.copy_(personalization * torch.randn(num_shoppers, dim, generator=generator))
        model.item_embedding.copy_(torch.randn(num_items, dim, generator=generator))
        model.item_bias.copy_(0.5 * torch.randn(num_items, generator=generator))
    category = torch.randint(num_categories, (num_items,), generator=generator)
    world = _assemble(
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
    if not learned_features:
        return world
    if not 3 <= events_per_shopper <= num_items:
        raise ConfigError(f"events_per_shopper must be in [3, {num_items}], got {events_per_shopper}")
    split = leave_last_out(_sampled_interactions(world, events_per_shopper, _world_seeds(config.seed)[3]))
    features, learned_card = _fit_learned_features(
        split, config.learned_model("bpr"), config, torch.device("cpu"), False, None, batch_size=256
    )
    if features is None:
        return world
    # The split indexes only the items drawn at least once; one never drawn keeps zeros
    # (what a shop's recommender knows of an item nobody touched).
    full = torch.zeros(world.model.num_items, features.shape[1])
    full[torch.as_tensor(split.item_ids)] = features
    full = full[world.catalogue].contiguous()
    learned_card["data"] = f"{events_per_shopper} items per shopper drawn from the truth"
    return replace(world, learned_item_features=full, card={**world.card, "learned_features": learned_card})


def _sampled_interactions(world: World, events_per_shopper: int, seed: int) -> Interactions:
    """``events_per_shopper`` distinct World items per shopper, drawn without replacement
    with probability ∝ exp(utility) (Gumbel top-k), each shopper's in random order."""
    generator = torch.Generator().manual_seed(seed)
    users = torch.arange(world.num_shoppers)
    utilities = world.utilities(users, torch.arange(world.num_items).expand(len(users), -1))
    gumbel = -torch.log(-torch.log(torch.rand(utilities.shape, generator=generator).clamp_min(1e-12)))
    items = (utilities + gumbel).topk(events_per_shopper, dim=1).indices
    order = torch.rand(items.shape, generator=generator).argsort(dim=1)
    frame = pd.DataFrame(
        {
            "user": users.repeat_interleave(events_per_shopper).numpy(),
            "item": world.catalogue[items].flatten().numpy(),
            "value": 1.0,
            "time": order.flatten().numpy(),
        }
    )
    return Interactions(frame.astype({"user": "int64", "item": "int64", "time": "int64"}), "synthetic", "")


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
    learned_item_features: torch.Tensor | None = None,
) -> World:
    """Add prices (seeded, unless given), the shopper split, the utility
    standardisation and the calibration."""
    split_seed, price_seed, calibration_seed, _ = _world_seeds(config.seed)
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
        learned_item_features=learned_item_features,
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
    """The World fitted on the embedded MovieLens-small data, on ``device``.

    With the default configs: the World shipped in the package (:func:`shipped_world_path`),
    loaded, never refitted, whatever the device: a fit differs between CPU kinds and
    devices, so shipping one World is what makes ``shopgym/Shopper-v0`` the same
    environment everywhere. Other configs: loaded from the cache when present (no
    refit), else fitted and cached.
    """
    device = resolve_device(device)
    if is_default_config(fit_config, world_config):
        return _shipped_default(str(device))
    interactions = load_ratings()
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


def is_default_config(fit_config: FitConfig, world_config: WorldConfig) -> bool:
    """Whether these configs are the shipped default World's (``None`` fields count as
    the model defaults they resolve to)."""
    return fit_config.resolved() == FitConfig().resolved() and world_config == WorldConfig()


def shipped_world_path() -> Path:
    """Folder of the shipped default World (``tensors.pt`` and ``card.json``)."""
    return data_path(*SHIPPED_DEFAULT_WORLD)


@functools.lru_cache(maxsize=4)
def _shipped_default(device: str) -> World:
    folder = shipped_world_path()
    if not (folder / "card.json").is_file():
        raise DataError(
            f"{folder}: the shipped default World is missing from this installation; "
            "reinstall shopgym, or rebuild it as data/worlds/README.md says"
        )
    world = _load_cached(folder)
    # A World fitted on other data would silently be another environment than its card says.
    if world.card.get("data", {}).get("sha256") != file_sha256(embedded_ratings_path()):
        raise DataError(
            f"{folder}: the shipped default World was fitted on other data than the embedded "
            "MovieLens ratings; rebuild it (see data/worlds/README.md)"
        )
    return world.to(device)


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
