"""Which code and device produced a result, so that records of different code or devices
are never merged silently."""

from __future__ import annotations

import functools
import hashlib
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

# The folders of the four packages (shopgym.simulator, .envs, .agents, .experiments).
_PACKAGES = ("simulator", "envs", "agents", "experiments")


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """``version`` (the installed distribution's), ``source`` (SHA-256 of every Python
    source file of the four packages, first 16 hex digits: equal exactly when the code
    is), and ``commit`` / ``dirty`` when the code is a git work tree (else ``None``)."""
    import shopgym.simulator

    root = Path(shopgym.simulator.__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in _PACKAGES:
        folder = root / package
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    try:
        version = metadata.version("shopgym")
    except metadata.PackageNotFoundError:
        version = None
    commit, dirty = _git(root, "rev-parse", "HEAD"), None
    if commit is not None:
        status = _git(root, "status", "--porcelain", "--", *_PACKAGES)
        dirty = bool(status)
    return {"version": version, "source": digest.hexdigest()[:16], "commit": commit, "dirty": dirty}


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def device_name(device: str | torch.device) -> str:
    """The device as records compare it: ``cuda`` and ``cuda:0`` (the current device)
    are the same device, ``cpu`` is ``cpu``."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        index = torch.cuda.current_device() if torch.cuda.is_available() else 0
        return f"cuda:{index}"
    return str(device)
