"""Writes that a crash or a kill never leaves half done: a temporary file beside the
target, flushed to disk, then renamed over it (a rename within a folder is atomic)."""

from __future__ import annotations

import os
from pathlib import Path

from shopgym.simulator.errors import ConfigError


def atomic_write(path: str | Path, content: str | bytes) -> Path:
    """Write ``content`` (text or bytes) to ``path`` atomically; returns the path.

    An OSError (a full disk, a folder without write permission) becomes a ConfigError
    that names the path; the file that was there stays whole."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(content.encode() if isinstance(content, str) else content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path} ({exc})") from exc
    return path
