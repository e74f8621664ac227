"""The World: one saved artifact that fully defines the shoppers' ground truth.

A World holds the fitted preference model (any :class:`PreferenceModel`: MF, BPR-MF,
GMF, MLP or NeuMF), the catalogue (which of the model's items are for sale), the
item attributes (categories, prices, popularity), the split of shoppers into train
and test, the utility standardisation and the calibrated choice constants, plus a
JSON card with provenance (data hash, split, fit metrics, hyperparameters). It is
saved as a folder::

    world/
      tensors.pt   the model's parameters and the tensors below (loaded with weights_only=True)
      card.json    provenance, metrics and the ground-truth constants

A World may also carry ``learned_item_features``: item vectors fitted by another
model family on the same training data, the item features a real shop's own
recommender would have (agents may see them; they are not the ground truth, but they
change what environments show, so they are hashed and saved with it). It may also
carry ``category_lift``: the (C, C) co-occurrence lift of item categories among the
training shoppers of the fitting data, which the complementary-categories mechanism
reads (``shopgym.simulator.parts.complements``); hashed and saved when present. And
it may carry ``item_quality``: each item's standardised mean rating in the fitting
data, what a shopper thinks of an item after consuming it (as opposed to how likely
they are to click it), which the post-click experience reads (``ShopperConfig.quality_weight``).

Loading never refits. :attr:`World.hash` digests everything that defines the
ground truth (model parameters, tensors, standardisation, calibration) and goes
into every result.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from shopgym.simulator.errors import ConfigError, DataError
from shopgym.simulator.models import MODEL_CLASSES, PreferenceModel, build_model

# 3: optional learned_item_features. Format 2 folders are refused, not upgraded: their
# hash vouches for a format-2 content, and a World loaded without the learned features
# would carry another hash than its card records.
FORMAT_VERSION = 3

# Tensors besides the model's parameters, with their dtypes.
TENSOR_NAMES = ("catalogue", "item_category", "item_price", "item_popularity", "test_shopper")
_DTYPES = {"catalogue": torch.long, "test_shopper": torch.bool}
# Optional tensors: saved and hashed only when present.
OPTIONAL_TENSOR_NAMES = ("learned_item_features", "category_lift", "item_quality")


@dataclass(frozen=True)
class Calibration:
    """Choice-model constants: ``P(click j) ∝ exp(beta * s_j + b_pos(j))`` against
    ``exp(beta * no_click_utility)``.

    ``position_logits`` holds b for the calibrated slate positions (the first is 0);
    later positions continue the last step (or stay level after a single position).
    """

    beta: float = 1.0
    no_click_utility: float = 0.0
    position_logits: tuple[float, ...] = (0.0,)
    target: dict = field(default_factory=dict)
    """What the constants were calibrated to (a stated level or a real log) and how
    well the simulator matches it."""

    def __post_init__(self) -> None:
        values = (self.beta, self.no_click_utility, *self.position_logits)
        if not self.position_logits or not all(math.isfinite(value) for value in values):
            raise ConfigError(f"Calibration constants must be finite, got {values}")

    def position_bias(self, slate_size: int) -> torch.Tensor:
        """(k,) additive logit bias of each slate position.

        Positions past the calibrated ones keep the last calibrated logit: the target
        says nothing about them, and extrapolating a step estimated from a sparse log
        (the OBD campaigns have 10-22 clicks per position) would invent large effects.
        """
        logits = torch.tensor(self.position_logits, dtype=torch.float32)
        if slate_size <= len(logits):
            return logits[:slate_size]
        return torch.cat([logits, logits[-1].expand(slate_size - len(logits))])

    def to_dict(self) -> dict:
        return {
            "beta": self.beta,
            "no_click_utility": self.no_click_utility,
            "position_logits": list(self.position_logits),
            "target": self.target,
        }


def decay_logits(decay: float, slate_size: int) -> tuple[float, ...]:
    """Position logits falling by ``decay`` per position: (0, -decay, -2 decay, ...)."""
    return tuple(-decay * position for position in range(slate_size))


@dataclass(frozen=True)
class World:
    """Ground truth of a shopper population.

    Attributes (tensors on one device, float32 unless stated):
        model: the fitted preference model over U shoppers and M' items (frozen).
        model_name: its kind, a key of ``shopgym.simulator.models.MODEL_CLASSES``.
        catalogue: (M,) int64 model item index of each World item (the items for sale).
        item_category: (M, C) multi-hot categories (e.g. MovieLens genres).
        item_price: (M,) prices (> 0).
        item_popularity: (M,) interaction counts in the fitting data.
        test_shopper: (U,) bool, True for shoppers held out for evaluation.
        learned_item_features: (M, r) item vectors of another model family fitted on
            the same training data (card: ``learned_features``), or ``None``.
        category_lift: (C, C) ``P(c and d) / (P(c) P(d))`` over the fitting data's
            training shoppers (P(c): the share of them with an event on an item of
            category c; see ``parts.complements.category_lift``), or ``None``.
        item_quality: (M,) the item's mean rating in the fitting data's training
            events, shrunk toward the overall mean and standardised over the catalogue
            (see ``build.item_quality``), or ``None`` (implicit data: no ratings).

    The utility of World item i for shopper u is
    ``(f(u, catalogue[i]) - utility_shift) / utility_scale`` with f the model's score:
    standardised over the population and the catalogue, so choice constants mean the
    same in every World.
    """

    model: PreferenceModel = field(repr=False)
    model_name: str
    catalogue: torch.Tensor = field(repr=False)
    item_category: torch.Tensor = field(repr=False)
    item_price: torch.Tensor = field(repr=False)
    item_popularity: torch.Tensor = field(repr=False)
    test_shopper: torch.Tensor = field(repr=False)
    utility_shift: float
    utility_scale: float
    calibration: Calibration
    category_names: tuple[str, ...]
    card: dict = field(default_factory=dict, repr=False)
    learned_item_features: torch.Tensor | None = field(default=None, repr=False)
    category_lift: torch.Tensor | None = field(default=None, repr=False)
    item_quality: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.model_name not in MODEL_CLASSES or not isinstance(self.model, MODEL_CLASSES[self.model_name]):
            raise DataError(f"World: model {type(self.model).__name__} is not a {self.model_name!r} model")
        # The ground truth never trains: no gradients, no dropout-style behaviour.
        self.model.requires_grad_(False).eval()
        for name in TENSOR_NAMES:
            tensor = getattr(self, name)
            wanted = _DTYPES.get(name, torch.float32)
            if not isinstance(tensor, torch.Tensor) or tensor.dtype != wanted:
                found = tensor.dtype if isinstance(tensor, torch.Tensor) else type(tensor).__name__
                raise DataError(f"World: {name} must be a {wanted} tensor, got {found}")
        num_items = len(self.catalogue)
        expected = {
            "catalogue": (num_items,),
            "item_category": (num_items, len(self.category_names)),
            "item_price": (num_items,),
            "item_popularity": (num_items,),
            "test_shopper": (self.model.num_users,),
        }
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                found = tuple(getattr(self, name).shape)
                raise DataError(f"World: {name} has shape {found}, expected {shape}")
        if num_items == 0 or not bool(
            ((self.catalogue >= 0) & (self.catalogue < self.model.num_items)).all()
        ):
            raise DataError(f"World: catalogue must index the model's {self.model.num_items} items")
        if not bool((self.item_price > 0).all()):
            raise DataError("World: item_price must be positive")
        if not (math.isfinite(self.utility_scale) and self.utility_scale > 0):
            raise DataError(f"World: utility_scale must be positive, got {self.utility_scale}")
        if not math.isfinite(self.utility_shift):
            raise DataError(f"World: utility_shift must be finite, got {self.utility_shift}")
        for name, tensor in [
            *self.model.state_dict().items(),
            *((n, getattr(self, n)) for n in TENSOR_NAMES),
        ]:
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise DataError(f"World: {name} contains NaN or infinite values")
        if self.num_shoppers < 2 or not (0 < int(self.test_shopper.sum()) < self.num_shoppers):
            raise DataError("World: needs both train and test shoppers")
        self._check_learned_item_features()
        self._check_category_lift()
        self._check_optional_tensor("item_quality", "contains NaN or infinite values", torch.isfinite)
        quality = self.item_quality
        if quality is not None and tuple(quality.shape) != (self.num_items,):
            found = tuple(quality.shape)
            raise DataError(f"World: item_quality has shape {found}, expected ({self.num_items},)")

    def _check_learned_item_features(self) -> None:
        self._check_optional_tensor(
            "learned_item_features", "contains NaN or infinite values", torch.isfinite
        )
        features = self.learned_item_features
        if features is not None and (
            features.dim() != 2 or features.shape[0] != self.num_items or features.shape[1] < 1
        ):
            raise DataError(
                f"World: learned_item_features has shape {tuple(features.shape)}, "
                f"expected ({self.num_items}, r) with r >= 1"
            )

    def _check_category_lift(self) -> None:
        self._check_optional_tensor(
            "category_lift", "must be finite and >= 0", lambda lift: torch.isfinite(lift) & (lift >= 0)
        )
        lift, expected = self.category_lift, (self.num_categories, self.num_categories)
        if lift is not None and tuple(lift.shape) != expected:
            raise DataError(f"World: category_lift has shape {tuple(lift.shape)}, expected {expected}")

    def _check_optional_tensor(self, name: str, problem: str, valid) -> None:
        """An optional tensor is None, or float32 on the World's device with ``valid`` everywhere."""
        tensor = getattr(self, name)
        if tensor is None:
            return
        if not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.float32:
            found = tensor.dtype if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise DataError(f"World: {name} must be a torch.float32 tensor, got {found}")
        if tensor.device != self.device:
            raise DataError(f"World: {name} is on {tensor.device}, the World on {self.device}")
        if not bool(valid(tensor).all()):
            raise DataError(f"World: {name} {problem}")

    @property
    def num_shoppers(self) -> int:
        return self.model.num_users

    @property
    def num_items(self) -> int:
        return len(self.catalogue)

    @property
    def num_categories(self) -> int:
        return len(self.category_names)

    @property
    def device(self) -> torch.device:
        return self.catalogue.device

    def shopper_indices(self, shoppers: str) -> torch.Tensor:
        """Indices of the ``"train"``, ``"test"`` or ``"all"`` shoppers."""
        if shoppers == "all":
            return torch.arange(self.num_shoppers, device=self.device)
        if shoppers not in ("train", "test"):
            raise ConfigError(f"shoppers must be 'train', 'test' or 'all', got {shoppers!r}")
        mask = self.test_shopper if shoppers == "test" else ~self.test_shopper
        return torch.nonzero(mask).flatten()

    def to(self, device: torch.device | str) -> World:
        """This World on ``device`` (a copy if it is elsewhere; the model is never moved in place)."""
        device = torch.device(device)
        if self.device == device:
            return self
        model = copy.deepcopy(self.model).to(device)
        tensors = {name: getattr(self, name).to(device) for name in TENSOR_NAMES}
        for name in OPTIONAL_TENSOR_NAMES:
            tensor = getattr(self, name)
            tensors[name] = None if tensor is None else tensor.to(device)
        return replace(self, model=model, **tensors)

    def utilities(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """True standardised utilities of (B, n) World items for (B,) shoppers -> (B, n).

        Only the simulator and the oracle agent (through an explicit option) see these.
        """
        with torch.no_grad():
            raw = self.model(users, self.catalogue[items])
        return (raw.float() - self.utility_shift) / self.utility_scale

    def item_representation(self) -> torch.Tensor:
        """(M, r) the model's latent description of each World item."""
        with torch.no_grad():
            return self.model.item_representation()[self.catalogue]

    def ground_truth(self) -> dict:
        """The constants that, with the tensors, define the ground truth."""
        return {
            "format_version": FORMAT_VERSION,
            "model": {
                "name": self.model_name,
                "num_users": self.model.num_users,
                "num_items": self.model.num_items,
                "hyperparameters": self.model.hyperparameters(),
            },
            "utility_shift": self.utility_shift,
            "utility_scale": self.utility_scale,
            "calibration": self.calibration.to_dict(),
            "category_names": list(self.category_names),
        }

    def _tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the ground truth, on CPU, model parameters as ``model.<name>``."""
        tensors = {f"model.{name}": value for name, value in self.model.state_dict().items()}
        tensors |= {name: getattr(self, name) for name in TENSOR_NAMES}
        optional = {name: getattr(self, name) for name in OPTIONAL_TENSOR_NAMES}
        tensors |= {name: value for name, value in optional.items() if value is not None}
        return {name: value.detach().cpu().contiguous() for name, value in tensors.items()}

    @property
    def hash(self) -> str:
        """SHA-256 of the tensors' bytes and the ground-truth constants (first 16 hex digits)."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self._tensors().items()):
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.numpy().tobytes())
        digest.update(json.dumps(self.ground_truth(), sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def save(self, folder: str | Path) -> Path:
        """Write ``tensors.pt`` and ``card.json`` into ``folder`` (created if needed).

        Each file is written to a temporary name and renamed, the card last: a save
        that is killed leaves no card.json (which :meth:`load` needs and readers take
        as the sign of a saved World) beside a partial ``tensors.pt``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        card = {**self.card, "ground_truth": self.ground_truth(), "world_hash": self.hash}
        for name, write in (
            ("tensors.pt", lambda path: torch.save(self._tensors(), path)),
            ("card.json", lambda path: path.write_text(json.dumps(card, indent=2) + "\n")),
        ):
            temporary = folder / f".{name}.tmp"
            write(temporary)
            os.replace(temporary, folder / name)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> World:
        """Read a World saved by :meth:`save` (no refitting)."""
        folder = Path(folder)
        for name in ("tensors.pt", "card.json"):
            if not (folder / name).is_file():
                raise DataError(f"{folder}: not a World folder ({name} is missing)")
        try:
            card = json.loads((folder / "card.json").read_text())
            tensors = torch.load(folder / "tensors.pt", weights_only=True)
        except (json.JSONDecodeError, RuntimeError, OSError, EOFError, pickle.UnpicklingError) as exc:
            raise DataError(f"{folder}: cannot read World ({exc})") from exc
        if not isinstance(card, dict) or not isinstance(tensors, dict):
            raise DataError(f"{folder}: card.json and tensors.pt must each hold a mapping")
        truth = card.pop("ground_truth", None)
        version = truth.get("format_version") if isinstance(truth, dict) else None
        if version == 2:
            raise DataError(
                f"{folder}: World format 2 (an older shopgym), which has no learned item features; "
                "rebuild it: `shopgym fit --out NEW_FOLDER` with the options it was fitted with "
                "(its card's preference_model and world_config); a cached default World is rebuilt "
                "automatically"
            )
        if version != FORMAT_VERSION:
            raise DataError(
                f"{folder}/card.json: missing or unsupported World format version {version!r} "
                f"(this shopgym reads {FORMAT_VERSION})"
            )
        missing = [name for name in TENSOR_NAMES if name not in tensors]
        if missing:
            raise DataError(f"{folder}/tensors.pt: missing tensors {missing}")
        stored_hash = card.pop("world_hash", None)
        try:
            spec = truth["model"]
            if spec["name"] not in MODEL_CLASSES:
                raise DataError(f"unknown model {spec['name']!r}")
            model = build_model(spec["name"], spec["num_users"], spec["num_items"], spec["hyperparameters"])
            prefix = "model."
            model.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
            calibration = truth["calibration"]
            world = cls(
                model=model,
                model_name=spec["name"],
                **{name: tensors[name] for name in TENSOR_NAMES},
                utility_shift=float(truth["utility_shift"]),
                utility_scale=float(truth["utility_scale"]),
                calibration=Calibration(
                    beta=float(calibration["beta"]),
                    no_click_utility=float(calibration["no_click_utility"]),
                    position_logits=tuple(float(v) for v in calibration["position_logits"]),
                    target=calibration.get("target", {}),
                ),
                category_names=tuple(truth["category_names"]),
                card=card,
                **{name: tensors.get(name) for name in OPTIONAL_TENSOR_NAMES},
            )
        except DataError as exc:
            raise DataError(f"{folder}: {exc}") from exc
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise DataError(f"{folder}: malformed World ({exc!r})") from exc
        if stored_hash != world.hash:  # a missing hash is refused too: nothing would vouch for the truth
            raise DataError(f"{folder}: World hash mismatch (card: {stored_hash}, tensors: {world.hash})")
        return world
