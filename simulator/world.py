"""The World: one saved artifact that fully defines the shoppers' ground truth.

A World holds the fitted preference model (user and item embeddings, item bias),
the item attributes (categories, prices, popularity), the split of shoppers into
train and test, the utility normalisation and the calibrated choice parameters,
plus a JSON card with provenance (data hash, split, fit metrics,
hyperparameters). It is saved as a folder::

    world/
      tensors.pt   the tensors below (torch.save, loaded with weights_only=True)
      card.json    provenance, metrics and the ground-truth constants

Loading never refits. :attr:`World.hash` digests everything that defines the
ground truth (tensors, normalisation, calibration) and goes into every result.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from shopgym.simulator.errors import ConfigError, DataError

FORMAT_VERSION = 1

TENSOR_NAMES = (
    "user_embedding",
    "item_embedding",
    "item_bias",
    "item_category",
    "item_price",
    "item_popularity",
    "test_shopper",
)


@dataclass(frozen=True)
class Calibration:
    """Choice-model constants: ``P(click j) ∝ exp(beta * s_j + b_pos(j))`` against
    ``exp(beta * no_click_utility)``, with ``b_pos(p) = -position_decay * p``."""

    beta: float = 1.0
    no_click_utility: float = 0.0
    position_decay: float = 0.2
    target: dict = field(default_factory=dict)
    """What the constants were calibrated to (a stated level or a real log)."""

    def position_bias(self, slate_size: int) -> torch.Tensor:
        """(k,) additive logit bias of each slate position."""
        return -self.position_decay * torch.arange(slate_size, dtype=torch.float32)


@dataclass(frozen=True)
class World:
    """Ground truth of a shopper population.

    Tensors (all on CPU, float32 unless stated):
        user_embedding: (U, d) latent shopper vectors (never shown to agents).
        item_embedding: (M, d) latent item vectors.
        item_bias: (M,) item bias of the preference model.
        item_category: (M, C) multi-hot categories (e.g. MovieLens genres).
        item_price: (M,) prices (> 0).
        item_popularity: (M,) interaction counts in the fitting data.
        test_shopper: (U,) bool, True for shoppers held out for evaluation.

    The utility of item i for shopper u is
    ``(p_u · q_i + b_i - utility_shift) / utility_scale``: standardised over the
    population and the catalogue, so choice constants mean the same in every World.
    """

    user_embedding: torch.Tensor = field(repr=False)
    item_embedding: torch.Tensor = field(repr=False)
    item_bias: torch.Tensor = field(repr=False)
    item_category: torch.Tensor = field(repr=False)
    item_price: torch.Tensor = field(repr=False)
    item_popularity: torch.Tensor = field(repr=False)
    test_shopper: torch.Tensor = field(repr=False)
    utility_shift: float
    utility_scale: float
    calibration: Calibration
    category_names: tuple[str, ...]
    card: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in TENSOR_NAMES:
            tensor = getattr(self, name)
            wanted = torch.bool if name == "test_shopper" else torch.float32
            if not isinstance(tensor, torch.Tensor) or tensor.dtype != wanted:
                found = tensor.dtype if isinstance(tensor, torch.Tensor) else type(tensor).__name__
                raise DataError(f"World: {name} must be a {wanted} tensor, got {found}")
        if self.user_embedding.dim() != 2:
            shape = tuple(self.user_embedding.shape)
            raise DataError(f"World: user_embedding must be 2-D, got shape {shape}")
        num_users, dim = self.user_embedding.shape
        num_items = self.item_embedding.shape[0]
        expected = {
            "item_embedding": (num_items, dim),
            "item_bias": (num_items,),
            "item_category": (num_items, len(self.category_names)),
            "item_price": (num_items,),
            "item_popularity": (num_items,),
            "test_shopper": (num_users,),
        }
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                raise DataError(
                    f"World: {name} has shape {tuple(getattr(self, name).shape)}, expected {shape}"
                )
        if not bool((self.item_price > 0).all()):
            raise DataError("World: item_price must be positive")
        if not (math.isfinite(self.utility_scale) and self.utility_scale > 0):
            raise DataError(f"World: utility_scale must be positive, got {self.utility_scale}")
        if not math.isfinite(self.utility_shift):
            raise DataError(f"World: utility_shift must be finite, got {self.utility_shift}")
        for name in TENSOR_NAMES:
            tensor = getattr(self, name)
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise DataError(f"World: {name} contains NaN or infinite values")
        if self.num_shoppers < 2 or not (0 < int(self.test_shopper.sum()) < self.num_shoppers):
            raise DataError("World: needs both train and test shoppers")

    @property
    def num_shoppers(self) -> int:
        return self.user_embedding.shape[0]

    @property
    def num_items(self) -> int:
        return self.item_embedding.shape[0]

    @property
    def num_categories(self) -> int:
        return len(self.category_names)

    def shopper_indices(self, shoppers: str) -> torch.Tensor:
        """Indices of the ``"train"``, ``"test"`` or ``"all"`` shoppers."""
        if shoppers == "all":
            return torch.arange(self.num_shoppers)
        if shoppers not in ("train", "test"):
            raise ConfigError(f"shoppers must be 'train', 'test' or 'all', got {shoppers!r}")
        mask = self.test_shopper if shoppers == "test" else ~self.test_shopper
        return torch.nonzero(mask).flatten()

    def to(self, device: torch.device | str) -> World:
        """A copy with every tensor on ``device``."""
        return replace(self, **{name: getattr(self, name).to(device) for name in TENSOR_NAMES})

    def utilities(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """True standardised utilities of (B, n) items for (B,) shoppers -> (B, n).

        Only the simulator and the oracle agent (through an explicit option) see these.
        """
        raw = torch.einsum("bd,bnd->bn", self.user_embedding[users], self.item_embedding[items])
        return (raw + self.item_bias[items] - self.utility_shift) / self.utility_scale

    def ground_truth(self) -> dict:
        """The scalar constants that, with the tensors, define the ground truth."""
        return {
            "format_version": FORMAT_VERSION,
            "utility_shift": self.utility_shift,
            "utility_scale": self.utility_scale,
            "calibration": {
                "beta": self.calibration.beta,
                "no_click_utility": self.calibration.no_click_utility,
                "position_decay": self.calibration.position_decay,
                "target": self.calibration.target,
            },
            "category_names": list(self.category_names),
        }

    @property
    def hash(self) -> str:
        """SHA-256 of the tensors' bytes and the ground-truth constants (first 16 hex digits)."""
        digest = hashlib.sha256()
        for name in TENSOR_NAMES:
            tensor = getattr(self, name).detach().cpu().contiguous()
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.numpy().tobytes())
        digest.update(json.dumps(self.ground_truth(), sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def save(self, folder: str | Path) -> Path:
        """Write ``tensors.pt`` and ``card.json`` into ``folder`` (created if needed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({name: getattr(self, name).cpu() for name in TENSOR_NAMES}, folder / "tensors.pt")
        card = {**self.card, "ground_truth": self.ground_truth(), "world_hash": self.hash}
        (folder / "card.json").write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
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
        except (
            json.JSONDecodeError,
            RuntimeError,
            OSError,
            EOFError,
            pickle.UnpicklingError,
        ) as exc:
            raise DataError(f"{folder}: cannot read World ({exc})") from exc
        if not isinstance(card, dict) or not isinstance(tensors, dict):
            raise DataError(f"{folder}: card.json and tensors.pt must each hold a mapping")
        truth = card.pop("ground_truth", None)
        if not isinstance(truth, dict) or truth.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{folder}/card.json: missing or unsupported World format version")
        missing = [name for name in TENSOR_NAMES if name not in tensors]
        if missing:
            raise DataError(f"{folder}/tensors.pt: missing tensors {missing}")
        stored_hash = card.pop("world_hash", None)
        try:
            world = cls(
                **{name: tensors[name] for name in TENSOR_NAMES},
                utility_shift=float(truth["utility_shift"]),
                utility_scale=float(truth["utility_scale"]),
                calibration=Calibration(**truth["calibration"]),
                category_names=tuple(truth["category_names"]),
                card=card,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise DataError(f"{folder}: {exc}") from exc
            raise DataError(f"{folder}/card.json: malformed ground truth ({exc!r})") from exc
        if stored_hash is not None and stored_hash != world.hash:
            raise DataError(f"{folder}: World hash mismatch (card: {stored_hash}, tensors: {world.hash})")
        return world
