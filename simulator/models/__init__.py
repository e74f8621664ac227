"""Preference models fitted on interaction logs: biased MF, BPR-MF, and NCF (GMF, MLP, NeuMF)."""

from shopgym.simulator.models.base import PreferenceModel
from shopgym.simulator.models.mf import MatrixFactorization
from shopgym.simulator.models.ncf import GMF, MLP, NeuMF
from shopgym.simulator.models.training import (
    MODEL_CLASSES,
    MODEL_DEFAULTS,
    FitConfig,
    FitResult,
    build_model,
    fit_model,
)

__all__ = [
    "GMF",
    "MLP",
    "MODEL_CLASSES",
    "MODEL_DEFAULTS",
    "FitConfig",
    "FitResult",
    "MatrixFactorization",
    "NeuMF",
    "PreferenceModel",
    "build_model",
    "fit_model",
]
