"""Choosing the torch device at run time."""

import torch

from shopgym.simulator.errors import ConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return ``cuda`` if ``device`` is ``"auto"`` and CUDA is available, else the device asked for.

    Raises:
        ConfigError: the device string is not understood, or CUDA is asked for but absent.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"--device: unknown device {device!r} (use auto, cpu or cuda)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device: {device!r} was asked for but CUDA is not available here")
    return resolved
