"""Results files: JSON with the config and its hash, written atomically.

A results file is ``{"target", "config", "config_hash", ...}``. Its hash is the SHA-256
of the config's canonical JSON without the output paths (``results_dir``,
``figures_dir``), together with the code version (:func:`code_version`: the package
version and a digest of its source files), so moving the outputs does not invalidate a
result, and changing any computed value or the code does. Arrays are stored as nested lists; non-finite numbers as
``null`` (strict JSON), read back as NaN by ``np.asarray(x, float)``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_write

OUTPUT_KEYS = ("results_dir", "figures_dir")


@functools.cache
def code_version() -> dict:
    """What identifies the code that computes a result: ``{"probejax": version,
    "source": SHA-256 of the package's ``.py`` files (paths and contents),
    "git": the checkout's commit or None}``.

    The source digest changes exactly when the package's code does (a commit that only
    touches the README or the figures keeps old results valid; an uncommitted edit of
    the code does not), with or without git; the commit is recorded for provenance.
    """
    try:
        version = importlib.metadata.version("probejax")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    package = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode())
        h.update(path.read_bytes())
    commit = None
    try:
        head = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        commit = head.stdout.strip() if head.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"probejax": version, "source": h.hexdigest(), "git": commit}


def config_hash(config: dict) -> str:
    """SHA-256 (hex) of the config's canonical JSON, output paths excluded, with the
    :func:`code_version`."""
    core = {k: v for k, v in config.items() if k not in OUTPUT_KEYS}
    code = {k: v for k, v in code_version().items() if k != "git"}
    core = {"config": core, "code": code}
    text = json.dumps(jsonable(core), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def jsonable(obj: Any) -> Any:
    """Nested dicts/lists of Python scalars; arrays to lists, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "__array__") and not isinstance(obj, str):
        arr = np.asarray(obj)
        return jsonable(arr.tolist()) if arr.ndim else jsonable(arr.item())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj


def write_json_atomic(path: Path, obj: dict) -> None:
    """Write ``obj`` as strict JSON to ``path`` atomically (a reader never sees a
    partial file)."""
    atomic_write(
        path, lambda f: json.dump(jsonable(obj), f, indent=1, allow_nan=False), binary=False
    )


def read_results(path: Path) -> dict | None:
    """The results file at ``path``, or ``None`` if it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
