"""The world: data, preference fitting, the World artifact and the batched shopper
simulator, in pure torch (no Gymnasium)."""

# Imported first so the cuBLAS determinism setting precedes any CUDA work.
from shopgym.simulator import determinism as _determinism  # noqa: F401
