"""Fit time and test ranking metrics of every preference model, over seeds.

Each model is fitted on the leave-last-out split of the embedded MovieLens data
(``split.train``, early stopping on ``split.valid``) with its default
hyperparameters, once per seed, and scored on ``split.test`` with
:func:`~shopgym.simulator.ranking.ranking_report`. Popularity and, when the optional
``implicit`` package is installed (``pip install 'shopgym[bench]'``), implicit's BPR
and ALS fitted on the same training pairs (as a binary user-item matrix, so a repeated
pair counts once) are scored alongside as references.

The table shows, per model, the mean over seeds with a 95% bootstrap interval over
seeds, and NDCG@10 minus popularity's with a 95% paired bootstrap interval over the
test users (the seed interval says how much a refit moves the result; the user
interval says how much a different draw of 671 test users would).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from shopgym.experiments.stats import bootstrap_ci
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.interactions import load_ratings
from shopgym.simulator.models import MODEL_CLASSES, FitConfig, fit_model
from shopgym.simulator.ranking import (
    Scorer,
    full_ranking_metrics,
    full_ranking_ranks,
    ndcg_gains,
    popularity_scorer,
    ranking_report,
)
from shopgym.simulator.splits import Split, leave_last_out

METRICS = ("hr@10", "ndcg@10", "recall@20", "sampled_hr@10", "sampled_ndcg@10")

# implicit's models, chosen on validation NDCG@10 like ours (docs/benchmarks.md): BPR
# 0.033 (0.032 with 64 factors and its default 100 epochs); ALS 0.046.
LIBRARY_DEFAULTS: dict[str, dict] = {
    "implicit-bpr": {"factors": 128, "learning_rate": 0.01, "regularization": 0.01, "iterations": 60},
    "implicit-als": {"factors": 64, "regularization": 0.01, "alpha": 1.0, "iterations": 15},
}


@dataclass(frozen=True)
class FitBenchmarkConfig:
    """Fit each preference model on the embedded MovieLens data over several seeds and
    print fit wall time, epochs and test ranking metrics, next to popularity and to
    implicit's BPR and ALS on the same split."""

    models: tuple[str, ...] = ("mf", "bpr", "gmf", "mlp", "neumf")
    """Preference models to fit, with their default hyperparameters (see `shopgym fit --help`)."""
    seeds: int = 3
    """Fits per model (seeds 0 .. seeds-1); the table shows mean [95% CI] over them."""
    device: str = "auto"
    """Torch device: auto (cuda if available), cpu or cuda."""
    library: bool = True
    """Also fit implicit's BPR and ALS (CPU, 2 threads) if implicit is installed
    (`pip install 'shopgym[bench]'`)."""

    def __post_init__(self) -> None:
        unknown = [name for name in self.models if name not in MODEL_CLASSES]
        if unknown or not self.models:
            raise ConfigError(f"--models must be names from {sorted(MODEL_CLASSES)}, got {list(self.models)}")
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {self.seeds}")


def run_fit_benchmark(config: FitBenchmarkConfig, split: Split | None = None) -> pd.DataFrame:
    """Fit, score, print and return one row per model (popularity and implicit included).

    Args:
        split: the data to fit and score on; ``None`` is the leave-last-out split of
            the embedded MovieLens-small.

    Returns:
        Columns ``model, seeds, fit_s, epochs, best_epoch, valid_ndcg@10``, each metric
        of ``METRICS`` with ``_low``/``_high`` bounds (95% CI over seeds), and
        ``ndcg@10_vs_popularity`` with its bounds (95% paired CI over test users).
    """
    device = resolve_device(config.device)
    split = leave_last_out(load_ratings()) if split is None else split
    popularity = popularity_scorer(split.train, split.num_items, device)
    runs = [
        {
            **_score("popularity", 0, popularity, split, device),
            "valid": _valid_ndcg(popularity, split, device),
        }
    ]
    for name in config.models:
        for seed in range(config.seeds):
            result = fit_model(split, FitConfig(model=name, seed=seed), device, progress=False)
            runs.append(
                {
                    **_score(name, seed, result.model.score_all, split, device),
                    "fit_s": result.wall_time_s,
                    "epochs": len(result.history),
                    "best_epoch": result.best_epoch,
                    "valid": result.history[result.best_epoch - 1]["ndcg@10"],  # the model-selection score
                }
            )
    if config.library and _implicit_available():
        for name in LIBRARY_DEFAULTS:
            for seed in range(config.seeds):
                scorer, seconds = fit_implicit(name, split, seed)
                runs.append(
                    {
                        **_score(name, seed, scorer, split, torch.device("cpu")),
                        "fit_s": seconds,
                        "epochs": LIBRARY_DEFAULTS[name]["iterations"],
                        "valid": _valid_ndcg(scorer, split),
                    }
                )
    elif config.library:
        print("implicit is not installed (pip install 'shopgym[bench]'): no library reference\n")
    table = _summarize(runs)
    print(_describe(table, split, device))
    return table


def fit_implicit(name: str, split: Split, seed: int) -> tuple[Scorer, float]:
    """Fit implicit's ``implicit-bpr`` or ``implicit-als`` (``LIBRARY_DEFAULTS``) on
    ``split.train`` as a binary (U, M) matrix; returns a scorer and the fit's seconds."""
    # implicit and its dependencies (scipy, threadpoolctl) are the optional `bench` extra.
    import implicit.cpu.als
    import implicit.cpu.bpr
    import scipy.sparse
    import threadpoolctl

    user_items = scipy.sparse.csr_matrix(
        (np.ones(len(split.train), dtype=np.float32), (split.train[:, 0], split.train[:, 1])),
        shape=(split.num_users, split.num_items),
    )
    user_items.data[:] = 1.0  # a repeated (user, item) pair is summed above; keep it binary
    classes = {
        "implicit-bpr": implicit.cpu.bpr.BayesianPersonalizedRanking,
        "implicit-als": implicit.cpu.als.AlternatingLeastSquares,
    }
    started = time.perf_counter()
    # implicit runs its own 2 threads and warns if BLAS would add a thread pool of its
    # own inside them; one BLAS thread is what it asks for.
    with threadpoolctl.threadpool_limits(1, "blas"):
        model = classes[name](**LIBRARY_DEFAULTS[name], random_state=seed, num_threads=2)
        model.fit(user_items, show_progress=False)
    seconds = time.perf_counter() - started
    # BPR's last item factor is the item bias and its users' last factor is 1, so the
    # product includes the bias; ALS has no bias.
    user_factors = torch.as_tensor(model.user_factors)
    item_factors = torch.as_tensor(model.item_factors)
    return (lambda users: user_factors[users.cpu()] @ item_factors.T), seconds


def _implicit_available() -> bool:
    try:
        import implicit  # noqa: F401
    except ImportError:
        return False
    return True


def _score(name: str, seed: int, scorer: Scorer, split: Split, device: torch.device) -> dict:
    """Test metrics of one fitted model, and each test user's full-ranking NDCG@10."""
    with torch.no_grad():
        report = ranking_report(scorer, split, device)
        ranks = full_ranking_ranks(
            scorer, split.test, split.consumed_before_test(), split.num_items, device=device
        )
    gains = ndcg_gains(ranks, 10).cpu().numpy()
    return {"model": name, "seed": seed, **{m: report[m] for m in METRICS}, "gains": gains}


def _valid_ndcg(scorer: Scorer, split: Split, device: torch.device | str = "cpu") -> float:
    return full_ranking_metrics(scorer, split.valid, split.train, split.num_items, device=device)["ndcg@10"]


def _summarize(runs: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(runs)
    popularity = frame.loc[frame["model"] == "popularity", "gains"].iloc[0]
    rows = []
    for name, group in frame.groupby("model", sort=False):
        row = {"model": name, "seeds": len(group)}
        for column in ("fit_s", "epochs", "best_epoch"):
            row[column] = group[column].mean()  # NaN where it does not apply (popularity)
        row["valid_ndcg@10"] = group["valid"].mean()
        for metric in METRICS:
            low, high = bootstrap_ci(group[metric].to_numpy())
            row.update({metric: group[metric].mean(), f"{metric}_low": low, f"{metric}_high": high})
        # Paired over test users: each user's NDCG@10 (mean over seeds) minus popularity's.
        difference = np.mean(np.stack(group["gains"].to_list()), axis=0) - popularity
        low, high = bootstrap_ci(difference)
        row.update(
            {
                "ndcg@10_vs_popularity": difference.mean(),
                "ndcg@10_vs_popularity_low": low,
                "ndcg@10_vs_popularity_high": high,
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _describe(table: pd.DataFrame, split: Split, device: torch.device) -> str:
    summary = split.describe()
    lines = [
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{summary['users']} users, {summary['items']} items, {summary['train_events']} train events, "
        f"{summary['test_events']} test events (leave-last-out by time)",
        "test metrics: mean [95% CI over seeds]; full ranking unless 'sampled'; "
        "vs pop: NDCG@10 minus popularity's [95% CI over test users]",
        "",
    ]
    headers = ["model", "seeds", "fit s", "epochs", "best", "valid NDCG", "HR@10", "NDCG@10"]
    headers += ["Recall@20", "sampled HR@10", "sampled NDCG@10", "NDCG@10 vs pop"]
    rows = []
    for row in table.to_dict("records"):
        cells = [row["model"], str(row["seeds"])]
        cells += [
            _number(row["fit_s"], ".1f"),
            _number(row["epochs"], ".1f"),
            _number(row["best_epoch"], ".1f"),
        ]
        cells.append(_number(row["valid_ndcg@10"], ".4f"))
        cells += [_interval(row, metric) for metric in METRICS]
        cells.append(_interval(row, "ndcg@10_vs_popularity", signed=True))
        rows.append(cells)
    widths = [max(len(cells[i]) for cells in [headers, *rows]) for i in range(len(headers))]
    for cells in [headers, *rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)))
    return "\n".join(lines)


def _number(value: float, spec: str) -> str:
    return "-" if pd.isna(value) else format(value, spec)


def _interval(row: dict, metric: str, signed: bool = False) -> str:
    spec = "+.4f" if signed else ".4f"
    return f"{row[metric]:{spec}} [{row[f'{metric}_low']:{spec}}, {row[f'{metric}_high']:{spec}}]"
