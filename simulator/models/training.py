"""Fitting preference models on a leave-last-out split, with early stopping.

One loop serves every model; the objective follows the model name:

- ``mf``: squared error on explicit ratings (biased MF);
- ``bpr``: BPR, each positive against ``negatives`` items drawn uniformly from those
  the user has no training event with (Rendle et al. 2009, who draw one);
- ``gmf``, ``mlp``, ``neumf``: pointwise log loss on each positive and ``negatives``
  items drawn the same way (He et al. 2017); ``neumf`` may start from a GMF and an MLP
  fitted first (``pretrain``), and is then fine-tuned with Adam (He et al. use plain
  SGD for that step).

Every epoch ends with validation NDCG@10 (full ranking); training stops after
``patience`` epochs without improvement and keeps the best epoch's parameters. A
checkpoint written after each epoch (and one per pre-trained part) lets an
interrupted fit resume exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from shopgym.simulator.determinism import derived_seeds, deterministic_algorithms
from shopgym.simulator.errors import ConfigError, DataError
from shopgym.simulator.models.base import PreferenceModel
from shopgym.simulator.models.mf import MatrixFactorization
from shopgym.simulator.models.ncf import GMF, MLP, NeuMF
from shopgym.simulator.ranking import full_ranking_metrics
from shopgym.simulator.splits import Split

ModelName = Literal["mf", "bpr", "gmf", "mlp", "neumf"]
MODEL_CLASSES: dict[str, type[PreferenceModel]] = {
    "mf": MatrixFactorization,
    "bpr": MatrixFactorization,
    "gmf": GMF,
    "mlp": MLP,
    "neumf": NeuMF,
}


@dataclass(frozen=True)
class FitConfig:
    """Which preference model to fit, and how. ``None`` means the model's default
    (see ``MODEL_DEFAULTS``), chosen on the embedded MovieLens data."""

    model: ModelName = "neumf"
    """mf (biased MF, squared error on ratings), bpr (BPR-MF), gmf, mlp or neumf (NCF). The
    default World is NeuMF, so that its family differs from the static MF recommender's."""
    dim: int | None = None
    """Embedding size (MF, GMF, and NeuMF's GMF part)."""
    layers: tuple[int, ...] | None = None
    """MLP widths: the concatenated embeddings, then each ReLU layer (MLP, NeuMF)."""
    epochs: int | None = None
    """Maximum number of passes over the training events."""
    batch_size: int | None = None
    """Training events per gradient step."""
    lr: float | None = None
    """Adam learning rate."""
    weight_decay: float | None = None
    """L2 penalty per example on the embedding rows it uses."""
    negatives: int | None = None
    """Sampled negatives per positive (BPR: pairs per positive; log-loss models: labelled 0)."""
    patience: int | None = None
    """Epochs without validation NDCG@10 improvement before stopping."""
    pretrain: bool | None = None
    """NeuMF only: start from a GMF and an MLP fitted first, with their own default lr,
    weight decay and epochs; the other settings (dim, layers, batch size, negatives,
    patience, seed) are NeuMF's."""
    seed: int = 0
    """Seed of the initial parameters, the shuffles and the sampled negatives."""
    amp: bool = False
    """Mixed precision (bfloat16 autocast) on CUDA; ignored on CPU."""

    def resolved(self) -> FitConfig:
        """This config with every ``None`` replaced by the model's default, validated."""
        if self.model not in MODEL_CLASSES:
            raise ConfigError(f"--model must be one of {sorted(MODEL_CLASSES)}, got {self.model!r}")
        values = {**MODEL_DEFAULTS[self.model], **{k: v for k, v in self._fields().items() if v is not None}}
        config = dataclasses.replace(self, **values)
        for name in ("dim", "epochs", "batch_size", "negatives", "patience"):
            if getattr(config, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(config, name)}")
        if not config.lr > 0 or not config.weight_decay >= 0:
            raise ConfigError(
                f"--lr must be > 0 and --weight-decay >= 0, got {config.lr}, {config.weight_decay}"
            )
        if len(config.layers) < 2 or config.layers[0] % 2 or min(config.layers) < 1:
            raise ConfigError(f"--layers needs an even first width and >= 2 widths, got {config.layers}")
        return config

    def _fields(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        return {
            key: (list(value) if isinstance(value, tuple) else value) for key, value in self._fields().items()
        }


# Chosen on validation NDCG@10 (best epoch) on the embedded MovieLens-small, within the
# fit-time budgets on 2 CPU cores (MF under 30 s, NeuMF with its pretraining under
# 2 min). The figures are validation NDCG@10, mean of seeds 0-2, from `shopgym
# fit-benchmark` (docs/benchmarks.md); popularity scores 0.021 there. The tuning ran
# before negatives excluded the user's own items; it was not redone after.
_SHARED = {"epochs": 60, "batch_size": 2048, "patience": 8, "pretrain": False, "negatives": 4}
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    # 0.023: ranking by predicted rating is no better than popularity.
    "mf": {**_SHARED, "dim": 64, "layers": (64, 32, 16, 8), "lr": 0.005, "weight_decay": 0.05},
    # 0.036; one negative per positive (Rendle et al.) and weight decay 0.01 both scored
    # lower in tuning. The fit stops after about 25 epochs; 40 bounds it under 30 s.
    "bpr": {
        **_SHARED,
        "epochs": 40,
        "dim": 64,
        "layers": (64, 32, 16, 8),
        "lr": 0.005,
        "weight_decay": 0.001,
    },
    # GMF 0.028 and MLP 0.028 with the defaults they started with; nothing tried did better.
    "gmf": {**_SHARED, "dim": 32, "layers": (64, 32, 16, 8), "lr": 0.005, "weight_decay": 0.0},
    "mlp": {**_SHARED, "dim": 32, "layers": (64, 32, 16, 8), "lr": 0.005, "weight_decay": 0.0},
    # 0.033 fine-tuned from GMF and MLP (a random start at lr 0.005 scored lower in tuning).
    "neumf": {
        **_SHARED,
        "dim": 32,
        "layers": (64, 32, 16, 8),
        "lr": 0.001,
        "weight_decay": 0.0,
        "pretrain": True,
    },
}


def build_model(name: str, num_users: int, num_items: int, hyperparameters: dict[str, Any], seed: int = 0):
    """A fresh model of the named kind (parameters drawn from ``seed``)."""
    generator = torch.Generator().manual_seed(seed)
    arguments = {key: tuple(value) if key == "layers" else value for key, value in hyperparameters.items()}
    return MODEL_CLASSES[name](num_users, num_items, **arguments, generator=generator)


def _architecture(config: FitConfig) -> dict[str, Any]:
    if config.model in ("mf", "bpr", "gmf"):
        return {"dim": config.dim}
    if config.model == "mlp":
        return {"layers": list(config.layers)}
    return {"dim": config.dim, "layers": list(config.layers)}


@dataclass
class FitResult:
    """A fitted model and how it got there."""

    model: PreferenceModel
    config: FitConfig
    history: list[dict]
    """Per epoch: loss and validation HR@10 / NDCG@10."""
    best_epoch: int
    wall_time_s: float
    pretrained: dict[str, FitResult] = dataclasses.field(default_factory=dict)


@deterministic_algorithms()
def fit_model(
    split: Split,
    config: FitConfig = FitConfig(),
    device: torch.device | str = "cpu",
    progress: bool = True,
    checkpoint: str | Path | None = None,
) -> FitResult:
    """Fit ``config.model`` on ``split.train`` with early stopping on ``split.valid``
    (``mf`` regresses ``split.train_values``, the ratings).

    Args:
        checkpoint: a file updated after every epoch; if it exists, the fit resumes from it.
    """
    config = config.resolved()
    checkpoint = None if checkpoint is None else Path(checkpoint)
    if len(split.valid) == 0:
        raise DataError("no validation events to stop on: every user has fewer than 3 events")
    if config.model == "mf" and split.train_values is None:
        raise DataError("model 'mf' fits explicit ratings, but the split has no rating values")
    device = torch.device(device)
    started = time.perf_counter()
    pretrained: dict[str, FitResult] = {}
    # Independent streams from one seed: initial parameters, and shuffles/negatives.
    init_seed, train_seed = derived_seeds(config.seed, 2)
    model = build_model(config.model, split.num_users, split.num_items, _architecture(config), init_seed)
    if config.model == "neumf" and config.pretrain:
        for part in ("gmf", "mlp"):
            part_config = dataclasses.replace(
                config, model=part, **{k: None for k in ("lr", "weight_decay", "epochs", "pretrain")}
            )
            part_checkpoint = None if checkpoint is None else checkpoint.with_suffix(f".{part}.pt")
            pretrained[part] = fit_model(split, part_config, device, progress, part_checkpoint)
        model = NeuMF.from_pretrained(pretrained["gmf"].model, pretrained["mlp"].model)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(train_seed)
    state = {"epoch": 0, "history": [], "best_epoch": 0, "best_ndcg": -1.0, "best_state": None}
    data = _fingerprint(split)
    if checkpoint is not None and checkpoint.is_file():
        state = _resume(checkpoint, model, optimizer, generator, config, data)
    train = torch.as_tensor(split.train, device=device)
    positive_keys = _pair_keys(torch.as_tensor(split.train), split.num_items).unique()  # sorted
    values = split.train_values
    targets = None if values is None else torch.as_tensor(values, device=device, dtype=torch.float32)
    bar = tqdm(
        range(state["epoch"] + 1, config.epochs + 1),
        desc=f"fit {config.model}",
        disable=not progress,
        leave=False,
    )
    for epoch in bar:
        if epoch - state["best_epoch"] > config.patience:
            break
        model.train()
        negatives = _sample_negatives(split.train[:, 0], positive_keys, split.num_items, config, generator)
        loss = _train_epoch(model, optimizer, train, targets, negatives.to(device), config, generator, device)
        if not math.isfinite(loss):
            raise ConfigError(f"the {config.model} fit diverged at epoch {epoch} (loss {loss}); lower --lr")
        model.eval()
        with torch.no_grad():
            metrics = full_ranking_metrics(
                model.score_all, split.valid, split.train, split.num_items, device=device
            )
        state["history"].append({"epoch": epoch, "loss": loss, **metrics})
        bar.set_postfix(loss=f"{loss:.4f}", ndcg=f"{metrics['ndcg@10']:.4f}")
        if metrics["ndcg@10"] > state["best_ndcg"]:
            state["best_ndcg"], state["best_epoch"] = metrics["ndcg@10"], epoch
            state["best_state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        state["epoch"] = epoch
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, optimizer, generator, config, state, data)
    model.load_state_dict(state["best_state"])
    model.eval()
    return FitResult(
        model=model,
        config=config,
        history=state["history"],
        best_epoch=state["best_epoch"],
        wall_time_s=time.perf_counter() - started,
        pretrained=pretrained,
    )


def _train_epoch(
    model: PreferenceModel,
    optimizer: torch.optim.Optimizer,
    train: torch.Tensor,
    ratings: torch.Tensor | None,
    negatives: torch.Tensor,
    config: FitConfig,
    generator: torch.Generator,
    device: torch.device,
) -> float:
    """One pass over the (E, 2) training events in random order, each with its row of
    the (E, n) ``negatives``; returns the mean loss."""
    order = torch.randperm(len(train), generator=generator).to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda")
    total = 0.0
    for start in range(0, len(train), config.batch_size):
        rows = order[start : start + config.batch_size]
        users, positives = train[rows, 0], train[rows, 1]
        with autocast:
            if config.model == "mf":
                items = positives[:, None]
                loss = (model(users, items).squeeze(1).float() - ratings[rows]).pow(2).mean()
            elif config.model == "bpr":
                items = torch.cat([positives[:, None], negatives[rows]], dim=1)
                scores = model(users, items).float()
                loss = -nn.functional.logsigmoid(scores[:, :1] - scores[:, 1:]).mean()
            else:
                items = torch.cat([positives[:, None], negatives[rows]], dim=1)
                labels = torch.zeros(items.shape, device=device)
                labels[:, 0] = 1.0
                logits = model(users, items).float()
                loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
        if config.weight_decay:
            loss = loss + config.weight_decay * model.penalty(users, items) / len(rows)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(rows)
    return total / len(train)


def _pair_keys(pairs: torch.Tensor, num_items: int) -> torch.Tensor:
    """(n, 2) (user, item) pairs -> (n,) int64 keys user * num_items + item."""
    return pairs[:, 0].long() * num_items + pairs[:, 1].long()


def _sample_negatives(
    users: np.ndarray,
    positive_keys: torch.Tensor,
    num_items: int,
    config: FitConfig,
    generator: torch.Generator,
    max_rounds: int = 100,
) -> torch.Tensor:
    """(E, n) items drawn uniformly for the users of E training events, redrawn while
    the user has a training event with them (at most ``max_rounds`` times, which only a
    user who consumed nearly the whole catalogue can exhaust). ``positive_keys``:
    sorted :func:`_pair_keys` of the training events. ``mf`` needs none: (E, 1) unused."""
    count = 1 if config.model == "mf" else config.negatives
    users = torch.as_tensor(users)[:, None].expand(-1, count)
    negatives = torch.randint(num_items, users.shape, generator=generator)
    if config.model == "mf":
        return negatives
    for _ in range(max_rounds):
        keys = users * num_items + negatives
        found = positive_keys[torch.searchsorted(positive_keys, keys).clamp(max=len(positive_keys) - 1)]
        clash = found == keys
        if not bool(clash.any()):
            break
        negatives[clash] = torch.randint(num_items, (int(clash.sum()),), generator=generator)
    return negatives


def _fingerprint(split: Split) -> str:
    """Identifies the data a fit trains and stops on, so a checkpoint resumes only on it."""
    digest = hashlib.sha256(f"{split.num_users},{split.num_items}".encode())
    for array in (split.train, split.valid, split.train_values):
        digest.update(b"|" if array is None else np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _save_checkpoint(path, model, optimizer, generator, config, state, data) -> None:
    temporary = path.with_name(path.name + ".tmp")
    torch.save(
        {
            "data": data,
            "config": config.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "state": state,
        },
        temporary,
    )
    temporary.replace(path)


def _resume(path, model, optimizer, generator, config, data) -> dict:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which
        raise DataError(f"{path}: cannot resume from this checkpoint ({exc})") from exc
    if saved.get("data") != data:
        raise ConfigError(f"{path} was written by a fit on other data; delete it or change --out")
    # Only the epoch budget may differ: a fit stopped at its budget can be continued with a larger one.
    if _without_epochs(saved.get("config", {})) != _without_epochs(config.to_dict()):
        raise ConfigError(f"{path} was written by a fit with other settings; delete it or change --out")
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    generator.set_state(saved["generator"])
    return saved["state"]


def _without_epochs(config: dict) -> dict:
    return {key: value for key, value in config.items() if key != "epochs"}
