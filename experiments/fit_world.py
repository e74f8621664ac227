"""``shopgym fit``: fit a preference model on interaction data and save it as a World."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pandas as pd
import tyro

from shopgym.simulator.build import WorldConfig, build_world
from shopgym.simulator.calibration import simulate_position_ctr
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.interactions import load_item_attributes, load_movies, load_ratings, read_table
from shopgym.simulator.models import FitConfig
from shopgym.simulator.world import World


@dataclass(frozen=True)
class FitWorldConfig:
    """Fit a preference model on interaction data and save it as a World folder.

    The folder (tensors.pt + card.json) is what `shopgym run --world DIR` and the
    environments load. With the defaults and `--device cpu` this rebuilds the shipped
    default World (data/worlds/README.md)."""

    out: Path
    """World folder to write. An interrupted fit resumes from its checkpoint there."""
    data: str = "movielens"
    """"movielens" (the embedded MovieLens-small) or a path: u.data, ratings.dat,
    ratings.csv, or any CSV/TSV/Parquet file with a header (see --columns)."""
    columns: str | None = None
    """Column mapping for a generic file, e.g. "user=customer,item=sku,value=qty,time=ts"."""
    items: str | None = None
    """Item attributes: a MovieLens movies.csv, or a CSV/TSV/Parquet table with item,
    categories ("|"-separated) and price columns (see --item-columns); automatic for
    the embedded data. Without prices, prices are drawn log-normally per category."""
    item_columns: str | None = None
    """Column mapping for --items, e.g. "item=sku,categories=cat,price=unit_price"."""
    fit: Annotated[FitConfig, tyro.conf.OmitArgPrefixes] = FitConfig()
    world: WorldConfig = WorldConfig()
    device: str = "auto"
    """Torch device: auto (cuda if available), cpu or cuda."""
    progress: bool = True
    """Show progress bars."""


def fit_world(config: FitWorldConfig) -> World:
    """Fit, evaluate, calibrate and save; print the fit metrics and the calibration."""
    fit_config = config.fit.resolved()
    device = resolve_device(config.device)
    if config.out.exists() and not config.out.is_dir():
        raise ConfigError(f"--out: {config.out} exists and is not a directory")
    if (config.out / "card.json").is_file():
        raise ConfigError(f"--out: {config.out} already holds a World; choose another folder")
    if config.data == "movielens":
        interactions = load_ratings()
    else:
        mapping = _column_mapping(config.columns, "--columns")
        interactions = read_table(config.data, mapping) if mapping else load_ratings(config.data)
    if config.items:
        item_mapping = _column_mapping(config.item_columns, "--item-columns")
        items = load_item_attributes(config.items, item_mapping)
    else:
        items = load_movies() if config.data == "movielens" else None
    config.out.mkdir(parents=True, exist_ok=True)
    checkpoint = config.out / "fit-checkpoint.pt"
    world = build_world(
        interactions, items, fit_config, config.world, device, config.progress, checkpoint=checkpoint
    )
    world.save(config.out)  # card.json last: a folder without it is not a World
    for path in config.out.glob("fit-checkpoint*.pt"):  # the fit is done; a new fit starts afresh
        path.unlink()
    print(describe_world(world))
    print(f"\nwrote {config.out} (World hash {world.hash})")
    return world


def describe_world(world: World) -> str:
    """Fit metrics next to popularity, and the calibrated click rates against their target."""
    lines = [
        f"World {world.card.get('name')}: {world.model_name} model, {world.num_items} items, "
        f"{world.num_shoppers} shoppers"
    ]
    metrics = world.card.get("fit", {}).get("test_metrics")
    if metrics:
        lines += ["", "test metrics (leave-last-out; full ranking unless 'sampled'):"]
        lines.append(pd.DataFrame(metrics).T.to_string(float_format="{:.4f}".format))
    learned = world.card.get("learned_features")
    if learned:
        lines += [
            "",
            f"learned item features ({learned['model']}, {learned['dim']} per item, "
            "fitted on the same split), test metrics:",
        ]
        lines.append(pd.DataFrame(learned["test_metrics"]).T.to_string(float_format="{:.4f}".format))
    target = world.calibration.target
    if target.get("ctr"):
        # A million one-slate sessions: about ±3% (95%) at OBD's 0.4% per impression.
        table = simulate_position_ctr(world, len(target["ctr"]), slates=1_000_000)
        table.insert(0, "target", target["ctr"])
        if target.get("low"):
            table.insert(1, "target_low", target["low"])
            table.insert(2, "target_high", target["high"])
        table.index = pd.RangeIndex(1, len(table) + 1, name="position")
        lines += [
            "",
            f"click-through per position under random slates (beta {world.calibration.beta}),",
            f"target: {target['source']}; simulated with 95% Wilson intervals:",
        ]
        lines.append(table.drop(columns=["impressions", "clicks"]).to_string(float_format="{:.5f}".format))
    return "\n".join(lines)


def _column_mapping(text: str | None, flag: str) -> dict[str, str] | None:
    if not text:
        return None
    mapping = {}
    for part in text.split(","):
        ours, sep, theirs = part.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise ConfigError(f"{flag}: expected ours=theirs pairs, got {part!r}")
        mapping[ours.strip()] = theirs.strip()
    return mapping
