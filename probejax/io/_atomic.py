"""Atomic file writes: a reader sees the old file or the new one, never a partial one.

The content goes to a temporary file in the same directory, is flushed and fsynced,
then ``os.replace`` puts it in place (atomic on POSIX within one filesystem). On any
error the temporary file is removed and the old file is left untouched.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], *, binary: bool) -> None:
    """Call ``write(f)`` on a temporary file, then move it to ``path`` atomically.

    The parent directory is created if missing; the file gets mode 0644 (``mkstemp``'s
    0600 would make results private to one user).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez(path, **arrays)``, atomically."""
    atomic_write(path, lambda f: np.savez(f, **arrays), binary=True)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
