"""Writes that a crash or a kill never leaves half done: a temporary file beside the
target, flushed to disk, then renamed over it (a rename within a folder is atomic)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from shopgym.simulator.errors import ConfigError


def atomic_write(path: str | Path, content: str | bytes) -> Path:
    """Write ``content`` (text or bytes) to ``path`` atomically; returns the path.

    An OSError (a full disk, a folder without write permission) becomes a ConfigError
    that names the path; the file that was there stays whole."""
    path = Path(path)
    try:
        # A name of its own: two writers of one file (a report beside a comparison) never
        # share a temporary file.
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc})") from exc
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content.encode() if isinstance(content, str) else content)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's files are private; results are for reading
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path} ({exc})") from exc
    return path
