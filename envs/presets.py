"""The registered shopper presets and their parameters.

Every preset is :class:`~shopgym.envs.shopper.ShopperEnv` (and its vector twin) with
the options below (fields of :class:`shopgym.simulator.config.ShopperConfig`); an
option given to ``gymnasium.make`` overrides the preset's. The presets with
dynamics carry choice constants (``no_click_utility``, ``position_logits``)
calibrated through the simulator itself with their dynamics on
(:func:`shopgym.simulator.calibration.calibrate_in_simulator`), so that uniformly
random slates click at the World's target rates; ``calibrated()`` recomputes them.

``shopgym/Shopper-v1`` (``DYNAMICS_V1``; the rest as ``ShopperConfig``'s defaults):

| parameter | value | what it does |
|---|---|---|
| item_features | learned | BPR-MF item vectors fitted on the same data (not the World's NeuMF) |
| drift_rate, drift_weight | 0.3, 1.5 | each click pulls interest 30% toward the item's vector |
| boredom_weight, boredom_decay | 1.5, 0.9 | repeated categories lose utility; 10% fades per slate |
| quality_weight | 1.0 | a click's experience is the item's quality (mean rating), not its appeal |
| patience | 6.0 | a session's time budget |
| click_cost, utility_refill | 1.5, 3.0 | clicks spend time, items of good quality give it back |
| leave_after_unsatisfying | 4 | four slates in a row without a satisfying click and the shopper leaves |
| money | 5.0 | a session's money, in median prices; purchases spend it |
| price_sensitivity_spread | 0.5 | log-normal spread of price sensitivity over shoppers |

``shopgym/ShopperLongTerm-v0`` (``LONG_TERM_V0``): Shopper-v1's shopper over a
lifetime of ``lifetime_days`` = 30 days, one session a day when they visit;
after each session the shopper comes back with probability
``sigmoid(0 + 1 * satisfaction)`` after ``1 + Geometric`` days (mean 3 at
satisfaction 0), and ``max_steps`` = 300 slates per lifetime.

``shopgym/ShopperColdStart-v0`` (``COLD_START_V0``): Shopper-v1's shopper, but every
shopper is new (drawn from a Gaussian mixture fitted to the World's user side, no
history), and 20% of the catalogue are new items that arrive during the first 20
steps of an episode with content features only.
"""

from __future__ import annotations

DYNAMICS_V1: dict = {
    "item_features": "learned",
    "drift_rate": 0.3,
    "drift_weight": 1.5,
    "boredom_weight": 1.5,
    "boredom_decay": 0.9,
    "quality_weight": 1.0,
    "patience": 6.0,
    "click_cost": 1.5,
    "utility_refill": 3.0,
    "leave_after_unsatisfying": 4,
    "money": 5.0,
    "price_sensitivity_spread": 0.5,
}
LONG_TERM_V0: dict = {**DYNAMICS_V1, "lifetime_days": 30, "max_steps": 300}
COLD_START_V0: dict = {
    **DYNAMICS_V1,
    "population": "new",
    "new_item_fraction": 0.2,
    "new_item_arrival_steps": 20,
}

# Choice constants calibrated through the simulator with each preset's dynamics on
# (calibrate_in_simulator with its defaults), on the shipped default World
# a6670f12db65b7c9, each after a burn-in of max_steps slates, on 2026-12-01 (with the
# item quality and the retuned budget). `python -m shopgym.envs.presets` recomputes them.
CALIBRATED: dict[str, dict] = {
    "v1": {
        "no_click_utility": 2.179214119721242,
        "position_logits": (
            0.0,
            -0.24284724977659788,
            -0.49017597786843403,
            -0.691861469952761,
            -0.9247486953351367,
        ),
    },
    "long_term": {
        "no_click_utility": 2.1961077601008725,
        "position_logits": (
            0.0,
            -0.2405561456320089,
            -0.48932168552559085,
            -0.7176518225459421,
            -0.9428574637415412,
        ),
    },
    "cold_start": {
        "no_click_utility": 2.158963448668101,
        "position_logits": (
            0.0,
            -0.22555729972364924,
            -0.44479353584472703,
            -0.6741060180713565,
            -0.911084123135427,
        ),
    },
}


def calibrated(options: dict) -> dict:
    """``options`` with the choice constants that calibrate them on the default World."""
    from shopgym.simulator.build import default_world
    from shopgym.simulator.calibration import calibrate_in_simulator
    from shopgym.simulator.config import ShopperConfig

    config = calibrate_in_simulator(default_world(device="cpu"), ShopperConfig(**options))
    return {**options, "no_click_utility": config.no_click_utility, "position_logits": config.position_logits}


PRESETS: dict[str, dict] = {
    "shopgym/Shopper-v0": {},
    "shopgym/SyntheticShopper-v0": {"world": "synthetic", "num_candidates": 10, "slate_size": 3},
    "shopgym/Shopper-v1": {**DYNAMICS_V1, **CALIBRATED.get("v1", {})},
    "shopgym/ShopperLongTerm-v0": {**LONG_TERM_V0, **CALIBRATED.get("long_term", {})},
    "shopgym/ShopperColdStart-v0": {**COLD_START_V0, **CALIBRATED.get("cold_start", {})},
}

DESCRIPTIONS: dict[str, str] = {
    "shopgym/Shopper-v0": "the static shopper on the embedded MovieLens World (utilities never change)",
    "shopgym/SyntheticShopper-v0": "a small synthetic World with a known truth (200 shoppers, 40 items)",
    "shopgym/Shopper-v1": "drift, boredom, budgets, money, purchases, item quality on; learned features",
    "shopgym/ShopperLongTerm-v0": "Shopper-v1 over 30-day lifetimes; satisfied shoppers come back",
    "shopgym/ShopperColdStart-v0": "Shopper-v1 with new shoppers (no history) and new items",
    "shopgym/InterestEvolution-v0": "RecSim's interest-evolution environment, term by term",
}

if __name__ == "__main__":
    import json

    for key, options in (("v1", DYNAMICS_V1), ("long_term", LONG_TERM_V0), ("cold_start", COLD_START_V0)):
        constants = {k: v for k, v in calibrated(options).items() if k not in options}
        print(f"{key!r}: {json.dumps(constants)},", flush=True)
